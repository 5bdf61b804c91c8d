//go:build tools

// Keeps the Discord library in go.mod while the collector is being written.
package discord

import _ "github.com/bwmarrin/discordgo"
