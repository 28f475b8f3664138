package origin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/danmaku/danmaku/bucketer"
	"github.com/danmaku/danmaku/internal/keys"
	"github.com/danmaku/danmaku/origin"
	"github.com/danmaku/danmaku/publisher"
)

// mapStore is a Getter over a map, counting reads.
type mapStore struct {
	mu    sync.Mutex
	objs  map[string][]byte
	reads atomic.Int32
	err   error
}

func (s *mapStore) Get(_ context.Context, key string) ([]byte, error) {
	s.reads.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	b, ok := s.objs[key]
	if !ok {
		return nil, fmt.Errorf("get %s: %w", key, publisher.ErrNotFound)
	}
	return b, nil
}

const now = 1764318000

type fixture struct {
	o     *origin.Origin
	store *mapStore
	srv   *httptest.Server
	clock atomic.Int64 // unix ms
}

func newFixture(t testing.TB, mutate ...func(*origin.Config)) *fixture {
	t.Helper()
	f := &fixture{store: &mapStore{objs: map[string][]byte{}}}
	f.clock.Store(now*1000 + 500)
	cfg := origin.Config{
		Store: f.store,
		Hold:  300 * time.Millisecond,
		Now:   func() time.Time { return time.UnixMilli(f.clock.Load()) },
	}
	for _, m := range mutate {
		m(&cfg)
	}
	o, err := origin.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.o = o
	mux := http.NewServeMux()
	o.Register(mux)
	f.srv = httptest.NewServer(o.Handler(mux))
	t.Cleanup(f.srv.Close)
	return f
}

func obj(kind keys.Kind, room string, second int64, text string) bucketer.Object {
	raw := fmt.Sprintf(`{"v":1,"room":%q,"start":%d,"seconds":%d,"seq":[7],"ms":[5],"users":[["u","n"]],"text":[%q]}`,
		room, second, kind.Seconds(), text)
	return bucketer.NewObject(kind, room, second, []byte(raw), 1)
}

type answer struct {
	status int
	header http.Header
	body   []byte
	took   time.Duration
}

var client = &http.Client{Transport: &http.Transport{DisableCompression: true}}

func (f *fixture) get(t *testing.T, path string, hdr ...string) answer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+path, nil)
	req.Header.Set("Accept-Encoding", "gzip, deflate, br")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: b, took: time.Since(start)}
}

func bucketPath(room string, s int64) string {
	return fmt.Sprintf("/v1/rooms/%s/buckets/%d.json", room, s)
}

func segmentPath(room string, s int64) string {
	return fmt.Sprintf("/v1/rooms/%s/segments/%d.json", room, s)
}

func wantError(t *testing.T, a answer, status int, code string) {
	t.Helper()
	if a.status != status {
		t.Fatalf("status %d (%s), want %d", a.status, a.body, status)
	}
	if cc := a.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q on a %d, want no-store", cc, status)
	}
	var e struct{ Code, Message string }
	if err := json.Unmarshal(a.body, &e); err != nil || e.Code != code || e.Message == "" {
		t.Errorf("body %s, want code %q", a.body, code)
	}
}

func wantBody(t *testing.T, a answer, want []byte) {
	t.Helper()
	if a.status != http.StatusOK {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	for k, v := range map[string]string{
		"Content-Encoding": "gzip", "Content-Type": "application/json",
		"Cache-Control": "public, max-age=31536000, immutable", "Vary": "Accept-Encoding",
		"Etag": bucketer.ETag(want),
	} {
		if got := a.header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if !bytes.Equal(a.body, want) {
		t.Errorf("body differs from the object")
	}
}

func wantEmpty(t *testing.T, a answer, room string, start int64, seconds int) {
	t.Helper()
	wantBody(t, a, a.body)
	b, err := bucketer.DecodeGzip(a.body)
	if err != nil {
		t.Fatal(err)
	}
	if b.Room != room || b.Start != start || b.Seconds != seconds || len(b.Messages) != 0 {
		t.Errorf("empty body %+v", b)
	}
}

func TestRingHitConditionalAndPlain(t *testing.T) {
	f := newFixture(t)
	o := obj(keys.Bucket, "a", now-1, "hello")
	f.o.Announce([]bucketer.Object{o}, publisher.Watermark{Sealed: now - 1})
	a := f.get(t, bucketPath("a", now-1))
	wantBody(t, a, o.Body)

	nm := f.get(t, bucketPath("a", now-1), "If-None-Match", `"nope", `+o.ETag)
	if nm.status != http.StatusNotModified || len(nm.body) != 0 || nm.header.Get("Etag") != o.ETag {
		t.Errorf("If-None-Match: %d %q etag %q", nm.status, nm.body, nm.header.Get("Etag"))
	}
	plain := f.get(t, bucketPath("a", now-1), "Accept-Encoding", "identity")
	raw, _ := bucketer.Gunzip(o.Body)
	if plain.status != 200 || plain.header.Get("Content-Encoding") != "" || !bytes.Equal(plain.body, raw) {
		t.Errorf("plain: %d %q %s", plain.status, plain.header.Get("Content-Encoding"), plain.body)
	}
	if pe := plain.header.Get("Etag"); pe == o.ETag || !strings.HasPrefix(pe, `"`) {
		t.Errorf("plain representation has etag %q (gzip one is %q)", pe, o.ETag)
	}
	if n := f.store.reads.Load(); n != 0 {
		t.Errorf("%d store reads for ring hits", n)
	}
}

func TestSealedSecondsWithoutObjects(t *testing.T) {
	f := newFixture(t)
	// The origin starts listening: everything after 900 is covered.
	f.o.Announce(nil, publisher.Watermark{Sealed: now - 100, Published: now - 100})
	f.o.Announce([]bucketer.Object{obj(keys.Bucket, "a", now-5, "x")}, publisher.Watermark{Sealed: now - 1, Published: now - 100})

	t.Run("covered and in span: empty, no store read", func(t *testing.T) {
		before := f.store.reads.Load()
		wantEmpty(t, f.get(t, bucketPath("a", now-3)), "a", now-3, 1)
		wantEmpty(t, f.get(t, bucketPath("never-seen", now-3)), "never-seen", now-3, 1)
		if f.store.reads.Load() != before {
			t.Error("the store was read for a covered second")
		}
	})
	t.Run("before coverage, published: the store decides", func(t *testing.T) {
		stored := obj(keys.Bucket, "a", now-150, "old")
		f.store.objs[stored.Key] = stored.Body
		wantBody(t, f.get(t, bucketPath("a", now-150)), stored.Body)
		wantEmpty(t, f.get(t, bucketPath("a", now-151)), "a", now-151, 1)
	})
	t.Run("sealed elsewhere, not published, not seen: not yet", func(t *testing.T) {
		g := newFixture(t)
		g.o.Announce(nil, publisher.Watermark{Sealed: now - 1, Published: now - 50})
		wantError(t, g.get(t, bucketPath("a", now-10)), http.StatusNotFound, "not_sealed")
	})
}

func TestStoreErrorIsNotCached(t *testing.T) {
	f := newFixture(t)
	f.o.Announce(nil, publisher.Watermark{Sealed: now - 1, Published: now - 1})
	f.store.err = errors.New("s3 down")
	a := f.get(t, bucketPath("a", now-500))
	wantError(t, a, http.StatusServiceUnavailable, "store_unavailable")
}

func TestFutureAndBadRequests(t *testing.T) {
	f := newFixture(t)
	f.o.Announce(nil, publisher.Watermark{Sealed: now - 1, Published: now - 1})
	a := f.get(t, bucketPath("a", now+3))
	wantError(t, a, http.StatusNotFound, "future")
	if a.took > 200*time.Millisecond {
		t.Errorf("a far-future read was held for %v", a.took)
	}
	for _, p := range []string{
		"/v1/rooms/a.b/buckets/1.json", "/v1/rooms/" + strings.Repeat("x", 65) + "/buckets/1.json",
		"/v1/rooms/a/buckets/01.json", "/v1/rooms/a/buckets/-1.json", "/v1/rooms/a/buckets/1", "/v1/rooms/a/buckets/1.json5",
		"/v1/rooms/a/buckets/999999999999.json", "/v1/rooms/a/segments/1764318005.json", "/v1/rooms/%E2%80%8Ba/head",
	} {
		t.Run(p, func(t *testing.T) {
			a := f.get(t, p)
			if a.status != http.StatusBadRequest || a.header.Get("Cache-Control") != "no-store" {
				t.Errorf("%s: %d %s", p, a.status, a.body)
			}
		})
	}
}

func TestHoldsUntilSealed(t *testing.T) {
	f := newFixture(t)
	f.o.Announce(nil, publisher.Watermark{Sealed: now - 1, Published: now - 1})
	o := obj(keys.Bucket, "a", now, "just in")
	go func() {
		time.Sleep(80 * time.Millisecond)
		f.o.Announce([]bucketer.Object{o}, publisher.Watermark{Sealed: now})
	}()
	a := f.get(t, bucketPath("a", now))
	wantBody(t, a, o.Body)
	if a.took < 60*time.Millisecond {
		t.Errorf("answered in %v, before the seal", a.took)
	}
	// The next second never seals within the hold: 404, not cacheable.
	a = f.get(t, bucketPath("a", now+1))
	wantError(t, a, http.StatusNotFound, "not_sealed")
	if a.took < 250*time.Millisecond {
		t.Errorf("gave up after %v, hold is 300ms", a.took)
	}
}

func TestHeldRequestsAreCapped(t *testing.T) {
	f := newFixture(t, func(c *origin.Config) { c.MaxHeld = 1; c.Hold = time.Second })
	f.o.Announce(nil, publisher.Watermark{Sealed: now - 1, Published: now - 1})
	first := make(chan answer)
	go func() { first <- f.get(t, bucketPath("a", now)) }()
	time.Sleep(100 * time.Millisecond)
	a := f.get(t, bucketPath("b", now))
	wantError(t, a, http.StatusNotFound, "not_sealed")
	if a.took > 500*time.Millisecond {
		t.Errorf("the second held request waited %v", a.took)
	}
	f.o.Announce(nil, publisher.Watermark{Sealed: now})
	if a := <-first; a.status != http.StatusOK {
		t.Errorf("first held request: %d", a.status)
	}
}

func TestSegments(t *testing.T) {
	f := newFixture(t)
	start := int64(now - 20)
	f.o.Announce(nil, publisher.Watermark{Sealed: now - 60, Published: now - 60})
	seg := obj(keys.Segment, "a", start, "seg")
	f.o.Announce([]bucketer.Object{seg}, publisher.Watermark{Sealed: start + 9})
	wantBody(t, f.get(t, segmentPath("a", start)), seg.Body)
	f.o.Announce(nil, publisher.Watermark{Sealed: now - 1})
	wantEmpty(t, f.get(t, segmentPath("b", start)), "b", start, 10)
	// The segment holding the open second ends too far ahead to hold.
	wantError(t, f.get(t, segmentPath("a", now)), http.StatusNotFound, "future")
}

func TestFullRingNeverAnswersEmptyForWhatItRefused(t *testing.T) {
	f := newFixture(t, func(c *origin.Config) { c.MaxRooms = 2 })
	f.o.Announce(nil, publisher.Watermark{Sealed: now - 10, Published: now - 10})
	objs := []bucketer.Object{obj(keys.Bucket, "r1", now-5, "1"), obj(keys.Bucket, "r2", now-5, "2"), obj(keys.Bucket, "r3", now-5, "3")}
	f.o.Announce(objs, publisher.Watermark{Sealed: now - 5})
	wantBody(t, f.get(t, bucketPath("r1", now-5)), objs[0].Body)
	// r3 was refused: until the store has it, the origin must not call it empty.
	wantError(t, f.get(t, bucketPath("r3", now-5)), http.StatusNotFound, "not_sealed")
	f.store.objs[objs[2].Key] = objs[2].Body
	f.o.Announce(nil, publisher.Watermark{Sealed: now - 5, Published: now - 5})
	wantBody(t, f.get(t, bucketPath("r3", now-5)), objs[2].Body)
}

func TestPartitionWatermarks(t *testing.T) {
	f := newFixture(t)
	if f.o.Ready() {
		t.Fatal("ready before any watermark")
	}
	pa := keys.Partition("a")
	others := []int{}
	for p := 0; p < keys.Partitions; p++ {
		if p != pa {
			others = append(others, p)
		}
	}
	f.o.Announce(nil, publisher.Watermark{Partitions: others, Sealed: now - 1, Published: now - 1})
	if f.o.Ready() {
		t.Fatal("ready with one partition unheard")
	}
	// Room a's partition has no watermark: its past seconds are not known
	// sealed, so they wait and then say "not yet".
	wantError(t, f.get(t, bucketPath("a", now-1)), http.StatusNotFound, "not_sealed")
	f.o.Announce(nil, publisher.Watermark{Partitions: []int{pa}, Sealed: now - 1, Published: now - 1})
	if !f.o.Ready() {
		t.Fatal("not ready with every partition heard")
	}
}

func TestHead(t *testing.T) {
	f := newFixture(t)
	wantError(t, f.get(t, "/v1/rooms/a/head"), http.StatusServiceUnavailable, "not_ready")
	f.o.Announce(nil, publisher.Watermark{Sealed: now - 1, Published: now - 1})
	a := f.get(t, "/v1/rooms/a/head")
	var h origin.Head
	if err := json.Unmarshal(a.body, &h); err != nil {
		t.Fatal(err)
	}
	if h != (origin.Head{NowMS: now*1000 + 500, Sealed: now - 1, BucketSeconds: 1, PollMS: 1000}) {
		t.Errorf("head %+v", h)
	}
	if a.header.Get("Cache-Control") != "public, max-age=1" || a.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("head headers %v", a.header)
	}
}

func TestIdleRoomsAreEvictedWithoutLosingCoverage(t *testing.T) {
	f := newFixture(t, func(c *origin.Config) { c.RingSeconds = 10 })
	f.o.Announce(nil, publisher.Watermark{Sealed: now - 100, Published: now - 100})
	o := obj(keys.Bucket, "idle", now-90, "x")
	f.o.Announce([]bucketer.Object{o}, publisher.Watermark{Sealed: now - 90})
	wantBody(t, f.get(t, bucketPath("idle", now-90)), o.Body)
	// 70 seconds later the room has left the ring; its old bucket must come
	// from the store, and its recent seconds are still known empty.
	f.store.objs[o.Key] = o.Body
	f.o.Announce(nil, publisher.Watermark{Sealed: now - 20, Published: now - 20})
	before := f.store.reads.Load()
	wantBody(t, f.get(t, bucketPath("idle", now-90)), o.Body)
	if f.store.reads.Load() != before+1 {
		t.Error("an evicted room's old bucket did not come from the store")
	}
	wantEmpty(t, f.get(t, bucketPath("idle", now-21)), "idle", now-21, 1)
}

// TestJoinedLateWaitsForTheStore: an origin that started listening after a
// second sealed cannot tell that second's content until the store has it;
// a read is held until then, not refused.
func TestJoinedLateWaitsForTheStore(t *testing.T) {
	f := newFixture(t)
	f.o.Announce(nil, publisher.Watermark{Sealed: now - 1, Published: now - 6})
	o := obj(keys.Bucket, "a", now-3, "stored late")
	go func() {
		time.Sleep(80 * time.Millisecond)
		f.store.mu.Lock()
		f.store.objs[o.Key] = o.Body
		f.store.mu.Unlock()
		f.o.Announce(nil, publisher.Watermark{Sealed: now - 1, Published: now - 1})
	}()
	a := f.get(t, bucketPath("a", now-3))
	wantBody(t, a, o.Body)
	if a.took < 60*time.Millisecond {
		t.Errorf("answered after %v, before the store had it", a.took)
	}
	// Without the store catching up, the hold ends in an uncacheable 404.
	g := newFixture(t)
	g.o.Announce(nil, publisher.Watermark{Sealed: now - 1, Published: now - 6})
	wantError(t, g.get(t, bucketPath("a", now-3)), http.StatusNotFound, "not_sealed")
}

func TestForgetSendsAbsencesToTheStore(t *testing.T) {
	f := newFixture(t)
	f.o.Announce(nil, publisher.Watermark{Sealed: now - 30, Published: now - 30})
	f.o.Announce(nil, publisher.Watermark{Sealed: now - 10, Published: now - 10})
	// Covered: an absent second is empty without asking the store.
	before := f.store.reads.Load()
	wantEmpty(t, f.get(t, bucketPath("a", now-12)), "a", now-12, 1)
	if f.store.reads.Load() != before {
		t.Fatal("store read for a covered second")
	}
	// After Forget the ring no longer vouches: the store is asked, and its
	// object (which the ring missed) is served.
	missed := obj(keys.Bucket, "a", now-12, "missed announcement")
	f.store.objs[missed.Key] = missed.Body
	f.o.Forget(nil, now-5)
	wantBody(t, f.get(t, bucketPath("a", now-12)), missed.Body)
}
