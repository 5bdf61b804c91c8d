package pipelinetest

import (
	"strings"
	"testing"
)

func TestHarnessAnswersPing(t *testing.T) {
	p := Start(t, Options{})
	if got := p.SayText("alice", "", "!ping"); got != "pong" {
		t.Fatalf("ping → %q", got)
	}
	p.Silent("alice", "", "!nosuchcommand")
	if got := p.SayText("alice", "", "!help ping"); !strings.Contains(got, "!ping") {
		t.Fatalf("help → %q", got)
	}
}
