package consume

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/schemas"
)

func TestClassify(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name  string
		err   error
		want  outcome
		delay time.Duration
	}{
		{"nil acks", nil, outcomeAck, 0},
		{"defer", Defer(3*time.Second, "budget"), outcomeDefer, 3 * time.Second},
		{"permanent", Permanent(boom), outcomeDeadLetter, 0},
		{"invalid envelope", fmt.Errorf("router: %w", schemas.ErrInvalid), outcomeDeadLetter, 0},
		{"unavailable", Unavailable(boom), outcomeUnavailable, 0},
		{"nats timeout", fmt.Errorf("kv: %w", nats.ErrTimeout), outcomeDefer, natsRetry},
		{"lost async ack", jetstream.ErrAsyncPublishTimeout, outcomeDefer, natsRetry},
		{"stalled publishes", jetstream.ErrTooManyStalledMsgs, outcomeDefer, natsRetry},
		{"retry after", RetryAfter(boom, 7*time.Second), outcomeFailure, 7 * time.Second},
		// The loop alone cannot tell NATS's silence from a handler's own
		// timeout: a bare deadline counts, DeferNATS is for callers who know.
		{"bare deadline", context.DeadlineExceeded, outcomeFailure, 0},
		{"deadline from a NATS call", DeferNATS(fmt.Errorf("router: %w", context.DeadlineExceeded)), outcomeDefer, natsRetry},
		{"other error", boom, outcomeFailure, 0},
		{"DeferNATS leaves others alone", DeferNATS(boom), outcomeFailure, 0},
	}
	for _, tt := range tests {
		got, delay := classify(tt.err)
		if got != tt.want || delay != tt.delay {
			t.Errorf("%s: classify = %v, %s; want %v, %s", tt.name, got, delay, tt.want, tt.delay)
		}
	}
	if DeferNATS(nil) != nil {
		t.Error("DeferNATS(nil) is not nil")
	}
}

func TestOutcome(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		err   error
		want  string
		delay time.Duration
	}{
		{nil, "ack", 0},
		{Defer(3*time.Second, "budget"), "defer", 3 * time.Second},
		{fmt.Errorf("wrapped: %w", Permanent(boom)), "permanent", 0},
		{Unavailable(boom), "unavailable", 0},
		{RetryAfter(boom, 7*time.Second), "retry_after", 7 * time.Second},
		{boom, "failure", 0},
	}
	for _, tt := range tests {
		got, delay := Outcome(tt.err)
		if got != tt.want || delay != tt.delay {
			t.Errorf("Outcome(%v) = %s %s, want %s %s", tt.err, got, delay, tt.want, tt.delay)
		}
	}
}
