// Package alerts is the alerts module: follows, subscriptions, gifts,
// raids and cheers become items for a community's `alerts` browser source,
// each kind with its own template, duration and on/off switch; and
// `!ticker <text>` (moderator+) sets the scrolling text of the `ticker`
// source, `!ticker clear` takes it away.
package alerts

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/waddlebot/waddlebot/actions"
	"github.com/waddlebot/waddlebot/schemas"
)

// Name is the module's name: its command subject is wb.cmd.alerts.
const Name = "alerts"

// Command feeds the ticker.
const Command = "ticker"

// MaxTickerText bounds the ticker so one item stays far below the message
// size limit whatever a moderator pastes.
const MaxTickerText = 500

// MaxTemplate bounds a template in the settings.
const MaxTemplate = 200

// Kind is the default presentation of one kind of event.
type Kind struct {
	Template   string
	DurationMS int
}

// Defaults are the templates and durations a community starts with.
var Defaults = map[schemas.Kind]Kind{
	schemas.KindFollow:       {"{user} just followed!", 5000},
	schemas.KindSubscription: {"{user} just subscribed at tier {tier}!", 7000},
	schemas.KindGift:         {"{user} gifted {count} subs!", 7000},
	schemas.KindRaid:         {"{user} is raiding with {viewers} viewers!", 8000},
	schemas.KindCheer:        {"{user} cheered {bits} bits!", 6000},
}

// kinds are the triggers, in a stable order.
var kinds = []schemas.Kind{schemas.KindFollow, schemas.KindSubscription, schemas.KindGift, schemas.KindRaid, schemas.KindCheer}

func kindSchema(k schemas.Kind) string {
	d := Defaults[k]
	return fmt.Sprintf(`{"type": "object", "additionalProperties": false, "properties": {
      "enabled": {"type": "boolean", "default": true, "description": "Show an alert for each %[1]s"},
      "template": {"type": "string", "maxLength": %[2]d, "default": %[3]q,
        "description": "The alert's text; placeholders {user}, {tier}, {count}, {viewers}, {bits}"},
      "duration_seconds": {"type": "number", "minimum": 1, "maximum": 60, "default": %[4]d,
        "description": "How long the alert stays on screen"}}}`, k, MaxTemplate, d.Template, d.DurationMS/1000)
}

func settingsSchema() string {
	parts := make([]string, 0, len(kinds))
	for _, k := range kinds {
		parts = append(parts, strconv.Quote(string(k))+": "+kindSchema(k))
	}
	return `{"type": "object", "additionalProperties": false, "properties": {` + strings.Join(parts, ",\n") + `}}`
}

// Manifest is the module's entry in the catalogue.
func Manifest() schemas.Manifest {
	triggers := make([]schemas.TriggerSpec, 0, len(kinds))
	for _, k := range kinds {
		triggers = append(triggers, schemas.TriggerSpec{Kind: k})
	}
	return schemas.Manifest{
		Name:           Name,
		Version:        "1.0.0",
		Description:    "On-stream alerts for follows, subscriptions, gifts, raids and cheers, and the ticker",
		DefaultEnabled: true,
		Commands: []schemas.CommandSpec{{
			Name:        Command,
			Usage:       "ticker <text> | ticker clear",
			Description: "Sets the text scrolling in the ticker browser source, or clears it",
			Permission:  string(schemas.RoleModerator),
		}},
		Triggers: triggers,
		Settings: json.RawMessage(settingsSchema()),
	}
}

// New builds the alerts module. It keeps nothing: everything it does goes
// out as overlay items.
func New() actions.Module {
	return actions.Module{Manifest: Manifest(), Handle: handle}
}

// kindSettings are one kind's settings with the defaults filled in.
type kindSettings struct {
	Enabled    bool
	Template   string
	DurationMS int
}

// readSettings reads the settings of kind; what is missing or out of range
// takes the default, so a bad setting never stops an alert.
func readSettings(raw json.RawMessage, k schemas.Kind) kindSettings {
	d := Defaults[k]
	s := kindSettings{Enabled: true, Template: d.Template, DurationMS: d.DurationMS}
	var all map[string]struct {
		Enabled         *bool    `json:"enabled"`
		Template        *string  `json:"template"`
		DurationSeconds *float64 `json:"duration_seconds"`
	}
	if len(raw) == 0 || json.Unmarshal(raw, &all) != nil {
		return s
	}
	typed, ok := all[string(k)]
	if !ok {
		return s
	}
	if typed.Enabled != nil {
		s.Enabled = *typed.Enabled
	}
	if t := typed.Template; t != nil && strings.TrimSpace(*t) != "" && utf8.RuneCountInString(*t) <= MaxTemplate {
		s.Template = *t
	}
	if n := typed.DurationSeconds; n != nil && *n >= 1 && *n <= 60 {
		s.DurationMS = int(*n * 1000)
	}
	return s
}

// AlertData is the Data of an alert item, for pages that draw kinds
// differently.
type AlertData struct {
	Kind    schemas.Kind `json:"kind"`
	User    string       `json:"user"`
	Tier    string       `json:"tier,omitempty"`
	Count   int          `json:"count,omitempty"`
	Viewers int          `json:"viewers,omitempty"`
	Bits    int          `json:"bits,omitempty"`
}

// TickerData is the Data of a ticker item.
type TickerData struct {
	Clear bool `json:"clear,omitempty"`
}

// Render fills a template's placeholders. The result is plain text: pages
// put it in the DOM as text, so a name full of markup shows as written.
func Render(template string, d AlertData) string {
	return strings.NewReplacer(
		"{user}", d.User,
		"{tier}", d.Tier,
		"{count}", strconv.Itoa(d.Count),
		"{viewers}", strconv.Itoa(d.Viewers),
		"{bits}", strconv.Itoa(d.Bits),
	).Replace(template)
}

// tierName turns the platforms' tier codes into what a viewer reads.
func tierName(t string) string {
	switch t {
	case "1000":
		return "1"
	case "2000":
		return "2"
	case "3000":
		return "3"
	case "prime":
		return "Prime"
	case "":
		return "1"
	}
	return t
}

func alertData(ev *schemas.Event) AlertData {
	d := AlertData{Kind: ev.Kind, User: ev.User.DisplayName}
	if d.User == "" {
		d.User = ev.User.Login
	}
	if d.User == "" {
		d.User = "Someone"
	}
	if ed := ev.Data; ed != nil {
		d.Tier, d.Count, d.Viewers, d.Bits = tierName(ed.Tier), ed.Count, ed.Viewers, ed.Bits
	} else {
		d.Tier = tierName("")
	}
	return d
}

func handle(_ context.Context, inv *schemas.Invocation, _ pgx.Tx) (*schemas.Result, error) {
	res := &schemas.Result{Version: schemas.Version, InvocationID: inv.ID, Module: Name}
	switch {
	case strings.HasPrefix(inv.Route, schemas.RouteTrigger):
		k := schemas.Kind(strings.TrimPrefix(inv.Route, schemas.RouteTrigger))
		if _, ok := Defaults[k]; !ok {
			return nil, fmt.Errorf("%w: alerts has no trigger %q", schemas.ErrInvalid, k)
		}
		set := readSettings(inv.Settings, k)
		if !set.Enabled {
			return res, nil
		}
		d := alertData(&inv.Event)
		data, err := json.Marshal(d)
		if err != nil {
			return nil, fmt.Errorf("alerts: unable to encode alert data: %w", err)
		}
		res.Overlays = []schemas.OverlayItem{{Source: schemas.OverlayAlert, Text: Render(set.Template, d), Data: data, DurationMS: set.DurationMS}}
	case inv.Command == Command:
		text := strings.TrimSpace(inv.ArgText)
		switch {
		case text == "":
			res.Replies = []schemas.ReplyText{{Text: fmt.Sprintf("Usage: %sticker <text> sets the ticker; %sticker clear clears it.",
				actions.CommandPrefix(inv), actions.CommandPrefix(inv))}}
		case strings.EqualFold(text, "clear"):
			res.Overlays = []schemas.OverlayItem{{Source: schemas.OverlayTicker, Data: json.RawMessage(`{"clear":true}`)}}
			res.Replies = []schemas.ReplyText{{Text: "Ticker cleared."}}
		case utf8.RuneCountInString(text) > MaxTickerText:
			res.Replies = []schemas.ReplyText{{Text: fmt.Sprintf("The ticker holds at most %d characters; that was %d.", MaxTickerText, utf8.RuneCountInString(text))}}
		default:
			res.Overlays = []schemas.OverlayItem{{Source: schemas.OverlayTicker, Text: text}}
			res.Replies = []schemas.ReplyText{{Text: "Ticker set."}}
		}
	default:
		return nil, fmt.Errorf("%w: alerts has no command %q (route %q)", schemas.ErrInvalid, inv.Command, inv.Route)
	}
	return res, nil
}
