package client_test

import (
	"context"
	"fmt"
	"github.com/golang-jwt/jwt/v5"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/danmaku/danmaku/bucketer"
	"github.com/danmaku/danmaku/client"
	"github.com/danmaku/danmaku/internal/keys"
	"github.com/danmaku/danmaku/internal/testserve"
)

// recorder is an http.RoundTripper that counts requests by kind, as a
// test's independent view of what the client asked for.
type recorder struct {
	rt   http.RoundTripper
	mu   sync.Mutex // guards reqs
	reqs []recorded
}

type recorded struct {
	at     time.Time
	kind   keys.Kind
	object bool // a bucket or segment, not head or post
	second int64
	url    string
	status int
}

func newRecorder() *recorder {
	return &recorder{rt: &http.Transport{DisableCompression: true}}
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := recorded{at: time.Now(), url: req.URL.String()}
	if kind, _, second, err := keys.Parse(req.URL.Path); err == nil {
		rec.kind, rec.second, rec.object = kind, second, true
	}
	resp, err := r.rt.RoundTrip(req)
	if err == nil {
		rec.status = resp.StatusCode
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, rec)
	r.mu.Unlock()
	return resp, err
}

func (r *recorder) snapshot() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reqs)
}

func newClient(t *testing.T, cfg client.Config) *client.Client {
	t.Helper()
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// poster posts unique messages to a room and remembers what was accepted.
type poster struct {
	c   *client.Client
	mu  sync.Mutex // guards ids
	ids map[string]client.Accepted
}

func newPoster(t *testing.T, base, room string) *poster {
	return &poster{c: newClient(t, client.Config{BaseURL: base, Room: room}), ids: map[string]client.Accepted{}}
}

func (p *poster) post(t *testing.T, texts ...string) {
	t.Helper()
	var msgs []client.Post
	for _, s := range texts {
		msgs = append(msgs, client.Post{Text: s, UserID: "bot", UserName: "测试"})
	}
	acc, err := p.c.PostMessages(context.Background(), msgs...)
	if err != nil {
		t.Errorf("post: %v", err)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range acc {
		p.ids[a.ID] = a
	}
}

func (p *poster) accepted() map[string]client.Accepted {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps(p.ids)
}

func maps(m map[string]client.Accepted) map[string]client.Accepted {
	out := make(map[string]client.Accepted, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// readUntil iterates c until every id in want was handed out or the time
// runs out, and returns what came, in order.
func readUntil(t *testing.T, c *client.Client, want func() map[string]client.Accepted, within time.Duration, pause func(n int)) []client.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var got []client.Message
	seen := map[string]bool{}
	for m, err := range c.Messages(ctx) {
		if err != nil {
			t.Fatalf("Messages: %v", err)
		}
		got = append(got, m)
		seen[m.ID] = true
		if pause != nil {
			pause(len(got))
		}
		w := want()
		done := len(w) > 0
		for id := range w {
			done = done && seen[id]
		}
		if done {
			return got
		}
	}
	t.Fatalf("after %v: %d messages handed out, %d accepted", within, len(got), len(want()))
	return nil
}

// checkExactlyOnce asserts every accepted message came once, in its
// second, nothing else came, and the order is by second and log sequence.
func checkExactlyOnce(t *testing.T, got []client.Message, want map[string]client.Accepted) {
	t.Helper()
	count := map[string]int{}
	for i, m := range got {
		count[m.ID]++
		a, ok := want[m.ID]
		if !ok {
			t.Errorf("message %s (%q) was never posted", m.ID, m.Text)
		} else if a.Second != m.Second {
			t.Errorf("message %s in second %d, its 202 said %d", m.ID, m.Second, a.Second)
		}
		if i > 0 && !before(got[i-1], m) {
			t.Errorf("message %s (second %d) after %s (second %d): out of order", m.ID, m.Second, got[i-1].ID, got[i-1].Second)
		}
	}
	for id := range want {
		if count[id] != 1 {
			t.Errorf("message %s handed out %d times", id, count[id])
		}
	}
}

func before(a, b client.Message) bool {
	if a.Second != b.Second {
		return a.Second < b.Second
	}
	as, ai, _ := bucketer.ParseMessageID(a.ID)
	bs, bi, _ := bucketer.ParseMessageID(b.ID)
	return as < bs || (as == bs && ai < bi)
}

func TestOrderAndExactlyOnce(t *testing.T) {
	t.Parallel()
	s := testserve.Start(t)
	start := time.Now().Unix()
	p := newPoster(t, s.Base, "order")

	// Two readers: one with a sane clock, one whose clock is 47 s fast
	// (head teaches it the offset).
	rec := newRecorder()
	readers := []*client.Client{
		newClient(t, client.Config{BaseURL: s.Base, Room: "order", Start: start, HTTPClient: &http.Client{Transport: rec}}),
		newClient(t, client.Config{BaseURL: s.Base, Room: "order", Start: start,
			Now: func() time.Time { return time.Now().Add(47 * time.Second) }}),
	}
	results := make([][]client.Message, len(readers))
	var wg sync.WaitGroup
	for i, c := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = readUntil(t, c, func() map[string]client.Accepted {
				if len(p.accepted()) < 60 {
					return nil
				}
				return p.accepted()
			}, 40*time.Second, nil)
		}()
	}
	// 60 messages over about 3 s from three posters, singly and in batches.
	var pw sync.WaitGroup
	for w := range 3 {
		pw.Add(1)
		go func() {
			defer pw.Done()
			for i := range 10 {
				if (w+i)%2 == 0 {
					p.post(t, fmt.Sprintf("w%d #%d a", w, i), fmt.Sprintf("w%d #%d b", w, i))
				} else {
					p.post(t, fmt.Sprintf("w%d #%d", w, i))
					p.post(t, fmt.Sprintf("w%d #%d again", w, i))
				}
				time.Sleep(300 * time.Millisecond)
			}
		}()
	}
	pw.Wait()
	wg.Wait()
	want := p.accepted()
	if len(want) != 60 {
		t.Fatalf("%d messages accepted, want 60", len(want))
	}
	for i, got := range results {
		checkExactlyOnce(t, got, want)
		if i > 0 && !slices.EqualFunc(got, results[0], func(a, b client.Message) bool { return reflect.DeepEqual(a, b) }) {
			t.Errorf("reader %d saw another sequence than reader 0", i)
		}
	}
	// Live reading is one bucket request per second, each URL at most
	// once with a 200.
	ok := map[string]int{}
	for _, r := range rec.snapshot() {
		if r.status == http.StatusOK {
			ok[r.url]++
			if ok[r.url] > 1 {
				t.Errorf("%s answered 200 twice", r.url)
			}
		}
	}
	st := readers[0].Stats()
	t.Logf("reader 0: %+v", st)
	if st.Messages != 60 || st.Duplicates != 0 {
		t.Errorf("stats %+v, want 60 messages and no duplicates", st)
	}
}

func TestCatchUpThroughSegments(t *testing.T) {
	t.Parallel()
	s := testserve.Start(t)
	now := time.Now().Unix()
	p := newPoster(t, s.Base, "catchup")
	for i := range 8 {
		p.post(t, fmt.Sprintf("early %d", i))
		time.Sleep(400 * time.Millisecond)
	}
	// Start 27 s in the past: a reader back from a long gap.
	from := now - 27
	rec := newRecorder()
	var states []client.State
	var mu sync.Mutex
	c := newClient(t, client.Config{BaseURL: s.Base, Room: "catchup", Start: from, HTTPClient: &http.Client{Transport: rec},
		OnState: func(_, to client.State) { mu.Lock(); states = append(states, to); mu.Unlock() }})
	began := time.Now()
	var caughtUp time.Duration
	got := readUntil(t, c, p.accepted, 20*time.Second, func(n int) {
		if n == len(p.accepted()) && caughtUp == 0 {
			// Caught up with the past; one more comes live.
			caughtUp = time.Since(began)
			p.post(t, "live")
		}
	})
	checkExactlyOnce(t, got, p.accepted())

	var segments, buckets []int64
	end := from
	for _, r := range rec.snapshot() {
		if !r.object {
			continue
		}
		if r.kind == keys.Segment {
			segments = append(segments, r.second)
			end = max(end, r.second+keys.SegmentSeconds)
		} else {
			buckets = append(buckets, r.second)
		}
	}
	lag := time.Now().Unix() - from
	t.Logf("caught up %d s in %v with %d segment requests %v and %d bucket requests %v", lag, caughtUp.Round(time.Millisecond), len(segments), segments, len(buckets), buckets)
	if len(segments) < 2 {
		t.Errorf("%d segment requests for a %d s gap, want at least 2", len(segments), lag)
	}
	for _, b := range buckets {
		if b < end-keys.SegmentSeconds && b != from {
			t.Errorf("bucket %d read one by one although its window was sealed", b)
		}
	}
	if total := len(segments) + len(buckets); total > int(lag)/2 {
		t.Errorf("%d requests to catch up %d s: segments should make it far fewer", total, lag)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Contains(states, client.CatchingUp) || states[len(states)-1] != client.Stopped || !slices.Contains(states, client.Live) {
		t.Errorf("states %v: want connecting, catching-up, live, stopped", states)
	}
}

func TestCatchUpAfterPausedIteration(t *testing.T) {
	t.Parallel()
	s := testserve.Start(t)
	p := newPoster(t, s.Base, "pause")
	rec := newRecorder()
	c := newClient(t, client.Config{BaseURL: s.Base, Room: "pause", Start: time.Now().Unix(), HTTPClient: &http.Client{Transport: rec}})
	var pausedAt time.Time
	var resumed int
	p.post(t, "before the pause")
	stop := make(chan struct{})
	var pw sync.WaitGroup
	pw.Add(1)
	go func() {
		defer pw.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(700 * time.Millisecond):
			}
			p.post(t, fmt.Sprintf("during %d", i))
		}
	}()
	got := readUntil(t, c, func() map[string]client.Accepted {
		if resumed == 0 {
			return nil
		}
		return p.accepted()
	}, 40*time.Second, func(n int) {
		if n == 1 {
			// The player stops reading (a background tab) for 14 s.
			pausedAt = time.Now()
			time.Sleep(14 * time.Second)
			close(stop)
			pw.Wait()
			resumed = len(rec.snapshot())
		}
	})
	checkExactlyOnce(t, got, p.accepted())
	after := rec.snapshot()[resumed:]
	var segs, bkts int
	for _, r := range after {
		if r.object && r.kind == keys.Segment {
			segs++
		} else if r.object {
			bkts++
		}
	}
	t.Logf("after a %v pause: %d messages, %d segment and %d bucket requests to catch up", time.Since(pausedAt).Round(time.Second), len(got), segs, bkts)
	if segs == 0 {
		t.Error("no segment requests after a 14 s pause")
	}
	if bkts > 12 {
		t.Errorf("%d bucket requests after a 14 s pause; segments should have covered most", bkts)
	}
}

func TestSkipsPastMaxCatchUp(t *testing.T) {
	t.Parallel()
	s := testserve.Start(t)
	var skipped [2]int64
	from := time.Now().Unix() - 100
	c := newClient(t, client.Config{BaseURL: s.Base, Room: "skip", Start: from, MaxCatchUp: 15 * time.Second,
		OnSkip: func(a, b int64) { skipped = [2]int64{a, b} }})
	p := newPoster(t, s.Base, "skip")
	p.post(t, "now")
	readUntil(t, c, p.accepted, 20*time.Second, nil)
	now := time.Now().Unix()
	if skipped[0] != from || skipped[1] < now-17 || skipped[1] > now-14 {
		t.Errorf("skipped [%d, %d), want [%d, about %d)", skipped[0], skipped[1], from, now-15)
	}
	if st := c.Stats(); st.Skipped != skipped[1]-skipped[0] {
		t.Errorf("Stats().Skipped %d, want %d", st.Skipped, skipped[1]-skipped[0])
	}
}

// TestBackoffOn5xx puts a fault proxy in front of the server that answers
// 503 to everything for a while.
func TestBackoffOn5xx(t *testing.T) {
	t.Parallel()
	s := testserve.Start(t)
	target, _ := url.Parse(s.Base)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var failing atomic.Bool
	var mu sync.Mutex
	var faulted []time.Time
	fp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			mu.Lock()
			faulted = append(faulted, time.Now())
			mu.Unlock()
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("<html>503 Service Unavailable</html>"))
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer fp.Close()

	var smu sync.Mutex
	var states []client.State
	const retryMin, retryMax = 100 * time.Millisecond, 1600 * time.Millisecond
	c := newClient(t, client.Config{BaseURL: fp.URL, Room: "faults", Start: time.Now().Unix(), RetryMin: retryMin, RetryMax: retryMax,
		OnState: func(_, to client.State) { smu.Lock(); states = append(states, to); smu.Unlock() }})
	p := newPoster(t, s.Base, "faults") // posts go straight to the server
	p.post(t, "before")
	var faultFor time.Duration
	readUntil(t, c, func() map[string]client.Accepted {
		if faultFor == 0 {
			return nil
		}
		return p.accepted()
	}, 60*time.Second, func(n int) {
		if n != 1 {
			return
		}
		go func() {
			failing.Store(true)
			began := time.Now()
			for i := range 8 {
				p.post(t, fmt.Sprintf("during the outage %d", i))
				time.Sleep(750 * time.Millisecond)
			}
			failing.Store(false)
			faultFor = time.Since(began)
			p.post(t, "after")
		}()
	})
	got := c.Stats()
	t.Logf("outage of %v: %d requests answered 503; stats %+v", faultFor.Round(time.Millisecond), len(faulted), got)

	mu.Lock()
	gaps := make([]time.Duration, 0, len(faulted))
	for i := 1; i < len(faulted); i++ {
		gaps = append(gaps, faulted[i].Sub(faulted[i-1]))
	}
	mu.Unlock()
	t.Logf("gaps between retries: %v", gaps)
	if len(faulted) < 4 || len(faulted) > 30 {
		t.Errorf("%d requests during a %v outage: want a handful (a fixed %v retry would make %d)", len(faulted), faultFor, retryMin, faultFor/retryMin)
	}
	var jittered bool
	for i, g := range gaps {
		ceil := min(retryMax, retryMin<<i)
		if g > ceil+300*time.Millisecond {
			t.Errorf("retry %d came %v after the previous one; full jitter caps it at %v", i+1, g, ceil)
		}
		if ceil >= 400*time.Millisecond && g < ceil*7/10 {
			jittered = true
		}
	}
	if !jittered {
		t.Errorf("gaps %v all sit near their cap: no jitter", gaps)
	}
	if len(gaps) > 4 && slices.Max(gaps[3:]) < 300*time.Millisecond {
		t.Errorf("gaps %v do not grow", gaps)
	}
	smu.Lock()
	defer smu.Unlock()
	i := slices.Index(states, client.Offline)
	if i < 0 || !slices.Contains(states[i:], client.Live) {
		t.Errorf("states %v: want offline during the outage, then live again", states)
	}
}

// TestEmptySecondsFromAStore stands an S3-like failover in front of the
// server: empty seconds and windows have no object there and answer 403
// without a JSON body. Clients must take them as empty and go on: one
// reading single buckets from 3 s back, one catching up through segments
// from 25 s back.
func TestEmptySecondsFromAStore(t *testing.T) {
	t.Parallel()
	s := testserve.Start(t)
	target, _ := url.Parse(s.Base)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var denied [2]atomic.Int64 // by kind
	fp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		kind, _, second, err := keys.Parse(r.URL.Path)
		if err == nil && second+kind.Seconds() < time.Now().Unix() {
			// Ask the server whether the object is empty (http.Get takes
			// care of the gzip).
			resp, err := http.Get(s.Base + r.URL.Path)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK && !strings.Contains(string(b), `"text"`) {
					denied[kind].Add(1)
					w.Header().Set("Content-Type", "application/xml")
					w.WriteHeader(http.StatusForbidden)
					w.Write([]byte("<Error><Code>AccessDenied</Code></Error>"))
					return
				}
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	defer fp.Close()
	p := newPoster(t, s.Base, "store")
	now := time.Now().Unix()
	readers := []*client.Client{
		newClient(t, client.Config{BaseURL: fp.URL, Room: "store", Start: now - 3}),
		newClient(t, client.Config{BaseURL: fp.URL, Room: "store", Start: now - 25}),
	}
	go func() {
		time.Sleep(time.Second)
		p.post(t, "one")
		time.Sleep(2 * time.Second)
		p.post(t, "two")
	}()
	var wg sync.WaitGroup
	for _, c := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := readUntil(t, c, func() map[string]client.Accepted {
				if a := p.accepted(); len(a) == 2 {
					return a
				}
				return nil
			}, 20*time.Second, nil)
			checkExactlyOnce(t, got, p.accepted())
		}()
	}
	wg.Wait()
	t.Logf("answered 403 for %d empty buckets and %d empty segments", denied[keys.Bucket].Load(), denied[keys.Segment].Load())
	if denied[keys.Bucket].Load() == 0 || denied[keys.Segment].Load() == 0 {
		t.Error("the proxy did not answer 403 for both kinds: the test tested less than it should")
	}
	for _, c := range readers {
		if st := c.Stats(); st.Failures != 0 {
			t.Errorf("403s for empty seconds counted as failures: %+v", st)
		}
	}
}

func TestUnfixableErrorEndsTheSequence(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"code":"bad_room","message":"no"}`))
	}))
	defer srv.Close()
	c := newClient(t, client.Config{BaseURL: srv.URL, Room: "r"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var errs []error
	for _, err := range c.Messages(ctx) {
		errs = append(errs, err)
	}
	if len(errs) != 1 || !strings.Contains(fmt.Sprint(errs[0]), "400") {
		t.Errorf("got %v, want one error naming the 400", errs)
	}
	if c.State() != client.Stopped {
		t.Errorf("state %v after the sequence ended", c.State())
	}
}

func TestNewValidates(t *testing.T) {
	for name, cfg := range map[string]client.Config{
		"no base":        {Room: "r"},
		"bad base":       {BaseURL: "ftp://x", Room: "r"},
		"bad room":       {BaseURL: "http://x", Room: "a/b"},
		"tiny catch-up":  {BaseURL: "http://x", Room: "r", CatchUpAfter: time.Millisecond},
		"retry inverted": {BaseURL: "http://x", Room: "r", RetryMin: time.Second, RetryMax: time.Millisecond},
	} {
		if _, err := client.New(cfg); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
	if _, err := client.New(client.Config{BaseURL: "http://x", Room: "r"}); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

// TestPostWithToken: against a server that requires signed tokens, a post
// carries the token Config.Token returns, and the message appears as the
// token's user.
func TestPostWithToken(t *testing.T) {
	secret := "a test secret that is at least thirty-two bytes long"
	s := testserve.Start(t, "--auth-secret", secret)
	sign := func(ctx context.Context) (string, error) {
		return jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"sub": "u-7", "name": "Token User", "exp": time.Now().Add(time.Minute).Unix(),
		}).SignedString([]byte(secret))
	}
	anon, err := client.New(client.Config{BaseURL: s.Base, Room: "authed"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := anon.PostMessages(context.Background(), client.Post{Text: "no token"}); err == nil {
		t.Fatal("a post without a token was accepted by a server that requires one")
	}
	c, err := client.New(client.Config{BaseURL: s.Base, Room: "authed", Token: sign})
	if err != nil {
		t.Fatal(err)
	}
	acc, err := c.PostMessages(context.Background(), client.Post{Text: "signed"})
	if err != nil {
		t.Fatalf("post with a token: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for m, err := range c.Messages(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		if m.ID == acc[0].ID {
			if m.UserID != "u-7" || m.UserName != "Token User" || m.Text != "signed" {
				t.Errorf("message %+v", m)
			}
			return
		}
	}
	t.Fatal("the signed message never arrived")
}

// TestKeepsUpBehindAStaleHead pins that a client whose head came from a
// cache (now_ms up to a second old) still reads each second as it seals:
// a bucket answered at once shows the clock runs behind, and the next
// second is asked for at once instead of a poll interval later, which
// would keep every later answer that late.
func TestKeepsUpBehindAStaleHead(t *testing.T) {
	t.Parallel()
	const grace = 100 * time.Millisecond
	sealedAt := func(second int64) time.Time { return time.Unix(second+1, 0).Add(grace) }
	// A CDN in front of an origin: head is served from a cache 900 ms old;
	// a bucket is answered when its second seals (held until then).
	cdn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/head") {
			stale := time.Now().Add(-900 * time.Millisecond)
			sealed := stale.Add(-grace).Unix() - 1
			fmt.Fprintf(w, `{"now_ms":%d,"sealed":%d,"bucket_seconds":1,"poll_ms":1000}`, stale.UnixMilli(), sealed)
			return
		}
		kind, room, second, err := keys.Parse(strings.TrimPrefix(r.URL.Path, "/"))
		if err != nil || kind != keys.Bucket {
			http.NotFound(w, r)
			return
		}
		select {
		case <-time.After(time.Until(sealedAt(second))):
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(bucketer.EmptyBody(room, second, 1))
	}))
	defer cdn.Close()

	var mu sync.Mutex
	late := map[int64]time.Duration{} // by second: answer time past the seal
	c := newClient(t, client.Config{BaseURL: cdn.URL, Room: "stale", OnRequest: func(r client.Request) {
		if r.Kind == "bucket" && r.Status == http.StatusOK {
			mu.Lock()
			late[r.Second] = time.Since(sealedAt(r.Second))
			mu.Unlock()
		}
	}})
	// Start halfway through a second, where a client that keeps its poll
	// interval from a request that was not held stays half a second late.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1500 * time.Millisecond)))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for range c.Messages(ctx) {
	}
	mu.Lock()
	defer mu.Unlock()
	seconds := slices.Sorted(func(yield func(int64) bool) {
		for s := range late {
			if !yield(s) {
				return
			}
		}
	})
	if len(seconds) < 4 {
		t.Fatalf("read only seconds %v in 5 s", seconds)
	}
	// The first two may be read late (they sealed before the client began).
	for _, s := range seconds[2:] {
		if late[s] > 150*time.Millisecond {
			t.Errorf("second %d answered %v after it sealed: the client asked late (all: %v)", s, late[s], late)
		}
	}
}
