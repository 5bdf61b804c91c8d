package collectors

import (
	"context"
	"fmt"
	"strings"

	"github.com/waddlebot/waddlebot/schemas"
)

// APIMember is the data of a wb.api.<platform>.member answer (the field
// names of twitch.APIUser, so that callers read every platform alike).
type APIMember struct {
	ID          string `json:"id"`
	Login       string `json:"login"`
	DisplayName string `json:"display_name"`
}

// MemberFinder is one platform's way to find a member of a server, for the
// member lookup every collector with servers serves (args: server_id and
// one of user_id or name). The flow is the same everywhere; the platform
// says what its ids look like and how it asks.
type MemberFinder struct {
	// Platform and Server name them in messages: "Discord", "a Discord
	// server (guild) id".
	Platform, Server string
	ValidServer      func(id string) bool
	ValidUser        func(id string) bool
	// Parse reads what a user typed: a mention or bare id gives id; a name
	// (what is left after a leading @) gives name; a bare id may give both.
	Parse  func(raw string) (id, name string)
	ByID   func(ctx context.Context, server, id string) (*APIMember, *schemas.APIError)
	ByName func(ctx context.Context, server, name string) (*APIMember, *schemas.APIError)
}

// Find answers a member lookup.
func (f MemberFinder) Find(ctx context.Context, args map[string]string) (*APIMember, *schemas.APIError) {
	server := strings.TrimSpace(args["server_id"])
	if !f.ValidServer(server) {
		return nil, &schemas.APIError{Code: "invalid", Message: "member needs args.server_id, " + f.Server}
	}
	if userID := strings.TrimSpace(args["user_id"]); userID != "" {
		if !f.ValidUser(userID) {
			return nil, &schemas.APIError{Code: "invalid", Message: fmt.Sprintf("%q is not a %s user id", userID, f.Platform)}
		}
		return f.ByID(ctx, server, userID)
	}
	raw := args["name"]
	if strings.TrimSpace(raw) == "" {
		return nil, &schemas.APIError{Code: "invalid", Message: "member needs args.name or args.user_id"}
	}
	id, name := f.Parse(raw)
	if id != "" {
		m, apiErr := f.ByID(ctx, server, id)
		// A name may look like an id: an id that is no member is tried
		// as a name.
		if apiErr == nil || apiErr.Code != "not_found" || name == "" {
			return m, apiErr
		}
	}
	if name == "" {
		return nil, &schemas.APIError{Code: "invalid", Message: fmt.Sprintf("%q is not a %s user or mention", raw, f.Platform)}
	}
	return f.ByName(ctx, server, name)
}
