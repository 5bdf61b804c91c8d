package consume

import (
	"context"
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
		return outcomeDefer, natsRetry
	}
	var r *retryAfterError
	if errors.As(err, &r) {
		return outcomeFailure, r.delay
	}
	return outcomeFailure, 0
}

// natsRetry is how long a message waits when NATS did not answer.
const natsRetry = time.Second

func transportTrouble(err error) bool {
	return errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrConnectionReconnecting) ||
		errors.Is(err, nats.ErrDisconnected) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrConnectionDraining) || errors.Is(err, jetstream.ErrTooManyStalledMsgs) ||
		errors.Is(err, jetstream.ErrAsyncPublishTimeout)
}

// NATSTrouble reports whether an error from a NATS or JetStream call (a
// publish, a KV read or write) means NATS did not answer in time or is away,
// rather than that it refused. JetStream calls made with a context that has
// no deadline of its own time out with context.DeadlineExceeded, so a
// caller that knows the error came from such a call counts that too; the
// loop alone cannot tell it from a handler's own timeout.
func NATSTrouble(err error) bool {
	return transportTrouble(err) || errors.Is(err, context.DeadlineExceeded)
}

// DeferNATS turns an error from a NATS call into a deferral when NATS did
// not answer, and leaves any other error as it is.
func DeferNATS(err error) error {
	if err != nil && NATSTrouble(err) {
		return Defer(natsRetry, "NATS did not answer: "+err.Error())
	}
	return err
}

// Outcome names how the loop treats a handler's error, and the delay it
// carries: "ack" (nil), "defer", "unavailable", "permanent", "retry_after"
// (a counted failure retried after its delay) or "failure" (counted,
// back-off). Handlers' tests use it to check the error contract without
// reaching into these types.
func Outcome(err error) (string, time.Duration) {
	o, delay := classify(err)
	switch o {
	case outcomeAck:
		return "ack", 0
	case outcomeDefer:
		return "defer", delay
	case outcomeUnavailable:
		return "unavailable", 0
	case outcomeDeadLetter:
		return "permanent", 0
	}
	var r *retryAfterError
	if errors.As(err, &r) {
		return "retry_after", delay
	}
	return "failure", delay
}
