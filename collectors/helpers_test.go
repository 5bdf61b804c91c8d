package collectors_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/internal/metrics"
	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/internal/natsx/natstest"
	"github.com/waddlebot/waddlebot/schemas"
)

// metricValue reads one counter of the process's registry (0 when absent).
func metricValue(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func readStream(t *testing.T, conn *natsx.Conn, name string) []*jetstream.RawStreamMsg {
	t.Helper()
	return natstest.Messages(t, conn.JS, name, "")
}

func deadLetters(t *testing.T, conn *natsx.Conn) []schemas.DeadLetter {
	t.Helper()
	return natstest.Decode[schemas.DeadLetter](t, conn.JS, schemas.StreamDLQ, "")
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	natstest.Eventually(t, 15*time.Second, what, cond)
}
