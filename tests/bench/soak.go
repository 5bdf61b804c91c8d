package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/waddlebot/waddlebot/internal/natsx"
	"github.com/waddlebot/waddlebot/schemas"
	"github.com/waddlebot/waddlebot/streams"
)

// SoakConfig is a soak run against a deployment whose parts run as separate
// processes (see deploy/soak/run.sh): this process only publishes console
// chat, watches WB_REPLIES and the consumers, and scrapes each part's
// /metrics.
type SoakConfig struct {
	NATSURL string
	// Creds is the NATS credentials file, if the cluster needs one.
	Creds        string
	Channels     int
	Users        int
	CommandShare float64
	Rate         int
	For          time.Duration
	// Every is the reporting interval.
	Every time.Duration
	// Parts are the /metrics endpoints, one per part replica.
	Parts []MetricsTarget
	// Modules are the modules whose WB_COMMANDS consumers are watched.
	Modules []string
	// Drain bounds the wait, after the last publish, for the backlog to
	// clear and every command to be answered.
	Drain time.Duration
	// Flatness is the growth allowed between the first and the last third
	// of the run's heap samples (0.2: +20 %).
	Flatness float64
	// Progress receives one line per interval (nil: none).
	Progress io.Writer
	Logger   *slog.Logger
}

// MetricsTarget is one part replica's /metrics URL.
type MetricsTarget struct {
	Name string
	URL  string
}

// SoakDefaults is the documented default soak.
func SoakDefaults() SoakConfig {
	return SoakConfig{Channels: 50, Users: 2000, CommandShare: 0.1, Rate: 200, For: 5 * time.Minute,
		Every: 10 * time.Second, Modules: []string{"core"}, Drain: 2 * time.Minute, Flatness: 0.2}
}

// ParseMetricsTargets reads "name=http://host:port/metrics,..." (a bare URL
// is named after its host:port; a URL without a path gets /metrics).
func ParseMetricsTargets(s string) ([]MetricsTarget, error) {
	var out []MetricsTarget
	seen := map[string]bool{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, u, ok := strings.Cut(item, "=")
		if !ok {
			u, name = item, ""
		}
		rest, found := strings.CutPrefix(u, "http://")
		if !found {
			if rest, found = strings.CutPrefix(u, "https://"); !found {
				return nil, fmt.Errorf("bench: metrics target %q: want name=http://host:port[/metrics]", item)
			}
		}
		host, path, _ := strings.Cut(rest, "/")
		if host == "" {
			return nil, fmt.Errorf("bench: metrics target %q has no host", item)
		}
		if path == "" {
			u = strings.TrimRight(u, "/") + "/metrics"
		}
		if name == "" {
			name = host
		}
		if seen[name] {
			return nil, fmt.Errorf("bench: metrics target name %q given twice", name)
		}
		seen[name] = true
		out = append(out, MetricsTarget{Name: name, URL: u})
	}
	return out, nil
}

// Pending is one consumer's backlog at a moment.
type Pending struct {
	Consumer   string // stream/durable
	NumPending uint64
	AckPending int
	Err        string
}

// PartMemory is one part replica's memory at a moment.
type PartMemory struct {
	Part      string
	RSS       float64 // process_resident_memory_bytes
	HeapInuse float64 // go_memstats_heap_inuse_bytes
	// LiveHeap is the heap that survived the last collection:
	// go_memstats_next_gc_bytes / (1 + go_gc_gogc_percent/100).
	LiveHeap float64
	Err      string
}

// liveHeap derives the heap live after the last GC from the heap goal. Heap
// in use is a sawtooth between that and (1+GOGC/100) times it — five times
// at the GOGC 400 the binary runs with — so over a few minutes it says
// more about where the sawtooth stood than about a leak; the goal moves
// only when what survives a collection does.
func liveHeap(m map[string]float64) float64 {
	goal, gogc := m[metricNextGC], m[metricGOGC]
	if gogc <= 0 {
		return goal
	}
	return goal * 100 / (100 + gogc)
}

// Interval is what one reporting interval saw.
type Interval struct {
	At        time.Duration // since the soak's start
	Events    int
	Commands  int
	Replies   int
	EventsPS  float64
	RepliesPS float64
	P50       time.Duration
	P95       time.Duration
	P99       time.Duration
	Max       time.Duration
	Pending   []Pending
	Memory    []PartMemory
}

// Accounting is the end-of-run correctness check.
type Accounting struct {
	Commands       int // commands published and stored
	Answered       int // commands with exactly one reply
	Missing        int // commands with no reply
	Duplicated     int // commands with more than one reply
	Unexpected     int // replies to events this run did not send as commands
	PublishFailed  int // publishes the server refused (not counted as commands)
	ReplyMessages  int // reply messages stored in WB_REPLIES (every part)
	SentBySenders  float64
	PossibleDupes  float64
	SendersScraped bool
}

// ExactlyOnce is true when every command got one reply and nothing else came.
func (a Accounting) ExactlyOnce() bool {
	return a.Missing == 0 && a.Duplicated == 0 && a.Unexpected == 0
}

// Flatness is a part's memory verdict, decided on the live heap.
type Flatness struct {
	Part       string
	LiveFirst  float64 // mean live heap over the first third of samples
	LiveLast   float64 // the same over the last third
	LiveMiddle float64 // the same over the middle third
	HeapFirst  float64 // heap in use, likewise
	HeapLast   float64
	RSSFirst   float64
	RSSLast    float64
	Samples    int
	Flat       bool
	// SettledFlat compares the last third with the middle one: a short
	// run's first third is still filling caches (every user seen for the
	// first time adds rate windows), which is growth that stops.
	SettledFlat   bool
	NotEnoughData bool
}

// SoakReport is a whole soak run.
type SoakReport struct {
	Config    SoakConfig
	Elapsed   time.Duration // publishing time
	Drained   time.Duration // time from the last publish until the backlog cleared
	Events    int
	Intervals []Interval
	Overall   Phase
	Account   Accounting
	Memory    []Flatness
}

// ledger matches replies to commands by event id.
type ledger struct {
	mu      sync.Mutex
	sentAt  map[string]time.Time
	replies map[string]int
	strays  int
	msgs    int
}

func newLedger() *ledger {
	return &ledger{sentAt: map[string]time.Time{}, replies: map[string]int{}}
}

// reset empties the books (the consumer goroutine keeps the same ledger).
func (l *ledger) reset() {
	l.mu.Lock()
	l.sentAt, l.replies, l.strays, l.msgs = map[string]time.Time{}, map[string]int{}, 0, 0
	l.mu.Unlock()
}

func (l *ledger) sent(id string, at time.Time) {
	l.mu.Lock()
	l.sentAt[id] = at
	l.mu.Unlock()
}

// unsend forgets a command whose publish failed: the server never had it,
// so no reply is owed.
func (l *ledger) unsend(id string) {
	l.mu.Lock()
	delete(l.sentAt, id)
	l.mu.Unlock()
}

// reply records a first reply part (part ≤ 1) to event id and returns its
// latency; first is false for a second reply to the same command.
func (l *ledger) reply(id string, at time.Time) (lat time.Duration, first bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	sent, ok := l.sentAt[id]
	if !ok {
		l.strays++
		return 0, false
	}
	l.replies[id]++
	return at.Sub(sent), l.replies[id] == 1
}

func (l *ledger) message() {
	l.mu.Lock()
	l.msgs++
	l.mu.Unlock()
}

func (l *ledger) answered() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.replies)
}

func (l *ledger) commands() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.sentAt)
}

func (l *ledger) check() Accounting {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := Accounting{Commands: len(l.sentAt), Unexpected: l.strays, ReplyMessages: l.msgs}
	for id := range l.sentAt {
		switch n := l.replies[id]; {
		case n == 0:
			a.Missing++
		case n == 1:
			a.Answered++
		default:
			a.Duplicated++
		}
	}
	return a
}

// MemoryFlatness compares the mean live heap of the first and the last
// third of a part's samples; growth up to tolerance (0.2: +20 %) is flat.
// Fewer than three samples decide nothing. Heap in use and RSS are
// summarised the same way, for the record.
func MemoryFlatness(part string, live, heap, rss []float64, tolerance float64) Flatness {
	f := Flatness{Part: part, Samples: len(live)}
	if len(live) < 3 {
		f.NotEnoughData = true
		return f
	}
	thirds := func(xs []float64) (float64, float64) {
		if len(xs) != len(live) {
			return 0, 0
		}
		n := len(xs) / 3
		return mean(xs[:n]), mean(xs[len(xs)-n:])
	}
	f.LiveFirst, f.LiveLast = thirds(live)
	n := len(live) / 3
	f.LiveMiddle = mean(live[n : len(live)-n])
	f.SettledFlat = f.LiveLast <= f.LiveMiddle*(1+tolerance)
	f.HeapFirst, f.HeapLast = thirds(heap)
	f.RSSFirst, f.RSSLast = thirds(rss)
	f.Flat = f.LiveLast <= f.LiveFirst*(1+tolerance)
	return f
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// ParseMetrics sums, per metric name, the samples of the names wanted in a
// Prometheus text exposition (labels ignored, so a labelled counter's
// series add up). Malformed lines are skipped: a part's /metrics is outside
// input.
func ParseMetrics(r io.Reader, wanted ...string) (map[string]float64, error) {
	want := map[string]bool{}
	for _, w := range wanted {
		want[w] = true
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest := line, ""
		if i := strings.IndexAny(line, "{ \t"); i >= 0 {
			name, rest = line[:i], line[i:]
		}
		if !want[name] {
			continue
		}
		if strings.HasPrefix(rest, "{") {
			end := strings.LastIndexByte(rest, '}')
			if end < 0 {
				continue
			}
			rest = rest[end+1:]
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		out[name] += v
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("bench: unable to read metrics: %w", err)
	}
	return out, nil
}

const (
	metricRSS        = "process_resident_memory_bytes"
	metricHeapInuse  = "go_memstats_heap_inuse_bytes"
	metricSent       = "waddlebot_replies_sent_total"
	metricPossibleDu = "waddlebot_possible_duplicate_sends_total"
	metricNextGC     = "go_memstats_next_gc_bytes"
	metricGOGC       = "go_gc_gogc_percent"
)

func scrape(ctx context.Context, client *http.Client, t MetricsTarget) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.URL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("bench: unable to scrape %s: %w", t.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("bench: scraping %s: %s", t.Name, resp.Status)
	}
	return ParseMetrics(resp.Body, metricRSS, metricHeapInuse, metricSent, metricPossibleDu, metricNextGC, metricGOGC)
}

// senderTotals sums the console deliveries over every target; ok is false
// when a target could not be read.
func senderTotals(ctx context.Context, client *http.Client, targets []MetricsTarget) (sent, dupes float64, ok bool) {
	ok = len(targets) > 0
	for _, t := range targets {
		m, err := scrape(ctx, client, t)
		if err != nil {
			ok = false
			continue
		}
		sent += m[metricSent]
		dupes += m[metricPossibleDu]
	}
	return sent, dupes, ok
}

type watched struct{ stream, durable string }

func (c SoakConfig) consumers() []watched {
	out := []watched{{schemas.StreamEvents, streams.ConsumerRouter}}
	for _, m := range c.Modules {
		out = append(out, watched{schemas.StreamCommands, m})
	}
	return append(out, watched{schemas.StreamReplies, streams.SenderConsumer(schemas.PlatformConsole)})
}

func pendingNow(ctx context.Context, js jetstream.JetStream, ws []watched) []Pending {
	var out []Pending
	for _, w := range ws {
		p := Pending{Consumer: w.stream + "/" + w.durable}
		c, err := js.Consumer(ctx, w.stream, w.durable)
		if err == nil {
			var info *jetstream.ConsumerInfo
			if info, err = c.Info(ctx); err == nil {
				p.NumPending, p.AckPending = info.NumPending, info.NumAckPending
			}
		}
		if err != nil {
			p.Err = err.Error()
		}
		out = append(out, p)
	}
	return out
}

// Soak runs the soak: a warm-up command in every channel, then the paced
// mix for cfg.For with a report every cfg.Every, then the drain and the
// accounting.
func Soak(ctx context.Context, cfg SoakConfig) (*SoakReport, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.NATSURL == "" || cfg.Rate <= 0 || cfg.For <= 0 || cfg.Every <= 0 || cfg.Channels <= 0 || cfg.Users <= 0 {
		return nil, errors.New("bench: soak needs a NATS URL and positive rate, duration, interval, channels and users")
	}
	conn, err := natsx.Connect(ctx, natsx.ConnectOptions{URL: cfg.NATSURL, Name: "waddlebot bench soak", Creds: cfg.Creds, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	// Unlike the bench, the soak runs against a deployment: the streams
	// and the parts must already be there.
	if err := streams.Verify(ctx, conn.JS); err != nil {
		return nil, fmt.Errorf("bench: soak: the cluster at %s is not set up (run `waddlebot streams apply`): %w", cfg.NATSURL, err)
	}
	ws := cfg.consumers()
	for _, w := range ws {
		if _, err := conn.JS.Consumer(ctx, w.stream, w.durable); err != nil {
			return nil, fmt.Errorf("bench: soak: consumer %s/%s missing (is that part running?): %w", w.stream, w.durable, err)
		}
	}
	client := &http.Client{Timeout: 5 * time.Second}
	load := newLoad(Config{Channels: cfg.Channels, Users: cfg.Users, CommandShare: cfg.CommandShare})

	var (
		mu   sync.Mutex
		book = newLedger()
		lat  []time.Duration // this interval's
		all  []time.Duration
	)
	reps, err := conn.JS.OrderedConsumer(ctx, schemas.StreamReplies, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{schemas.ReplyFilter(schemas.PlatformConsole)}, DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		return nil, fmt.Errorf("bench: soak: unable to watch %s: %w", schemas.StreamReplies, err)
	}
	// The stream, not a core subscription: a publish JetStream dropped as a
	// duplicate is no reply, and one stored twice under two ids is.
	cc, err := reps.Consume(func(m jetstream.Msg) {
		now := time.Now()
		var r struct {
			EventID string `json:"event_id"`
			Part    int    `json:"part"`
		}
		if json.Unmarshal(m.Data(), &r) != nil {
			return
		}
		book.message()
		if r.Part > 1 {
			return
		}
		if d, first := book.reply(r.EventID, now); first {
			mu.Lock()
			lat = append(lat, d)
			all = append(all, d)
			mu.Unlock()
		}
	})
	if err != nil {
		return nil, fmt.Errorf("bench: soak: unable to consume %s: %w", schemas.StreamReplies, err)
	}
	defer cc.Stop()

	type pubd struct {
		id    string
		isCmd bool
		f     jetstream.PubAckFuture
	}
	var futures []pubd
	publish := func() error {
		ev, isCmd := load.next()
		body, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		if isCmd {
			book.sent(ev.ID, time.Now())
		}
		f, err := conn.JS.PublishMsgAsync(&nats.Msg{Subject: ev.Subject(), Data: body,
			Header: nats.Header{jetstream.MsgIDHeader: []string{ev.ID}}})
		if err != nil {
			return fmt.Errorf("bench: soak: unable to publish: %w", err)
		}
		futures = append(futures, pubd{ev.ID, isCmd, f})
		return nil
	}

	// Warm-up: one command per channel, as in the bench, so the steady
	// run does not measure the first command's PostgreSQL writes.
	load.warming.Store(true)
	for range cfg.Channels {
		if err := publish(); err != nil {
			return nil, err
		}
	}
	load.warming.Store(false)
	if err := waitAnswered(ctx, book, cfg.Drain); err != nil {
		return nil, fmt.Errorf("bench: soak warm-up: %w", err)
	}
	// The soak's own books start after the warm-up.
	futures = futures[:0]
	book.reset()
	mu.Lock()
	lat, all = nil, nil
	mu.Unlock()
	sent0, dupes0, scraped0 := senderTotals(ctx, client, cfg.Parts)

	rep := &SoakReport{Config: cfg}
	heap := map[string][]float64{}
	rss := map[string][]float64{}
	live := map[string][]float64{}
	var lastEvents, lastCmds, lastReplies int
	var events int
	start := time.Now()
	lastTick := start
	tick := func(now time.Time) {
		mu.Lock()
		cur := lat
		lat = nil
		mu.Unlock()
		slices.Sort(cur)
		cmds, answered := book.commands(), book.answered()
		secs := now.Sub(lastTick).Seconds()
		iv := Interval{At: now.Sub(start), Events: events - lastEvents, Commands: cmds - lastCmds, Replies: answered - lastReplies}
		iv.EventsPS, iv.RepliesPS = float64(iv.Events)/secs, float64(iv.Replies)/secs
		if len(cur) > 0 {
			iv.P50, iv.P95, iv.P99, iv.Max = pct(cur, 50), pct(cur, 95), pct(cur, 99), cur[len(cur)-1]
		}
		iv.Pending = pendingNow(ctx, conn.JS, ws)
		for _, t := range cfg.Parts {
			pm := PartMemory{Part: t.Name}
			if m, err := scrape(ctx, client, t); err != nil {
				pm.Err = err.Error()
			} else {
				pm.RSS, pm.HeapInuse, pm.LiveHeap = m[metricRSS], m[metricHeapInuse], liveHeap(m)
				live[t.Name] = append(live[t.Name], pm.LiveHeap)
				heap[t.Name] = append(heap[t.Name], pm.HeapInuse)
				rss[t.Name] = append(rss[t.Name], pm.RSS)
			}
			iv.Memory = append(iv.Memory, pm)
		}
		lastEvents, lastCmds, lastReplies, lastTick = events, cmds, answered, now
		rep.Intervals = append(rep.Intervals, iv)
		if cfg.Progress != nil {
			PrintInterval(cfg.Progress, iv)
		}
	}

	// Paced in 1 ms slots, as the bench's steady phase.
	total := int(float64(cfg.Rate) * cfg.For.Seconds())
	perSlot := float64(cfg.Rate) / 1000
	credit := 0.0
	next := time.Now()
	nextTick := start.Add(cfg.Every)
	for events < total {
		credit += perSlot
		for credit >= 1 && events < total {
			if err := publish(); err != nil {
				return nil, err
			}
			credit--
			events++
		}
		next = next.Add(time.Millisecond)
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		if now := time.Now(); !now.Before(nextTick) {
			tick(now)
			nextTick = nextTick.Add(cfg.Every)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	rep.Elapsed = time.Since(start)
	rep.Events = events

	// Publish failures: the server never stored those events, so no reply
	// is owed; they are reported, not hidden.
	failed := 0
	for _, p := range futures {
		select {
		case <-p.f.Ok():
		case err := <-p.f.Err():
			cfg.Logger.Warn("bench: soak publish failed", "error", err)
			failed++
			if p.isCmd {
				book.unsend(p.id)
			}
		case <-time.After(30 * time.Second):
			return nil, errors.New("bench: soak: publishes not acknowledged in 30s")
		}
	}

	drainStart := time.Now()
	deadline := drainStart.Add(cfg.Drain)
	for {
		caught := true
		for _, w := range ws {
			ok, err := streams.CaughtUp(ctx, conn.JS, w.stream, w.durable)
			if err != nil || !ok {
				caught = false
				break
			}
		}
		if caught && book.answered() >= book.commands() {
			break
		}
		if time.Now().After(deadline) {
			cfg.Logger.Warn("bench: soak: backlog not cleared in the drain time", "drain", cfg.Drain)
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	rep.Drained = time.Since(drainStart)
	// A late duplicate (a redelivered invocation answered twice) would come
	// after the backlog cleared; give it a moment to show.
	time.Sleep(2 * time.Second)
	tick(time.Now())

	rep.Account = book.check()
	rep.Account.PublishFailed = failed
	sent1, dupes1, scraped1 := senderTotals(ctx, client, cfg.Parts)
	if scraped0 && scraped1 {
		rep.Account.SentBySenders, rep.Account.PossibleDupes, rep.Account.SendersScraped = sent1-sent0, dupes1-dupes0, true
	}
	mu.Lock()
	slices.Sort(all)
	mu.Unlock()
	rep.Overall = Phase{Name: "soak", Events: events, Commands: rep.Account.Commands, Replies: rep.Account.Answered,
		Elapsed: rep.Elapsed, EventsPS: float64(events) / rep.Elapsed.Seconds(), CommandPS: float64(rep.Account.Commands) / rep.Elapsed.Seconds()}
	if len(all) > 0 {
		rep.Overall.P50, rep.Overall.P95, rep.Overall.P99, rep.Overall.Max = pct(all, 50), pct(all, 95), pct(all, 99), all[len(all)-1]
	}
	for _, t := range cfg.Parts {
		rep.Memory = append(rep.Memory, MemoryFlatness(t.Name, live[t.Name], heap[t.Name], rss[t.Name], cfg.Flatness))
	}
	return rep, nil
}

func waitAnswered(ctx context.Context, book *ledger, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for book.answered() < book.commands() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d commands answered after %s", book.answered(), book.commands(), limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// PrintInterval writes one interval as a line (and a line of memory).
func PrintInterval(w io.Writer, iv Interval) {
	fmt.Fprintf(w, "%6.0fs  events/s %6.0f  replies/s %5.0f  p50 %s  p95 %s  p99 %s  max %s  pending",
		iv.At.Seconds(), iv.EventsPS, iv.RepliesPS, msd(iv.P50), msd(iv.P95), msd(iv.P99), msd(iv.Max))
	for _, p := range iv.Pending {
		if p.Err != "" {
			fmt.Fprintf(w, "  %s ?", p.Consumer)
			continue
		}
		fmt.Fprintf(w, "  %s %d/%d", p.Consumer, p.NumPending, p.AckPending)
	}
	fmt.Fprintln(w)
	if len(iv.Memory) == 0 {
		return
	}
	fmt.Fprint(w, "         memory (RSS/heap in use/live heap, MiB)")
	for _, m := range iv.Memory {
		if m.Err != "" {
			fmt.Fprintf(w, "  %s ?", m.Part)
			continue
		}
		fmt.Fprintf(w, "  %s %.1f/%.1f/%.1f", m.Part, m.RSS/(1<<20), m.HeapInuse/(1<<20), m.LiveHeap/(1<<20))
	}
	fmt.Fprintln(w)
}

func msd(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000) }

// PrintSoak writes the final report.
func PrintSoak(w io.Writer, r *SoakReport) {
	c, o, a := r.Config, r.Overall, r.Account
	fmt.Fprintf(w, "\nWaddleBot soak (%d channels, %d users, %.0f%% commands, %d events/s for %s; %d part replicas scraped)\n\n",
		c.Channels, c.Users, c.CommandShare*100, c.Rate, c.For, len(c.Parts))
	fmt.Fprintf(w, "events %d, commands %d, in %s (%.0f events/s, %.0f commands/s); backlog cleared %s after the last publish\n",
		o.Events, o.Commands, r.Elapsed.Round(time.Millisecond), o.EventsPS, o.CommandPS, r.Drained.Round(time.Millisecond))
	fmt.Fprintf(w, "reply latency p50 %s  p95 %s  p99 %s  max %s\n", msd(o.P50), msd(o.P95), msd(o.P99), msd(o.Max))
	fmt.Fprintf(w, "correctness: %d commands, %d answered exactly once, %d missing, %d duplicated, %d stray replies, %d publishes refused",
		a.Commands, a.Answered, a.Missing, a.Duplicated, a.Unexpected, a.PublishFailed)
	if a.ExactlyOnce() {
		fmt.Fprintln(w, " — EXACTLY ONCE")
	} else {
		fmt.Fprintln(w, " — FAILED")
	}
	if a.SendersScraped {
		fmt.Fprintf(w, "senders delivered %.0f reply messages (WB_REPLIES stored %d); possible duplicate sends %.0f\n",
			a.SentBySenders, a.ReplyMessages, a.PossibleDupes)
	}
	if len(r.Memory) > 0 {
		fmt.Fprintf(w, "\nMiB, mean of the first third of samples → of the last third; the verdict is on the live heap\n")
		fmt.Fprintf(w, "%-10s %7s %25s %16s %16s  %s\n", "part", "samples", "live heap (1st, mid, last)", "heap in use", "RSS", "verdict (1st→last; mid→last)")
		for _, f := range r.Memory {
			verdict := func(flat bool) string {
				if flat {
					return "flat"
				}
				return fmt.Sprintf("GREW >%.0f%%", c.Flatness*100)
			}
			v := verdict(f.Flat) + "; " + verdict(f.SettledFlat)
			if f.NotEnoughData {
				v = "too few samples"
			}
			fmt.Fprintf(w, "%-10s %7d %7.1f, %6.1f, %6.1f %7.1f → %6.1f %7.1f → %6.1f  %s\n", f.Part, f.Samples,
				f.LiveFirst/(1<<20), f.LiveMiddle/(1<<20), f.LiveLast/(1<<20), f.HeapFirst/(1<<20), f.HeapLast/(1<<20),
				f.RSSFirst/(1<<20), f.RSSLast/(1<<20), v)
		}
	}
}
