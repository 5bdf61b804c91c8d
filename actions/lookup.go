package actions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/waddlebot/waddlebot/schemas"
)

// Requester sends a core NATS request and waits for its answer; a
// *nats.Conn is one.
type Requester interface {
	RequestWithContext(ctx context.Context, subject string, data []byte) (*nats.Msg, error)
}

// What a lookup over wb.api can come to, besides its data.
var (
	// ErrNotFound: the platform says there is no such user or channel.
	ErrNotFound = errors.New("actions: not found")
	// ErrLookupRefused: the collector refused the request as asked (an
	// ambiguous name, a missing argument); its message is for the user.
	ErrLookupRefused = errors.New("actions: lookup refused")
	// ErrUnreachable: no answer (no collector serving, a timeout) or the
	// platform failed; the user is told to try again later.
	ErrUnreachable = errors.New("actions: lookup unavailable")
)

// LookupError is a failed lookup: Kind is one of the errors above, Message
// what the collector said.
type LookupError struct {
	Kind    error
	Subject string
	Message string
}

func (e *LookupError) Error() string { return e.Kind.Error() + ": " + e.Subject + ": " + e.Message }
func (e *LookupError) Unwrap() error { return e.Kind }

// Lookup asks a collector for one wb.api.<platform>.<operation> and decodes
// its data into out (modules depend on the public wb.api contract, not on a
// collector's code). Every failure is a *LookupError.
func Lookup(ctx context.Context, r Requester, platform, operation, requestID string, args map[string]string, out any) error {
	subject := schemas.APISubject(platform, operation)
	fail := func(kind error, format string, a ...any) error {
		return &LookupError{Kind: kind, Subject: subject, Message: fmt.Sprintf(format, a...)}
	}
	if r == nil {
		return fail(ErrUnreachable, "the module was built without a NATS connection")
	}
	body, err := json.Marshal(schemas.APIRequest{Version: schemas.Version, ID: requestID, Operation: operation, Args: args})
	if err != nil {
		return fail(ErrUnreachable, "unable to encode the request: %v", err)
	}
	msg, err := r.RequestWithContext(ctx, subject, body)
	if err != nil {
		// nats.ErrNoResponders when no collector serves the API,
		// context.DeadlineExceeded when it did not answer in time.
		return fail(ErrUnreachable, "%v", err)
	}
	var resp schemas.APIResponse
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return fail(ErrUnreachable, "undecodable answer: %v", err)
	}
	if err := resp.Validate(); err != nil {
		return fail(ErrUnreachable, "answer: %v", err)
	}
	if resp.Error != nil {
		switch resp.Error.Code {
		case "not_found":
			return fail(ErrNotFound, "%s", resp.Error.Message)
		case "invalid":
			return fail(ErrLookupRefused, "%s", resp.Error.Message)
		}
		return fail(ErrUnreachable, "%s", resp.Error.Error())
	}
	if err := json.Unmarshal(resp.Data, out); err != nil {
		return fail(ErrUnreachable, "undecodable data: %v", err)
	}
	return nil
}
