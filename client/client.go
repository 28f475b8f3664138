// Package client reads a room's live comments the way a player does: it
// short-polls the origin's (or CDN's) second-aligned bucket URLs, catches up
// after a gap through 10-second segments, retries with jittered backoff, and
// hands out every message once, in order.
//
//	c, err := client.New(client.Config{BaseURL: "http://127.0.0.1:8080", Room: "lobby"})
//	...
//	for m, err := range c.Messages(ctx) {
//		if err != nil {
//			return err // not retryable, e.g. a bad room id
//		}
//		fmt.Println(m.UserName, m.Text)
//	}
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/danmaku/danmaku/bucketer"
	"github.com/danmaku/danmaku/internal/keys"
)

// Message is one comment, as decoded from a bucket or segment.
type Message = bucketer.Message

// State is where a client stands.
type State int32

// The states of a client.
const (
	Connecting State = iota // reading head for the first time
	Live                    // reading each second as it seals
	CatchingUp              // reading seconds that sealed a while ago, through segments
	Offline                 // several requests in a row failed; retrying with backoff
	Stopped                 // no iteration is running
)

var stateNames = [...]string{"connecting", "live", "catching-up", "offline", "stopped"}

func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// Request describes one HTTP request the client made, for metrics.
type Request struct {
	Kind   string // "head", "bucket", "segment" or "post"
	Second int64  // the bucket's second or the segment's start; 0 for head and post
	URL    string
	Status int           // 0 if no answer came
	Bytes  int           // body bytes as received (compressed when the server sent gzip)
	Took   time.Duration // from sending to the end of the body
	Err    error         // a network error, a timeout or an undecodable body
}

// Stats are counters over the life of a client.
type Stats struct {
	Requests   int64 // every request, head and posts included
	Heads      int64
	Buckets    int64
	Segments   int64
	Posts      int64
	Failures   int64 // network errors, timeouts, 5xx and 429 answers
	Bytes      int64 // body bytes received, compressed as sent
	Messages   int64 // messages handed out
	Duplicates int64 // messages dropped because their id was already handed out
	Skipped    int64 // seconds skipped because they were older than MaxCatchUp
}

// Config configures a Client. Only BaseURL and Room are required.
type Config struct {
	// BaseURL is where the origin or CDN answers, e.g.
	// "https://cdn.example.com"; required.
	BaseURL string
	// IngestURL is where posts go; if empty, BaseURL.
	IngestURL string
	// Token, if set, returns the bearer token (a JWT) PostMessages sends;
	// a server run with --auth-secret needs one.
	Token func(ctx context.Context) (string, error)
	// Room to read; required.
	Room string
	// HTTPClient makes the requests; if nil, a client of this package's
	// own. Its Timeout should be 0 or above Hold + 5s: each request has its
	// own deadline.
	HTTPClient *http.Client
	// Hold is how long the origin holds a request for a second that has
	// not sealed; if 0, 3s. A bucket request times out after Hold + 5s.
	Hold time.Duration
	// Start is the first second to read; if 0, the one after the newest
	// sealed second that head names.
	Start int64
	// CatchUpAfter: when the next second to read is more than this far
	// behind the server's clock, the client catches up through segments;
	// if 0, 3s.
	CatchUpAfter time.Duration
	// MaxCatchUp bounds how far back a catch-up reaches; older seconds are
	// skipped and reported to OnSkip. If 0, 60s.
	MaxCatchUp time.Duration
	// RetryMin and RetryMax bound the full-jitter backoff after a failed
	// request: the n-th retry waits a uniform draw from
	// [0, min(RetryMax, RetryMin·2^n)). If 0, 250ms and 10s.
	RetryMin, RetryMax time.Duration
	// OfflineAfter is how many failures in a row make the client Offline;
	// if 0, 3.
	OfflineAfter int
	// DedupWindow is how many message ids are remembered to drop repeats;
	// if 0, 10000.
	DedupWindow int
	// OnState, if set, is called on every change of state, from the
	// goroutine iterating Messages.
	OnState func(from, to State)
	// OnRequest, if set, is called after every request, from the goroutine
	// that made it.
	OnRequest func(Request)
	// OnSkip, if set, is called with the seconds [from, to) a catch-up
	// gave up on because they were older than MaxCatchUp.
	OnSkip func(from, to int64)
	// Now is the local clock; if nil, time.Now.
	Now func() time.Time
}

// Client reads one room. Its methods are safe for concurrent use, but only
// one iteration of Messages may run at a time.
type Client struct {
	cfg    Config
	hc     *http.Client
	base   string
	ingest string

	running atomic.Bool
	state   atomic.Int32
	stats   struct {
		requests, heads, buckets, segments, posts, failures, bytes atomic.Int64
		messages, duplicates, skipped                              atomic.Int64
	}

	// The reading position, touched only by the running iteration.
	next      int64         // first second not handed out yet (0 until head)
	offset    time.Duration // server clock minus local clock
	sealed    int64         // newest second known sealed
	headAt    time.Time     // local time of the last head
	needHead  bool
	pollEvery time.Duration
	lastPoll  time.Time // start of the last request for an unsealed second
	failures  int       // failed requests in a row
	badBodies int       // undecodable answers in a row for next
	noSegIn   int64     // segment start the origin said was not sealed
	seen      *dedup
	rand      func() float64
}

// ErrBusy is yielded by Messages when another iteration is running.
var ErrBusy = errors.New("client: another iteration of Messages is running")

// New checks cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: BaseURL %q must be an http(s) URL", cfg.BaseURL)
	}
	if cfg.IngestURL == "" {
		cfg.IngestURL = cfg.BaseURL
	} else if u, err := url.Parse(cfg.IngestURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: IngestURL %q must be an http(s) URL", cfg.IngestURL)
	}
	if !keys.ValidRoom(cfg.Room) {
		return nil, fmt.Errorf("client: room %q: %w", cfg.Room, keys.ErrRoom)
	}
	if cfg.Hold == 0 {
		cfg.Hold = 3 * time.Second
	}
	if cfg.CatchUpAfter == 0 {
		cfg.CatchUpAfter = 3 * time.Second
	}
	if cfg.MaxCatchUp == 0 {
		cfg.MaxCatchUp = 60 * time.Second
	}
	if cfg.RetryMin == 0 {
		cfg.RetryMin = 250 * time.Millisecond
	}
	if cfg.RetryMax == 0 {
		cfg.RetryMax = 10 * time.Second
	}
	if cfg.OfflineAfter == 0 {
		cfg.OfflineAfter = 3
	}
	if cfg.DedupWindow == 0 {
		cfg.DedupWindow = 10000
	}
	if cfg.Hold < 0 || cfg.Start < 0 || cfg.CatchUpAfter < time.Second || cfg.MaxCatchUp < cfg.CatchUpAfter ||
		cfg.RetryMin <= 0 || cfg.RetryMax < cfg.RetryMin || cfg.OfflineAfter < 1 || cfg.DedupWindow < 1 {
		return nil, fmt.Errorf("client: bad config: hold %v, start %d, catch-up after %v (min 1s) up to %v, retry %v..%v, offline after %d, dedup window %d",
			cfg.Hold, cfg.Start, cfg.CatchUpAfter, cfg.MaxCatchUp, cfg.RetryMin, cfg.RetryMax, cfg.OfflineAfter, cfg.DedupWindow)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	hc := cfg.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		// Bodies are decoded from the bytes as sent, so that Bytes counts
		// what went over the wire.
		tr.DisableCompression = true
		tr.MaxIdleConnsPerHost = 4
		hc = &http.Client{Transport: tr}
	}
	c := &Client{
		cfg:    cfg,
		hc:     hc,
		base:   strings.TrimRight(cfg.BaseURL, "/"),
		ingest: strings.TrimRight(cfg.IngestURL, "/"),
		next:   cfg.Start,
		seen:   newDedup(cfg.DedupWindow),
		rand:   rand.Float64,
	}
	c.state.Store(int32(Stopped))
	return c, nil
}

// State returns the client's state.
func (c *Client) State() State { return State(c.state.Load()) }

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	s := &c.stats
	return Stats{
		Requests: s.requests.Load(), Heads: s.heads.Load(), Buckets: s.buckets.Load(),
		Segments: s.segments.Load(), Posts: s.posts.Load(), Failures: s.failures.Load(),
		Bytes: s.bytes.Load(), Messages: s.messages.Load(), Duplicates: s.duplicates.Load(),
		Skipped: s.skipped.Load(),
	}
}

func (c *Client) setState(to State) {
	from := State(c.state.Swap(int32(to)))
	if from != to && c.cfg.OnState != nil {
		c.cfg.OnState(from, to)
	}
}

// Messages returns the room's messages in order (by second, then as the
// log stored them), each once, for as long as ctx lasts. Transient
// failures are retried with backoff and never end the sequence; it ends
// when ctx is done, when the loop breaks, or after yielding an error that
// retrying cannot fix (such as a 400 for the room). A later call goes on
// from where the previous one stopped; if it starts more than CatchUpAfter
// behind, it catches up through segments.
func (c *Client) Messages(ctx context.Context) iter.Seq2[Message, error] {
	return func(yield func(Message, error) bool) {
		if !c.running.CompareAndSwap(false, true) {
			yield(Message{}, ErrBusy)
			return
		}
		defer c.running.Store(false)
		defer c.setState(Stopped)
		c.setState(Connecting)
		c.needHead = true // learn the clock and the sealed second afresh
		for ctx.Err() == nil {
			msgs, err := c.step(ctx)
			if err != nil {
				if ctx.Err() == nil {
					yield(Message{}, err)
				}
				return
			}
			for _, m := range msgs {
				if !yield(m, nil) {
					return
				}
			}
		}
	}
}

// serverNow is the server's clock as this client estimates it.
func (c *Client) serverNow() time.Time { return c.cfg.Now().Add(c.offset) }

// step makes one request and returns the messages it brought. It returns
// an error only for what retrying cannot fix.
func (c *Client) step(ctx context.Context) ([]Message, error) {
	if c.needHead || c.headAt.IsZero() {
		return nil, c.handle(ctx, c.syncHead(ctx))
	}
	st := plan(cursor{
		next:     c.next,
		nowMS:    c.serverNow().UnixMilli(),
		sealed:   c.sealed,
		headAge:  c.cfg.Now().Sub(c.headAt),
		noSegIn:  c.noSegIn,
		catchUp:  int64(c.cfg.CatchUpAfter / time.Second),
		maxBack:  int64(c.cfg.MaxCatchUp / time.Second),
		freshFor: 2 * time.Second,
	})
	switch st.kind {
	case stepHead:
		return nil, c.handle(ctx, c.syncHead(ctx))
	case stepSkip:
		c.stats.skipped.Add(st.to - st.second)
		if c.cfg.OnSkip != nil {
			c.cfg.OnSkip(st.second, st.to)
		}
		c.next = st.to
		return nil, nil
	case stepSegment:
		c.setState(CatchingUp)
		msgs, err := c.readObject(ctx, keys.Segment, st.second, true)
		return msgs, c.handle(ctx, err)
	}
	if st.catchUp {
		c.setState(CatchingUp)
	} else if c.failures == 0 && c.serverNow().Before(time.Unix(st.second+1, 0)) {
		// A request that the origin will hold: keep the poll interval
		// the server asked for between two of them (retries keep to
		// their backoff instead).
		if wait := c.pollEvery - c.cfg.Now().Sub(c.lastPoll); wait > 0 && !sleep(ctx, wait) {
			return nil, nil
		}
		c.lastPoll = c.cfg.Now()
	}
	msgs, err := c.readObject(ctx, keys.Bucket, st.second, st.catchUp)
	return msgs, c.handle(ctx, err)
}

// retryable marks a failure worth retrying after a backoff.
type retryable struct {
	err        error
	retryAfter time.Duration
}

func (r *retryable) Error() string { return r.err.Error() }
func (r *retryable) Unwrap() error { return r.err }

// pause asks for a short wait without counting a failure.
type pause struct {
	d time.Duration
}

func (p pause) Error() string { return "pause " + p.d.String() }

// handle turns a step's error into a wait: pauses are slept, retryable
// failures back off (and make the client Offline after a few), and what
// is left is returned.
func (c *Client) handle(ctx context.Context, err error) error {
	var p pause
	var r *retryable
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return nil
	case errors.As(err, &p):
		sleep(ctx, p.d)
		return nil
	case errors.As(err, &r):
		c.failures++
		c.stats.failures.Add(1)
		if c.failures >= c.cfg.OfflineAfter {
			c.setState(Offline)
		}
		d := backoff(c.failures-1, c.cfg.RetryMin, c.cfg.RetryMax, c.rand())
		d = max(d, min(r.retryAfter, c.cfg.RetryMax))
		sleep(ctx, d)
		return nil
	}
	return err
}

func sleep(ctx context.Context, d time.Duration) bool {
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

// answer is a response read in full.
type answer struct {
	status     int
	body       []byte
	gzip       bool
	code       string // the code of a JSON error body, "" if the body is not one
	retryAfter time.Duration
}

// promptAnswer is how soon an answer must come to count as not held. A
// second seals at least the writer's grace (100 ms) after its end, so a
// request answered this soon was sent after the second ended.
const promptAnswer = 100 * time.Millisecond

// maxBody bounds what one answer may hold.
const maxBody = 32 << 20

func (c *Client) get(ctx context.Context, kind string, second int64, u string, timeout time.Duration) (*answer, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept-Encoding", "gzip")
	req.Header.Set("User-Agent", "danmaku-client/1")
	return c.do(req, kind, second)
}

func (c *Client) do(req *http.Request, kind string, second int64) (*answer, error) {
	start := c.cfg.Now()
	rec := Request{Kind: kind, Second: second, URL: req.URL.String()}
	c.stats.requests.Add(1)
	switch kind {
	case "head":
		c.stats.heads.Add(1)
	case "bucket":
		c.stats.buckets.Add(1)
	case "segment":
		c.stats.segments.Add(1)
	case "post":
		c.stats.posts.Add(1)
	}
	report := func(a *answer, err error) (*answer, error) {
		rec.Took = c.cfg.Now().Sub(start)
		rec.Err = err
		if a != nil {
			rec.Status = a.status
			rec.Bytes = len(a.body)
		}
		c.stats.bytes.Add(int64(rec.Bytes))
		if c.cfg.OnRequest != nil {
			c.cfg.OnRequest(rec)
		}
		if err != nil {
			return nil, &retryable{err: fmt.Errorf("client: %s %s: %w", req.Method, rec.URL, err)}
		}
		return a, nil
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return report(nil, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	a := &answer{status: resp.StatusCode, body: body, gzip: strings.EqualFold(resp.Header.Get("Content-Encoding"), "gzip")}
	if err != nil {
		return report(a, err)
	}
	if len(body) > maxBody {
		return report(a, fmt.Errorf("body larger than %d bytes", maxBody))
	}
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && ra >= 0 {
		a.retryAfter = time.Duration(ra) * time.Second
	}
	if resp.StatusCode >= 400 {
		if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "application/json" {
			var e struct {
				Code string `json:"code"`
			}
			if json.Unmarshal(body, &e) == nil {
				a.code = e.Code
			}
		}
	}
	return report(a, nil)
}

// failure classifies an answer that is not a success.
func failure(what string, a *answer) error {
	err := fmt.Errorf("client: %s: %d %s", what, a.status, strings.TrimSpace(string(a.body[:min(len(a.body), 200)])))
	if a.status == http.StatusTooManyRequests || a.status >= 500 || a.status < 200 || (a.status >= 300 && a.status < 400) {
		return &retryable{err: err, retryAfter: a.retryAfter}
	}
	return err
}

type head struct {
	NowMS         int64 `json:"now_ms"`
	Sealed        int64 `json:"sealed"`
	BucketSeconds int   `json:"bucket_seconds"`
	PollMS        int   `json:"poll_ms"`
}

func (c *Client) syncHead(ctx context.Context) error {
	u := c.base + "/v1/rooms/" + c.cfg.Room + "/head"
	sent := c.cfg.Now()
	a, err := c.get(ctx, "head", 0, u, 10*time.Second)
	if err != nil {
		return err
	}
	got := c.cfg.Now()
	if a.status != http.StatusOK {
		return failure("head", a)
	}
	raw := a.body
	if a.gzip {
		if raw, err = bucketer.Gunzip(a.body); err != nil {
			return &retryable{err: fmt.Errorf("client: head: %w", err)}
		}
	}
	var h head
	if err := json.Unmarshal(raw, &h); err != nil || h.NowMS <= 0 || h.Sealed < 0 {
		return &retryable{err: fmt.Errorf("client: head: bad answer %q", raw)}
	}
	// The server read its clock about halfway through the round trip.
	mid := sent.Add(got.Sub(sent) / 2)
	c.offset = time.UnixMilli(h.NowMS).Sub(mid)
	c.sealed = max(c.sealed, h.Sealed)
	c.headAt = got
	c.needHead = false
	c.pollEvery = time.Duration(max(h.PollMS, 100)) * time.Millisecond
	if c.next == 0 {
		c.next = h.Sealed + 1
	}
	return nil
}

// readObject reads the bucket or segment at second and returns the
// messages in it that are new, advancing past it.
func (c *Client) readObject(ctx context.Context, kind keys.Kind, second int64, catchUp bool) ([]Message, error) {
	u := c.base + "/" + keys.Key(kind, c.cfg.Room, second)
	timeout := 10 * time.Second
	if kind == keys.Bucket {
		timeout = c.cfg.Hold + 5*time.Second
	}
	sent := c.cfg.Now()
	a, err := c.get(ctx, kind.String(), second, u, timeout)
	if err != nil {
		return nil, err
	}
	last := second + kind.Seconds() - 1
	switch {
	case a.status == http.StatusOK:
	case a.status == http.StatusNotFound && a.code == "not_sealed":
		if kind == keys.Segment {
			c.noSegIn = second // read this window by buckets instead
			return nil, nil
		}
		return nil, pause{200*time.Millisecond + time.Duration(c.rand()*float64(300*time.Millisecond))}
	case a.status == http.StatusNotFound && a.code == "future":
		// This clock runs ahead of the server's: learn the offset again.
		c.needHead = true
		return nil, pause{500 * time.Millisecond}
	case (a.status == http.StatusNotFound || a.status == http.StatusForbidden) && a.code == "":
		// A store answering for the origin (a CDN's failover) has no
		// object for an empty second. Empty if known sealed; else ask head.
		if last > c.sealed {
			c.needHead = true
			return nil, pause{250 * time.Millisecond}
		}
		c.advance(last, catchUp)
		return nil, nil
	default:
		return nil, failure(kind.String()+" "+strconv.FormatInt(second, 10), a)
	}
	var body *bucketer.Body
	if a.gzip {
		body, err = bucketer.DecodeGzip(a.body)
	} else {
		body, err = bucketer.Decode(a.body)
	}
	if err == nil && (body.Room != c.cfg.Room || body.Start != second || int64(body.Seconds) != kind.Seconds()) {
		err = fmt.Errorf("body of room %q at %d for %d s", body.Room, body.Start, body.Seconds)
	}
	if err != nil {
		c.badBodies++
		if c.badBodies >= 3 { // an immutable object will not mend: go on without it
			c.stats.skipped.Add(last - c.next + 1)
			if c.cfg.OnSkip != nil {
				c.cfg.OnSkip(c.next, last+1)
			}
			c.advance(last, catchUp)
			return nil, nil
		}
		return nil, &retryable{err: fmt.Errorf("client: %s: %w", u, err)}
	}
	var out []Message
	for _, m := range body.Messages {
		if m.Second < c.next {
			continue // a segment's seconds before the one to read next
		}
		if !c.seen.add(m.ID) {
			c.stats.duplicates.Add(1)
			continue
		}
		out = append(out, m)
	}
	c.stats.messages.Add(int64(len(out)))
	if kind == keys.Bucket && !catchUp {
		// A 200 means the server's clock passed the end of the second. One
		// that came back at once was not held: the second had sealed
		// before we asked, so our clock runs behind the server's (as after
		// a head that a cache kept for a while). Then the clock is set by
		// when we asked, and the next second is asked for at once rather
		// than a poll interval after this request, which would keep every
		// later request that late.
		at := c.cfg.Now()
		if at.Sub(sent) < promptAnswer {
			at = sent
			c.lastPoll = time.Time{}
		}
		if lag := time.Unix(second+1, 0).Sub(at.Add(c.offset)); lag > 0 {
			c.offset += lag
		}
	}
	c.advance(last, catchUp)
	return out, nil
}

// advance moves past second last, which is read.
func (c *Client) advance(last int64, catchUp bool) {
	c.next = last + 1
	c.sealed = max(c.sealed, last)
	c.failures = 0
	c.badBodies = 0
	if !catchUp {
		c.setState(Live)
	}
}

// Post is a message to post.
type Post struct {
	Text     string `json:"text"`
	Color    string `json:"color,omitempty"` // "#rrggbb" or "#rgb"; empty: white
	Mode     string `json:"mode,omitempty"`  // "scroll" (default), "top" or "bottom"
	UserID   string `json:"user_id,omitempty"`
	UserName string `json:"user_name,omitempty"`
}

// Accepted is what the server said about one posted message.
type Accepted struct {
	ID     string `json:"id"`
	Second int64  `json:"second"`
}

// PostMessages posts msgs to the room (one message, or a batch of several
// from one user) and returns each message's id and second. Failures that
// may be transient are retried a few times with one Idempotency-Key, so a
// retry never posts twice.
func (c *Client) PostMessages(ctx context.Context, msgs ...Post) ([]Accepted, error) {
	if len(msgs) == 0 {
		return nil, errors.New("client: post: no messages")
	}
	var body []byte
	var err error
	if len(msgs) == 1 {
		body, err = json.Marshal(msgs[0])
	} else {
		body, err = json.Marshal(msgs)
	}
	if err != nil {
		return nil, fmt.Errorf("client: post: %w", err)
	}
	key := strconv.FormatUint(rand.Uint64(), 36) + strconv.FormatUint(rand.Uint64(), 36)
	u := c.ingest + "/v1/rooms/" + c.cfg.Room + "/messages"
	for attempt := 0; ; attempt++ {
		a, err := c.post(ctx, u, key, body)
		if err == nil {
			if a.status == http.StatusAccepted {
				return decodeAccepted(a.body, len(msgs))
			}
			err = failure("post", a)
		}
		var r *retryable
		if !errors.As(err, &r) || attempt == 3 {
			return nil, err
		}
		d := max(backoff(attempt, c.cfg.RetryMin, c.cfg.RetryMax, c.rand()), min(r.retryAfter, c.cfg.RetryMax))
		if !sleep(ctx, d) {
			return nil, fmt.Errorf("client: post: %w (after %v)", ctx.Err(), err)
		}
	}
}

func (c *Client) post(ctx context.Context, u, key string, body []byte) (*answer, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(string(body)))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	req.Header.Set("User-Agent", "danmaku-client/1")
	if c.cfg.Token != nil {
		tok, err := c.cfg.Token(ctx)
		if err != nil {
			return nil, fmt.Errorf("client: post: token: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return c.do(req, "post", 0)
}

func decodeAccepted(b []byte, n int) ([]Accepted, error) {
	if n == 1 {
		var a Accepted
		if err := json.Unmarshal(b, &a); err != nil || a.ID == "" {
			return nil, fmt.Errorf("client: post: bad answer %q", b)
		}
		return []Accepted{a}, nil
	}
	var ab struct {
		Messages []Accepted `json:"messages"`
	}
	if err := json.Unmarshal(b, &ab); err != nil || len(ab.Messages) != n {
		return nil, fmt.Errorf("client: post: bad answer %q", b)
	}
	return ab.Messages, nil
}
