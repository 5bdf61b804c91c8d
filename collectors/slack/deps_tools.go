//go:build tools

// Keeps the Slack library in go.mod while the collector is being written.
package slack

import (
	_ "github.com/slack-go/slack"
	_ "github.com/slack-go/slack/slacktest"
	_ "github.com/slack-go/slack/socketmode"
)
