package schemas

import (
	"strconv"
	"time"

	"github.com/google/uuid"
)

// Namespace roots every deterministic id WaddleBot makes. It never changes:
// changing it would make every retry after an upgrade look like new work.
var Namespace = uuid.MustParse("f7dcb97f-736b-41fe-984b-fe4d4968dc9b")

// EventID is the id of a platform event whose platform gives it an id of its
// own (a Twitch message id, a Discord snowflake, Slack's team:channel:ts), so
// that the platform's redeliveries get the same id and die in the stream's
// duplicate window.
func EventID(platform, platformKey string) string {
	return uuid.NewSHA1(Namespace, []byte(platform+":"+platformKey)).String()
}

// NewEventID is for events the platform gives no id: a time-ordered random id,
// made once by the collector and kept for every retry of that publish.
func NewEventID() string {
	return uuid.Must(uuid.NewV7()).String()
}

// InvocationID names the invocation of one module by one route of one event.
// Route is "cmd:<name>" or "on:<kind>", so one event may reach one module by
// two routes and still get two ids.
func InvocationID(eventID, module, route string) string {
	return uuid.NewSHA1(parseOrHash(eventID), []byte(module+":"+route)).String()
}

// FiringID stands in for an invocation id when a scheduled job fires.
func FiringID(jobID string, due time.Time) string {
	return uuid.NewSHA1(parseOrHash(jobID), []byte(due.UTC().Format(time.RFC3339Nano))).String()
}

// JobID names job n (from 1) a module schedules while handling an invocation,
// so a retried invocation schedules the same job, not a second one.
func JobID(parentID string, n int) string {
	return uuid.NewSHA1(parseOrHash(parentID), []byte("job:"+strconv.Itoa(n))).String()
}

// ReplyID names part n (from 1) of the replies to an invocation or firing.
func ReplyID(parentID string, n int) string {
	return uuid.NewSHA1(parseOrHash(parentID), []byte(strconv.Itoa(n))).String()
}

// OverlayID names overlay item n (from 1) of an invocation's result.
func OverlayID(parentID string, n int) string {
	return uuid.NewSHA1(parseOrHash(parentID), []byte("overlay:"+strconv.Itoa(n))).String()
}

// ReplayMsgID is the Nats-Msg-Id of a message replayed from the dead-letter
// stream: distinct from the original's, so the duplicate window lets it in,
// and the same for a repeated replay of one dead letter.
func ReplayMsgID(originalID string, dlqSeq uint64) string {
	return originalID + ":replay:" + strconv.FormatUint(dlqSeq, 10)
}

// parseOrHash lets any string serve as a namespace: our own ids are UUIDs,
// but a parent id may come from outside (a job id from a module).
func parseOrHash(id string) uuid.UUID {
	if u, err := uuid.Parse(id); err == nil {
		return u
	}
	return uuid.NewSHA1(Namespace, []byte(id))
}

func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	_, err := uuid.Parse(s)
	return err == nil
}
