package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/waddlebot/waddlebot/collectors/console"
	"github.com/waddlebot/waddlebot/internal/config"
)

// runSay publishes one console chat message and prints the replies.
func runSay(ctx context.Context, args []string) error {
	fs := partFlags("say")
	channel := fs.String("channel", "demo", "console channel")
	user := fs.String("user", "alice", "who speaks")
	role := fs.String("role", "", "the speaker's role: member, subscriber, vip, moderator, broadcaster")
	wait := fs.Duration("wait", 5*time.Second, "how long to wait for the first reply")
	noWait := fs.Bool("no-wait", false, "publish and exit without waiting for replies")
	p, err := parse(fs, args, config.GroupNATS, config.GroupData)
	if err != nil {
		return err
	}
	text := strings.Join(p.args, " ")
	if strings.TrimSpace(text) == "" {
		return usageError(`say [--channel demo] [--user alice] [--role moderator] "<text>"`)
	}
	conn, err := connectNATS(ctx, p, "waddlebot say")
	if err != nil {
		return err
	}
	defer conn.Close()
	_, replies, err := console.SayAndWait(ctx, conn, console.Message{Channel: *channel, User: *user, Role: *role, Text: text},
		console.SayOptions{Wait: *wait, NoWait: *noWait})
	if err != nil {
		return withStreamHint(err, p)
	}
	for _, r := range replies {
		switch {
		case r.Action != "" && r.Action != "message":
			fmt.Fprintf(os.Stdout, "[%s] %s\n", r.Action, r.Text)
		case r.Visibility == "private" || r.Visibility == "ephemeral":
			fmt.Fprintf(os.Stdout, "(%s to %s) %s\n", r.Visibility, *user, r.Text)
		default:
			fmt.Fprintln(os.Stdout, r.Text)
		}
	}
	return nil
}
