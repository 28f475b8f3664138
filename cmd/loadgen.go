package cmd

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/danmaku/danmaku/bucketer"
	"github.com/danmaku/danmaku/client"
	"github.com/danmaku/danmaku/internal/corpus"
	"github.com/danmaku/danmaku/internal/keys"
)

type loadgenOptions struct {
	Base       string
	Ingest     string
	Rooms      int
	RoomPrefix string
	Players    int
	PostRate   float64
	Batch      int
	Posters    int
	Duration   time.Duration
	Warmup     time.Duration
	Hold       time.Duration
	Seed       uint64
	JSON       bool
	// OriginMetrics, if set, is the origin's base URL: its request counter
	// is read as the measurement starts and ends.
	OriginMetrics string
}

func (o *loadgenOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Base, "base", "http://127.0.0.1:8080", "URL players read from: the origin, or a CDN or caching proxy in front of it")
	fs.StringVar(&o.Ingest, "ingest", "", "URL posts go to (default: --base)")
	fs.IntVar(&o.Rooms, "rooms", 10, "rooms to spread players and posts over")
	fs.StringVar(&o.RoomPrefix, "room-prefix", "lg", "room names are this prefix and a number: lg0, lg1, …")
	fs.IntVar(&o.Players, "players", 100, "simulated players, each a Go client polling one room (player i reads room i mod --rooms)")
	fs.Float64Var(&o.PostRate, "post-rate", 20, "messages posted per second over all rooms (0: none)")
	fs.IntVar(&o.Batch, "batch", 1, "messages per POST (a batch from one user)")
	fs.IntVar(&o.Posters, "posters", 32, "POSTs in flight at most")
	fs.DurationVar(&o.Duration, "duration", 30*time.Second, "how long to measure, after the warm-up")
	fs.DurationVar(&o.Warmup, "warmup", 5*time.Second, "time to start players and reach a steady state before measuring")
	fs.DurationVar(&o.Hold, "hold", 3*time.Second, "the origin's --hold, so players' timeouts fit it")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed of the generated comments posted")
	fs.BoolVar(&o.JSON, "json", false, "print one JSON object with every figure instead of a table")
	fs.StringVar(&o.OriginMetrics, "origin-metrics", "", "base URL of the origin behind --base (e.g. http://127.0.0.1:8080): report its requests per room and second from its /metrics")
}

func newLoadgenCommand() *cobra.Command {
	opts := &loadgenOptions{}
	c := &cobra.Command{
		Use:   "loadgen",
		Short: "Simulate players polling rooms and posters posting; print throughput and latency",
		Long: `Run simulated players (the Go client, one goroutine each, sharing one HTTP
transport) that poll --rooms rooms through --base, and posters that post
generated comments at --post-rate messages a second. After --warmup it measures
for --duration: requests per second, answers by status, body bytes per
viewer-second, and the post-to-visible latency (from sending a POST to a player
handing out the message) at p50, p90, p99 and max over every (message, player)
pair. Messages posted while measuring that a player of their room never saw are
counted as missed.`,
		Example: `  danmaku loadgen --players 1000 --rooms 10 --post-rate 50 --duration 30s
  danmaku loadgen --base http://127.0.0.1:6081 --ingest http://127.0.0.1:8080 --json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := bindEnv(c.Flags()); err != nil {
				return err
			}
			res, err := runLoadgen(c.Context(), opts)
			if err != nil {
				return err
			}
			return res.print(c.OutOrStdout(), opts.JSON)
		},
	}
	opts.AddFlags(c.Flags())
	addEnvHelp(c.Flags())
	return c
}

func (o *loadgenOptions) validate() error {
	for _, u := range []struct{ flag, v string }{{"--base", o.Base}, {"--ingest", o.Ingest}, {"--origin-metrics", o.OriginMetrics}} {
		if u.v == "" {
			continue
		}
		p, err := url.Parse(u.v)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return usagef("%s %q: want an http(s) URL", u.flag, u.v)
		}
	}
	if o.Rooms < 1 || o.Players < 0 || o.PostRate < 0 || o.Batch < 1 || o.Posters < 1 {
		return usagef("--rooms, --batch and --posters must be at least 1; --players and --post-rate at least 0")
	}
	if !keys.ValidRoom(o.RoomPrefix + strconv.Itoa(o.Rooms-1)) {
		return usagef("--room-prefix %q: %v", o.RoomPrefix, keys.ErrRoom)
	}
	if o.Duration <= 0 || o.Warmup < 0 || o.Hold <= 0 {
		return usagef("--duration and --hold must be positive, --warmup at least 0")
	}
	return nil
}

// loadgenResult is every figure of a run; --json prints it as is.
type loadgenResult struct {
	Base           string           `json:"base"`
	Ingest         string           `json:"ingest"`
	Rooms          int              `json:"rooms"`
	Players        int              `json:"players"`
	PostRate       float64          `json:"post_rate"`
	Batch          int              `json:"batch"`
	Seconds        float64          `json:"seconds"` // the measured window
	Requests       int64            `json:"requests"`
	RequestsPerSec float64          `json:"requests_per_second"`
	ByKind         map[string]int64 `json:"requests_by_kind"`
	ByStatus       map[string]int64 `json:"requests_by_status"` // "200", "404", …, "network" for no answer
	Errors         int64            `json:"errors"`             // answers ≥ 400 and network errors
	BodyBytes      int64            `json:"body_bytes"`
	BytesPerViewer float64          `json:"bytes_per_viewer_second"` // body bytes as received, per player and second
	Messages       int64            `json:"messages_seen"`           // messages handed out to players
	Posts          postFigures      `json:"posts"`
	Visible        latencyFigures   `json:"post_to_visible_ms"`
	Missed         int64            `json:"missed"` // (message, player) pairs not seen by the end
	FatalPlayers   int64            `json:"fatal_players"`
	Origin         *originFigures   `json:"origin,omitempty"`
}

// originFigures is the load that reached the origin while measuring, from
// its danmaku_origin_requests_total.
type originFigures struct {
	Requests       float64 `json:"requests"`        // buckets, segments and heads
	BucketRequests float64 `json:"bucket_requests"` // buckets alone
	PerRoomSecond  float64 `json:"requests_per_room_second"`
	BucketsPerRS   float64 `json:"bucket_requests_per_room_second"`
}

// originRequests reads the origin's request counters: all kinds, and buckets.
func originRequests(base string) (all, buckets float64, err error) {
	resp, err := http.Get(strings.TrimRight(base, "/") + "/metrics")
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	found := false
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "danmaku_origin_requests_total{")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			continue
		}
		found = true
		all += v
		if strings.Contains(rest, `kind="bucket"`) {
			buckets += v
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if !found {
		return 0, 0, fmt.Errorf("loadgen: %s/metrics has no danmaku_origin_requests_total", base)
	}
	return all, buckets, nil
}

type postFigures struct {
	Sent      int64          `json:"sent"`
	Accepted  int64          `json:"accepted"`
	Messages  int64          `json:"messages"`
	Failed    int64          `json:"failed"`
	PerSecond float64        `json:"messages_per_second"`
	Latency   latencyFigures `json:"latency_ms"` // POST to 202
}

type latencyFigures struct {
	Samples int64   `json:"samples"`
	P50     float64 `json:"p50"`
	P90     float64 `json:"p90"`
	P99     float64 `json:"p99"`
	Max     float64 `json:"max"`
}

// histogram counts durations in 1 ms bins up to a minute, lock-free.
type histogram struct {
	bins [60001]atomic.Int64
	n    atomic.Int64
}

func (h *histogram) add(d time.Duration) {
	ms := min(max(d.Milliseconds(), 0), int64(len(h.bins)-1))
	h.bins[ms].Add(1)
	h.n.Add(1)
}

func (h *histogram) figures() latencyFigures {
	n := h.n.Load()
	f := latencyFigures{Samples: n}
	if n == 0 {
		return f
	}
	q := func(p float64) float64 {
		rank := int64(math.Ceil(p * float64(n)))
		var seen int64
		for i := range h.bins {
			seen += h.bins[i].Load()
			if seen >= max(rank, 1) {
				return float64(i)
			}
		}
		return float64(len(h.bins) - 1)
	}
	f.P50, f.P90, f.P99, f.Max = q(0.5), q(0.9), q(0.99), q(1)
	return f
}

// tracker matches messages players see to when they were posted.
type tracker struct {
	seed   maphash.Seed
	shards [64]trackerShard
}

type posted struct {
	sent    time.Time // zero until the 202 named this id
	room    int
	counted bool        // posted inside the measured window
	seen    int         // players that handed it out
	early   []time.Time // seen before the poster learnt the id
}

func newTracker() *tracker {
	t := &tracker{seed: maphash.MakeSeed()}
	for i := range t.shards {
		t.shards[i].recs = map[string]*posted{}
	}
	return t
}

// trackerShard is one lock's share of the records.
type trackerShard struct {
	mu   sync.Mutex
	recs map[string]*posted // by message id
}

func (t *tracker) shard(id string) *trackerShard {
	return &t.shards[maphash.String(t.seed, id)%uint64(len(t.shards))]
}

// rec returns id's record, made if new; the caller holds s.mu.
func (s *trackerShard) rec(id string) *posted {
	p := s.recs[id]
	if p == nil {
		p = &posted{}
		s.recs[id] = p
	}
	return p
}

// sent records a posted message; the early sightings of it are measured now.
func (t *tracker) sent(id string, room int, at time.Time, counted bool, lat *histogram) {
	s := t.shard(id)
	s.mu.Lock()
	p := s.rec(id)
	p.sent, p.room, p.counted = at, room, counted
	early := p.early
	p.early = nil
	s.mu.Unlock()
	if counted {
		for _, e := range early {
			lat.add(e.Sub(at))
		}
	}
}

// saw records a player handing out message id.
func (t *tracker) saw(id string, at time.Time, lat *histogram) {
	s := t.shard(id)
	s.mu.Lock()
	p := s.rec(id)
	p.seen++
	if p.sent.IsZero() {
		p.early = append(p.early, at)
		s.mu.Unlock()
		return
	}
	sent, counted := p.sent, p.counted
	s.mu.Unlock()
	if counted {
		lat.add(at.Sub(sent))
	}
}

// missed counts (message, player) pairs of counted messages posted before
// cutoff that a player of their room did not see.
func (t *tracker) missed(playersIn func(room int) int, cutoff time.Time) int64 {
	var n int64
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for _, p := range s.recs {
			if p.counted && !p.sent.IsZero() && p.sent.Before(cutoff) {
				n += int64(max(playersIn(p.room)-p.seen, 0))
			}
		}
		s.mu.Unlock()
	}
	return n
}

// counters are the request figures of the measured window.
type counters struct {
	mu       sync.Mutex // guards byKind and byStatus
	byKind   map[string]int64
	byStatus map[string]int64
	requests atomic.Int64
	errors   atomic.Int64
	bytes    atomic.Int64
	messages atomic.Int64
}

func (c *counters) request(r client.Request) {
	c.requests.Add(1)
	c.bytes.Add(int64(r.Bytes))
	status := strconv.Itoa(r.Status)
	if r.Status == 0 {
		status = "network"
	}
	if r.Status == 0 || r.Status >= 400 {
		c.errors.Add(1)
	}
	c.mu.Lock()
	c.byKind[r.Kind]++
	c.byStatus[status]++
	c.mu.Unlock()
}

func runLoadgen(ctx context.Context, opts *loadgenOptions) (*loadgenResult, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if opts.Ingest == "" {
		opts.Ingest = opts.Base
	}
	room := func(i int) string { return opts.RoomPrefix + strconv.Itoa(i%opts.Rooms) }
	playersIn := func(r int) int {
		n := opts.Players / opts.Rooms
		if r < opts.Players%opts.Rooms {
			n++
		}
		return n
	}

	start := time.Now()
	measureFrom := start.Add(opts.Warmup)
	measureTo := measureFrom.Add(opts.Duration)
	inWindow := func(t time.Time) bool { return !t.Before(measureFrom) && t.Before(measureTo) }

	var (
		cnt     = &counters{byKind: map[string]int64{}, byStatus: map[string]int64{}}
		track   = newTracker()
		visible = &histogram{}
		postLat = &histogram{}
		fatal   atomic.Int64
	)

	// Players share one transport with an idle connection for each, since
	// every player keeps one request (often held by the origin) open.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableCompression = true
	tr.MaxIdleConns = opts.Players + 16
	tr.MaxIdleConnsPerHost = opts.Players + 16
	tr.ForceAttemptHTTP2 = false
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	// At the room's rate, the last few hundred ids are all a player needs to
	// drop repeats (a segment overlaps at most 10 s of buckets).
	perRoom := opts.PostRate / float64(opts.Rooms)
	dedup := int(min(max(perRoom*30, 64), 10000))

	pctx, stopPlayers := context.WithCancel(ctx)
	defer stopPlayers()
	var players sync.WaitGroup
	ramp := min(opts.Warmup/2, 2*time.Second)
	for i := 0; i < opts.Players; i++ {
		c, err := client.New(client.Config{
			BaseURL:     opts.Base,
			Room:        room(i),
			HTTPClient:  hc,
			Hold:        opts.Hold,
			DedupWindow: dedup,
			OnRequest: func(r client.Request) {
				if inWindow(time.Now()) {
					cnt.request(r)
				}
			},
		})
		if err != nil {
			return nil, err
		}
		players.Add(1)
		go func() {
			defer players.Done()
			if ramp > 0 && !sleepCtx(pctx, time.Duration(int64(i)*int64(ramp)/int64(opts.Players))) {
				return
			}
			for m, err := range c.Messages(pctx) {
				if err != nil {
					fatal.Add(1)
					return
				}
				now := time.Now()
				track.saw(m.ID, now, visible)
				if inWindow(now) {
					cnt.messages.Add(1)
				}
			}
		}()
	}

	// Posters: a clock hands out POSTs at the rate; a pool sends them.
	var pf struct{ sent, accepted, messages, failed atomic.Int64 }
	var posters sync.WaitGroup
	if opts.PostRate > 0 {
		gen := corpus.Generate(opts.Seed, 0, 1, 5000)
		type job struct {
			room int
			msgs []client.Post
		}
		jobs := make(chan job, 4*opts.Posters)
		ptr := http.DefaultTransport.(*http.Transport).Clone()
		ptr.MaxIdleConnsPerHost = opts.Posters
		defer ptr.CloseIdleConnections()
		phc := &http.Client{Transport: ptr}
		posterOf := make([]*client.Client, opts.Rooms)
		for r := range posterOf {
			c, err := client.New(client.Config{BaseURL: opts.Base, IngestURL: opts.Ingest, Room: room(r), HTTPClient: phc})
			if err != nil {
				return nil, err
			}
			posterOf[r] = c
		}
		for w := 0; w < opts.Posters; w++ {
			posters.Add(1)
			go func() {
				defer posters.Done()
				for j := range jobs {
					at := time.Now()
					acc, err := posterOf[j.room].PostMessages(pctx, j.msgs...)
					counted := inWindow(at)
					if counted {
						pf.sent.Add(1)
					}
					if err != nil {
						if counted {
							pf.failed.Add(1)
						}
						continue
					}
					if counted {
						pf.accepted.Add(1)
						pf.messages.Add(int64(len(acc)))
						postLat.add(time.Since(at))
					}
					for _, a := range acc {
						track.sent(a.ID, j.room, at, counted, visible)
					}
				}
			}()
		}
		posters.Add(1)
		go func() {
			defer posters.Done()
			defer close(jobs)
			every := time.Duration(float64(opts.Batch) / opts.PostRate * float64(time.Second))
			next := time.Now()
			for k := 0; ; k++ {
				next = next.Add(every)
				if !time.Now().Before(measureTo) || !sleepCtx(pctx, time.Until(next)) {
					return
				}
				j := job{room: k % opts.Rooms}
				for b := 0; b < opts.Batch; b++ {
					m := gen[(k*opts.Batch+b)%len(gen)]
					first := gen[(k*opts.Batch)%len(gen)] // one user per batch
					p := client.Post{Text: m.Text, UserID: first.UserID, UserName: first.UserName}
					if m.Color != bucketer.DefaultColor {
						p.Color = fmt.Sprintf("#%06x", m.Color)
					}
					if m.Mode != 0 {
						p.Mode = bucketer.Mode(m.Mode).String()
					}
					j.msgs = append(j.msgs, p)
				}
				select {
				case jobs <- j:
				case <-pctx.Done():
					return
				}
			}
		}()
	}

	// Measure, then let what was posted last reach the players.
	var origin *originFigures
	var originErr error
	if opts.OriginMetrics != "" {
		// Read the counter at the same phase of a second, 0.6 s in, far
		// from when seconds seal (0.1 to 0.3 s in): a seal a little late
		// or early then does not move a request across the window's edge.
		from := measureFrom.Truncate(time.Second).Add(600 * time.Millisecond)
		if from.Before(measureFrom) {
			from = from.Add(time.Second)
		}
		to := from.Add(opts.Duration.Truncate(time.Second))
		if !sleepCtx(ctx, time.Until(from)) {
			return nil, ctx.Err()
		}
		all0, b0, err := originRequests(opts.OriginMetrics)
		if !sleepCtx(ctx, time.Until(to)) {
			return nil, ctx.Err()
		}
		all1, b1, err1 := originRequests(opts.OriginMetrics)
		if originErr = errors.Join(err, err1); originErr == nil {
			rs := float64(opts.Rooms) * opts.Duration.Truncate(time.Second).Seconds()
			origin = &originFigures{Requests: all1 - all0, BucketRequests: b1 - b0, PerRoomSecond: (all1 - all0) / rs, BucketsPerRS: (b1 - b0) / rs}
		}
	}
	if !sleepCtx(ctx, time.Until(measureTo)) {
		return nil, ctx.Err()
	}
	posters.Wait()
	// A message posted last is sealed a second later and handed out at
	// once; a held request ends within the hold.
	sleepCtx(ctx, min(opts.Hold+2*time.Second, 3*time.Second))
	stopPlayers()
	players.Wait()

	secs := opts.Duration.Seconds()
	res := &loadgenResult{
		Base: opts.Base, Ingest: opts.Ingest, Rooms: opts.Rooms, Players: opts.Players,
		PostRate: opts.PostRate, Batch: opts.Batch, Seconds: secs,
		Requests:       cnt.requests.Load(),
		RequestsPerSec: float64(cnt.requests.Load()) / secs,
		ByKind:         cnt.byKind,
		ByStatus:       cnt.byStatus,
		Errors:         cnt.errors.Load(),
		BodyBytes:      cnt.bytes.Load(),
		Messages:       cnt.messages.Load(),
		Visible:        visible.figures(),
		Missed:         track.missed(playersIn, measureTo),
		FatalPlayers:   fatal.Load(),
		Origin:         origin,
		Posts: postFigures{
			Sent: pf.sent.Load(), Accepted: pf.accepted.Load(), Messages: pf.messages.Load(), Failed: pf.failed.Load(),
			PerSecond: float64(pf.messages.Load()) / secs, Latency: postLat.figures(),
		},
	}
	if opts.Players > 0 {
		res.BytesPerViewer = float64(res.BodyBytes) / float64(opts.Players) / secs
	}
	if originErr != nil {
		return res, originErr
	}
	if res.FatalPlayers > 0 {
		return res, fmt.Errorf("loadgen: %d players stopped on an error retrying cannot fix", res.FatalPlayers)
	}
	return res, nil
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (r *loadgenResult) print(w io.Writer, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	counts := func(m map[string]int64) string {
		ks := slices.Sorted(func(yield func(string) bool) {
			for k := range m {
				if !yield(k) {
					return
				}
			}
		})
		s := ""
		for _, k := range ks {
			if s != "" {
				s += ", "
			}
			s += fmt.Sprintf("%s %d", k, m[k])
		}
		if s == "" {
			return "none"
		}
		return s
	}
	lat := func(l latencyFigures) string {
		if l.Samples == 0 {
			return "no samples"
		}
		return fmt.Sprintf("p50 %.0f ms, p90 %.0f ms, p99 %.0f ms, max %.0f ms (%d samples)", l.P50, l.P90, l.P99, l.Max, l.Samples)
	}
	fmt.Fprintf(w, "danmaku loadgen: %d players over %d rooms via %s, %.4g msgs/s posted to %s in batches of %d; %.0f s measured\n\n",
		r.Players, r.Rooms, r.Base, r.PostRate, r.Ingest, r.Batch, r.Seconds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "requests\t%d (%.1f/s)\t%s\n", r.Requests, r.RequestsPerSec, counts(r.ByKind))
	fmt.Fprintf(tw, "answers\t%s\t\n", counts(r.ByStatus))
	fmt.Fprintf(tw, "errors\t%d\t(answers ≥ 400 and network errors)\n", r.Errors)
	fmt.Fprintf(tw, "bytes\t%.0f B per viewer-second\t(bodies as received, %d B in all)\n", r.BytesPerViewer, r.BodyBytes)
	fmt.Fprintf(tw, "posts\t%d sent, %d accepted (%d messages, %.1f/s), %d failed\t\n",
		r.Posts.Sent, r.Posts.Accepted, r.Posts.Messages, r.Posts.PerSecond, r.Posts.Failed)
	fmt.Fprintf(tw, "post → 202\t%s\t\n", lat(r.Posts.Latency))
	fmt.Fprintf(tw, "post → visible\t%s\t\n", lat(r.Visible))
	fmt.Fprintf(tw, "seen\t%d messages handed out, %d (message, player) pairs missed\t\n", r.Messages, r.Missed)
	if o := r.Origin; o != nil {
		fmt.Fprintf(tw, "origin\t%.0f requests, %.3f per room and second (buckets alone %.3f)\t\n", o.Requests, o.PerRoomSecond, o.BucketsPerRS)
	}
	return tw.Flush()
}
