package reputation

import (
	"encoding/json"
	"math"

	"github.com/waddlebot/waddlebot/schemas"
)

// Weights are what each kind of activity moves a score by, in points; a
// community sets its own in the module's settings. Defaults are the
// reference ones.
type Weights struct {
	Chat            float64 `json:"chat"`
	Follow          float64 `json:"follow"`
	Tier1           float64 `json:"subscription_tier1"`
	Tier2           float64 `json:"subscription_tier2"`
	Tier3           float64 `json:"subscription_tier3"`
	Prime           float64 `json:"subscription_prime"`
	GiftPerSub      float64 `json:"gift_per_sub"`
	CheerPer100Bits float64 `json:"cheer_per_100_bits"`
	Raid            float64 `json:"raid"`
	Timeout         float64 `json:"timeout"`
	Ban             float64 `json:"ban"`
}

// DefaultWeights are the reference weights.
func DefaultWeights() Weights {
	return Weights{Chat: 0.01, Follow: 1, Tier1: 5, Tier2: 10, Tier3: 20, Prime: 5, GiftPerSub: 3,
		CheerPer100Bits: 1, Raid: 2, Timeout: -50, Ban: -200}
}

// settingsSchema is the JSON Schema of the module's settings, for the
// portal. A weight outside it is ignored (the default applies), so a bad
// setting never stops scoring.
var settingsSchema = json.RawMessage(`{
  "type": "object",
  "title": "Reputation weights, in points (scores run from 300 to 850, 600 to start)",
  "properties": {
    "chat":               {"type": "number", "minimum": -550, "maximum": 550, "multipleOf": 0.01, "default": 0.01, "description": "per chat credit (at most one a minute per user)"},
    "follow":             {"type": "number", "minimum": -550, "maximum": 550, "multipleOf": 0.01, "default": 1},
    "subscription_tier1": {"type": "number", "minimum": -550, "maximum": 550, "multipleOf": 0.01, "default": 5},
    "subscription_tier2": {"type": "number", "minimum": -550, "maximum": 550, "multipleOf": 0.01, "default": 10},
    "subscription_tier3": {"type": "number", "minimum": -550, "maximum": 550, "multipleOf": 0.01, "default": 20},
    "subscription_prime": {"type": "number", "minimum": -550, "maximum": 550, "multipleOf": 0.01, "default": 5},
    "gift_per_sub":       {"type": "number", "minimum": -550, "maximum": 550, "multipleOf": 0.01, "default": 3, "description": "to the gifter, per sub gifted"},
    "cheer_per_100_bits": {"type": "number", "minimum": -550, "maximum": 550, "multipleOf": 0.01, "default": 1},
    "raid":               {"type": "number", "minimum": -550, "maximum": 550, "multipleOf": 0.01, "default": 2, "description": "to the raiding broadcaster"},
    "timeout":            {"type": "number", "minimum": -550, "maximum": 550, "multipleOf": 0.01, "default": -50},
    "ban":                {"type": "number", "minimum": -550, "maximum": 550, "multipleOf": 0.01, "default": -200}
  },
  "additionalProperties": false
}`)

// parseWeights reads a community's settings over the defaults. Each weight
// stands alone: one out of range or of the wrong type keeps its default and
// the others still apply.
func parseWeights(settings json.RawMessage) Weights {
	w := DefaultWeights()
	if len(settings) == 0 {
		return w
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(settings, &raw); err != nil {
		return w
	}
	for name, field := range map[string]*float64{
		"chat": &w.Chat, "follow": &w.Follow, "subscription_tier1": &w.Tier1, "subscription_tier2": &w.Tier2,
		"subscription_tier3": &w.Tier3, "subscription_prime": &w.Prime, "gift_per_sub": &w.GiftPerSub,
		"cheer_per_100_bits": &w.CheerPer100Bits, "raid": &w.Raid, "timeout": &w.Timeout, "ban": &w.Ban,
	} {
		v, ok := raw[name]
		if !ok {
			continue
		}
		var f float64
		if err := json.Unmarshal(v, &f); err != nil || math.IsNaN(f) || math.Abs(f) > MaxAdjust {
			continue
		}
		*field = f
	}
	return w
}

// hundredths turns points into the ledger's unit (chat earns 0.01).
func hundredths(points float64) int64 { return int64(math.Round(points * 100)) }

// requested is what an event asks to move its subject's score by, in
// hundredths, and whether the event moves a score at all.
func (w Weights) requested(ev *schemas.Event) (int64, bool) {
	data := ev.Data
	if data == nil {
		data = &schemas.EventData{}
	}
	switch ev.Kind {
	case schemas.KindChat:
		return hundredths(w.Chat), true
	case schemas.KindFollow:
		return hundredths(w.Follow), true
	case schemas.KindSubscription:
		if data.Gifted {
			// The gifter earned it with the gift event; the recipient
			// did nothing.
			return 0, false
		}
		switch data.Tier {
		case "2000":
			return hundredths(w.Tier2), true
		case "3000":
			return hundredths(w.Tier3), true
		case "prime":
			return hundredths(w.Prime), true
		}
		return hundredths(w.Tier1), true // "1000", and a platform that has no tiers
	case schemas.KindGift:
		return hundredths(w.GiftPerSub) * int64(max(data.Count, 1)), true
	case schemas.KindCheer:
		if data.Bits <= 0 {
			return 0, false
		}
		// Proportional: 150 bits earn one and a half times 100.
		return hundredths(w.CheerPer100Bits) * int64(min(data.Bits, 10_000_000)) / 100, true
	case schemas.KindRaid:
		return hundredths(w.Raid), true
	case schemas.KindTimeout:
		return hundredths(w.Timeout), true
	case schemas.KindBan:
		return hundredths(w.Ban), true
	}
	return 0, false
}
