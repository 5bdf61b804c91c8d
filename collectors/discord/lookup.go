package discord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"

	"github.com/waddlebot/waddlebot/collectors"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/schemas"
)

// OpMember is the member lookup served on wb.api.discord.member.
const OpMember = "member"

// memberSearchLimit is how many members a name search asks for: the
// search matches prefixes, and the exact match is picked from them.
const memberSearchLimit = 10

// maxMemberName bounds what is sent as a search query: Discord names are
// at most 32 characters, so anything much longer matches nobody.
const maxMemberName = 100

// Discord JSON error codes a member lookup tells apart.
const (
	codeUnknownGuild  = 10004
	codeUnknownMember = 10007
	codeUnknownUser   = 10013
)

// APIMember is the data of a member answer.
type APIMember = collectors.APIMember

// APIConfig configures ServeAPI.
type APIConfig struct {
	Conn *natsx.Conn
	// Platform sends the lookups: its session, rate limiting and global
	// hold are the sender's.
	Platform *Platform
	Logger   *slog.Logger
}

// ServeAPI answers member lookups over wb.api.discord.* until ctx ends.
func ServeAPI(ctx context.Context, cfg APIConfig) error {
	if cfg.Platform == nil {
		return errors.New("discord: the API needs the platform")
	}
	return collectors.ServeAPI(ctx, collectors.APIServerConfig{
		Conn: cfg.Conn, Platform: schemas.PlatformDiscord, Logger: cfg.Logger,
		Ops: map[string]collectors.APIOp{
			OpMember: func(ctx context.Context, args map[string]string) (any, *schemas.APIError) {
				return cfg.Platform.Member(ctx, args)
			},
		},
	})
}

var snowflakeRE = regexp.MustCompile(`^[0-9]{15,21}$`)

func isSnowflake(s string) bool { return snowflakeRE.MatchString(s) }

var discriminatorRE = regexp.MustCompile(`#[0-9]{1,4}$`)

// parseMemberName reads what a user typed to name someone: a mention
// (<@id>, <@!id>) or a bare id gives id; otherwise name, without a leading
// @ or a legacy #discriminator. A bare id also comes back as name, since
// a username may be all digits.
func parseMemberName(s string) (id, name string) {
	s = strings.TrimSpace(s)
	if inner, ok := strings.CutPrefix(s, "<@"); ok {
		if inner, ok = strings.CutSuffix(inner, ">"); ok {
			inner = strings.TrimPrefix(inner, "!")
			if isSnowflake(inner) {
				return inner, ""
			}
			return "", ""
		}
	}
	if isSnowflake(s) {
		return s, s
	}
	s = strings.TrimSpace(strings.TrimPrefix(s, "@"))
	s = discriminatorRE.ReplaceAllString(s, "")
	return "", s
}

// Member finds a guild member by args.user_id or args.name (see OpMember).
func (p *Platform) Member(ctx context.Context, args map[string]string) (*APIMember, *schemas.APIError) {
	return collectors.MemberFinder{
		Platform: "Discord", Server: "a Discord server (guild) id",
		ValidServer: isSnowflake, ValidUser: isSnowflake, Parse: parseMemberName,
		ByID: p.memberByID,
		ByName: func(ctx context.Context, guild, name string) (*APIMember, *schemas.APIError) {
			if utf8.RuneCountInString(name) > maxMemberName {
				return nil, &schemas.APIError{Code: "not_found", Message: "no member of this Discord server has that name"}
			}
			return p.memberByName(ctx, guild, name)
		},
	}.Find(ctx, args)
}

// guildMember is the part of Discord's guild member object a lookup reads.
type guildMember struct {
	User struct {
		ID         string `json:"id"`
		Username   string `json:"username"`
		GlobalName string `json:"global_name"`
		Bot        bool   `json:"bot"`
	} `json:"user"`
	Nick string `json:"nick"`
}

func (m guildMember) answer() *APIMember {
	display := m.Nick
	if display == "" {
		display = m.User.GlobalName
	}
	if display == "" {
		display = m.User.Username
	}
	return &APIMember{ID: m.User.ID, Login: m.User.Username, DisplayName: display}
}

func (p *Platform) memberByID(ctx context.Context, guild, userID string) (*APIMember, *schemas.APIError) {
	body, apiErr := p.lookup(ctx, "Get Guild Member", discordgo.EndpointGuildMember(guild, userID), discordgo.EndpointGuildMember(guild, ""))
	if apiErr != nil {
		return nil, apiErr
	}
	var m guildMember
	if err := json.Unmarshal(body, &m); err != nil || m.User.ID == "" {
		return nil, &schemas.APIError{Code: "internal", Message: fmt.Sprintf("undecodable Get Guild Member answer: %q", truncate(body, 200))}
	}
	if m.User.Bot {
		// Nobody can link a bot's account: it cannot read a DM.
		return nil, &schemas.APIError{Code: "not_found", Message: "that is a bot, not a person"}
	}
	return m.answer(), nil
}

func (p *Platform) memberByName(ctx context.Context, guild, name string) (*APIMember, *schemas.APIError) {
	q := url.Values{"query": {name}, "limit": {fmt.Sprint(memberSearchLimit)}}
	body, apiErr := p.lookup(ctx, "Search Guild Members", discordgo.EndpointGuildMembersSearch(guild)+"?"+q.Encode(),
		discordgo.EndpointGuildMembersSearch(guild))
	if apiErr != nil {
		return nil, apiErr
	}
	var found []guildMember
	if err := json.Unmarshal(body, &found); err != nil {
		return nil, &schemas.APIError{Code: "internal", Message: fmt.Sprintf("undecodable Search Guild Members answer: %q", truncate(body, 200))}
	}
	return pickMember(found, name)
}

// pickMember picks the member name names exactly (case-insensitively):
// the username wins, since it is unique; a display name or nickname
// shared by several members is ambiguous.
func pickMember(found []guildMember, name string) (*APIMember, *schemas.APIError) {
	var byUsername, byDisplay []guildMember
	seen := map[string]bool{}
	for _, m := range found {
		if m.User.ID == "" || m.User.Bot || seen[m.User.ID] {
			continue
		}
		seen[m.User.ID] = true
		switch {
		case strings.EqualFold(m.User.Username, name):
			byUsername = append(byUsername, m)
		case strings.EqualFold(m.User.GlobalName, name) || strings.EqualFold(m.Nick, name):
			byDisplay = append(byDisplay, m)
		}
	}
	for _, matches := range [][]guildMember{byUsername, byDisplay} {
		switch len(matches) {
		case 0:
			continue
		case 1:
			return matches[0].answer(), nil
		default:
			return nil, &schemas.APIError{Code: "invalid",
				Message: fmt.Sprintf("the name %q is ambiguous: several members of this server go by it; mention the user (@them) instead", name)}
		}
	}
	return nil, &schemas.APIError{Code: "not_found", Message: fmt.Sprintf("no member of this Discord server is called %q", name)}
}

// lookup GETs endpoint through the session (its buckets and the global
// limiter), answering a failure as the API's typed error. A 429 is
// answered at once rather than waited out: the caller decides whether
// to ask again.
func (p *Platform) lookup(ctx context.Context, what, endpoint, bucket string) ([]byte, *schemas.APIError) {
	if until := p.globalUntil.Load(); until > time.Now().UnixNano() {
		return nil, &schemas.APIError{Code: "rate_limited", Message: what + ": Discord's global rate limit is in force"}
	}
	var seen observed
	base := p.session.Client
	if base == nil {
		base = http.DefaultClient
	}
	next := base.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	client := *base
	client.Transport = observer{next: next, into: &seen}
	body, err := p.session.RequestWithBucketID(http.MethodGet, endpoint, nil, bucket,
		discordgo.WithContext(ctx), discordgo.WithRetryOnRatelimit(false), discordgo.WithClient(&client))
	if err == nil {
		return body, nil
	}
	return nil, p.lookupError(what, err, seen.limited)
}

// lookupError turns a failed lookup into the API's typed error.
func (p *Platform) lookupError(what string, err error, limited *rateLimit) *schemas.APIError {
	var rle *discordgo.RateLimitError
	if limited != nil || errors.As(err, &rle) {
		if limited != nil && limited.Global {
			p.holdGlobal(limited.RetryAfter)
		}
		return &schemas.APIError{Code: "rate_limited", Message: what + ": Discord is rate limiting lookups; try again shortly"}
	}
	var rest *discordgo.RESTError
	if !errors.As(err, &rest) || rest.Response == nil {
		return &schemas.APIError{Code: "unavailable", Message: fmt.Sprintf("discord: unable to %s: %v", what, redactURL(err))}
	}
	status := rest.Response.StatusCode
	e, _ := parseAPIError(rest.ResponseBody)
	detail := fmt.Sprintf("%s: HTTP %d", what, status)
	if e.Code != 0 || e.Message != "" {
		detail = fmt.Sprintf("%s: HTTP %d, code %d: %s", what, status, e.Code, e.Message)
	}
	switch {
	case status == http.StatusNotFound && e.Code == codeUnknownGuild:
		return &schemas.APIError{Code: "not_found", Message: "WaddleBot is not in that Discord server"}
	case status == http.StatusNotFound && (e.Code == codeUnknownMember || e.Code == codeUnknownUser):
		return &schemas.APIError{Code: "not_found", Message: "that user is not a member of this Discord server"}
	case status == http.StatusNotFound:
		return &schemas.APIError{Code: "not_found", Message: "no such Discord member (" + detail + ")"}
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return &schemas.APIError{Code: "unauthorized", Message: detail}
	case status == http.StatusTooManyRequests:
		return &schemas.APIError{Code: "rate_limited", Message: detail}
	case status >= 500:
		return &schemas.APIError{Code: "unavailable", Message: detail}
	case status == http.StatusBadRequest:
		return &schemas.APIError{Code: "invalid", Message: detail}
	default:
		return &schemas.APIError{Code: "unavailable", Message: detail}
	}
}
