package consume

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/schemas"
)

// A handler's error tells the loop what to do with the message. A nil error
// acks it; the wrappers below choose the other outcomes; any other error is a
// handler failure: counted, retried with back-off, dead-lettered at the limit.

type deferError struct {
	delay time.Duration
	why   string
}

func (e *deferError) Error() string { return fmt.Sprintf("deferred %s: %s", e.delay, e.why) }

// Defer puts the message back for delay without counting a failure: a send
// budget that is spent, a platform's 429 with Retry-After.
func Defer(delay time.Duration, why string) error { return &deferError{delay: delay, why: why} }

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent dead-letters the message at once: it can never succeed as it is
// (undecodable, invalid, refused by the platform for good).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

type unavailableError struct{ err error }

func (e *unavailableError) Error() string { return "dependency unavailable: " + e.err.Error() }
func (e *unavailableError) Unwrap() error { return e.err }

// Unavailable says a dependency (PostgreSQL) is down: the message goes back
// without a failure and the consumer pauses, probing, until it returns.
func Unavailable(err error) error {
	if err == nil {
		return nil
	}
	return &unavailableError{err: err}
}

type retryAfterError struct {
	err   error
	delay time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// RetryAfter is a handler failure (it counts) retried after the given delay
// instead of the loop's back-off: a platform 5xx with a Retry-After header.
func RetryAfter(err error, delay time.Duration) error {
	if err == nil {
		return nil
	}
	return &retryAfterError{err: err, delay: delay}
}

// outcome is what the loop does with a settled message.
type outcome int

const (
	outcomeAck outcome = iota
	outcomeDefer
	outcomeUnavailable
	outcomeDeadLetter
	outcomeFailure
)

func classify(err error) (outcome, time.Duration) {
	if err == nil {
		return outcomeAck, 0
	}
	var d *deferError
	if errors.As(err, &d) {
		return outcomeDefer, d.delay
	}
	var p *permanentError
	if errors.As(err, &p) || errors.Is(err, schemas.ErrInvalid) {
		return outcomeDeadLetter, 0
	}
	var u *unavailableError
	if errors.As(err, &u) {
		return outcomeUnavailable, 0
	}
	if transportTrouble(err) {
		// NATS itself is unreachable or slow: not the message's fault.
		return outcomeDefer, time.Second
	}
	var r *retryAfterError
	if errors.As(err, &r) {
		return outcomeFailure, r.delay
	}
	return outcomeFailure, 0
}

func transportTrouble(err error) bool {
	return errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrConnectionReconnecting) ||
		errors.Is(err, nats.ErrDisconnected) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrConnectionDraining) || errors.Is(err, jetstream.ErrTooManyStalledMsgs)
}
