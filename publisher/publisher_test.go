package publisher_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/danmaku/danmaku/bucketer"
	"github.com/danmaku/danmaku/internal/keys"
	"github.com/danmaku/danmaku/publisher"
)

// fakeStore is a Store with function fields.
type fakeStore struct {
	put func(ctx context.Context, key string, body []byte) (bool, error)
}

func (f *fakeStore) Put(ctx context.Context, key string, body []byte) (bool, error) {
	return f.put(ctx, key, body)
}

func (f *fakeStore) Get(context.Context, string) ([]byte, error) { return nil, publisher.ErrNotFound }

func (f *fakeStore) Stat(context.Context, string) (publisher.Info, error) {
	return publisher.Info{}, publisher.ErrNotFound
}

func (f *fakeStore) List(context.Context, string, string, func(string) bool) error { return nil }
func (f *fakeStore) Delete(context.Context, []string) error                        { return nil }
func (f *fakeStore) Replace(context.Context, string, []byte) error                 { return nil }

// event is one announcement or completion, in the order they happened.
type event struct {
	kind       string // "objects", "watermark", "done"
	keys       []string
	sealed     int64
	published  int64
	partitions []int
}

type recorder struct {
	mu     sync.Mutex
	events []event
}

func (r *recorder) Announce(objs []bucketer.Object, wm publisher.Watermark) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ks []string
	for _, o := range objs {
		ks = append(ks, o.Key)
	}
	r.events = append(r.events, event{kind: "announce", keys: ks, sealed: wm.Sealed, published: wm.Published, partitions: wm.Partitions})
}

func (r *recorder) add(e event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) snapshot() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event(nil), r.events...)
}

func object(room string, second int64) bucketer.Object {
	return bucketer.NewObject(keys.Bucket, room, second, []byte(fmt.Sprintf(`{"room":%q,"s":%d}`, room, second)), 1)
}

// batch makes a sealed batch whose Done is recorded.
func batch(t *testing.T, rec *recorder, through int64, objs ...bucketer.Object) *bucketer.Batch {
	t.Helper()
	return bucketer.NewBatch(through-1, through, objs, func() { rec.add(event{kind: "done", sealed: through}) })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestAnnouncesAtOnceAndPublishedAfterTheStore(t *testing.T) {
	rec := &recorder{}
	release := make(chan struct{})
	var stored sync.Map
	store := &fakeStore{put: func(ctx context.Context, key string, body []byte) (bool, error) {
		<-release
		stored.Store(key, body)
		return true, nil
	}}
	p, err := publisher.New(publisher.Config{Store: store, Announcer: rec})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	a, b := object("a", 100), object("b", 100)
	if err := p.Seal(context.Background(), batch(t, rec, 100, a, b)); err != nil {
		t.Fatal(err)
	}
	ev := rec.snapshot()
	if len(ev) != 1 || ev[0].kind != "announce" || len(ev[0].keys) != 2 || ev[0].sealed != 100 || ev[0].published >= 100 {
		t.Fatalf("before the store answered: %+v", ev)
	}
	close(release)
	waitFor(t, "done", func() bool { return len(rec.snapshot()) == 3 })
	ev = rec.snapshot()
	if ev[1].kind != "announce" || len(ev[1].keys) != 0 || ev[1].published != 100 || ev[2].kind != "done" {
		t.Fatalf("after the store: %+v", ev)
	}
	for _, o := range []bucketer.Object{a, b} {
		if v, ok := stored.Load(o.Key); !ok || string(v.([]byte)) != string(o.Body) {
			t.Errorf("%s not stored", o.Key)
		}
	}
}

func TestRetriesUntilTheStoreTakesIt(t *testing.T) {
	rec := &recorder{}
	var calls atomic.Int32
	store := &fakeStore{put: func(ctx context.Context, key string, body []byte) (bool, error) {
		if calls.Add(1) < 4 {
			return false, errors.New("store down")
		}
		return true, nil
	}}
	p, _ := publisher.New(publisher.Config{Store: store, Announcer: rec, RetryMin: time.Millisecond, RetryMax: 4 * time.Millisecond})
	defer p.Close(context.Background())
	p.Seal(context.Background(), batch(t, rec, 7, object("a", 7)))
	waitFor(t, "done after retries", func() bool {
		ev := rec.snapshot()
		return len(ev) > 0 && ev[len(ev)-1].kind == "done"
	})
	if calls.Load() != 4 {
		t.Errorf("%d attempts, want 4", calls.Load())
	}
}

func TestBatchesFinishInOrder(t *testing.T) {
	rec := &recorder{}
	store := &fakeStore{put: func(ctx context.Context, key string, body []byte) (bool, error) {
		if key == keys.Key(keys.Bucket, "slow", 1) {
			time.Sleep(30 * time.Millisecond)
		}
		return true, nil
	}}
	p, _ := publisher.New(publisher.Config{Store: store, Announcer: rec})
	defer p.Close(context.Background())
	p.Seal(context.Background(), batch(t, rec, 1, object("slow", 1)))
	p.Seal(context.Background(), batch(t, rec, 2, object("fast", 2)))
	p.Seal(context.Background(), batch(t, rec, 3))
	waitFor(t, "three done", func() bool {
		n := 0
		for _, e := range rec.snapshot() {
			if e.kind == "done" {
				n++
			}
		}
		return n == 3
	})
	var order []int64
	lastPublished := int64(-1)
	for _, e := range rec.snapshot() {
		if e.kind == "done" {
			order = append(order, e.sealed)
		}
		if e.kind == "announce" {
			if e.published < lastPublished {
				t.Errorf("published watermark moved back: %d after %d", e.published, lastPublished)
			}
			lastPublished = e.published
		}
	}
	if fmt.Sprint(order) != "[1 2 3]" {
		t.Errorf("done order %v", order)
	}
}

func TestDurableObjectsAreAnnouncedNotStored(t *testing.T) {
	rec := &recorder{}
	var puts atomic.Int32
	store := &fakeStore{put: func(ctx context.Context, key string, body []byte) (bool, error) {
		puts.Add(1)
		return true, nil
	}}
	p, _ := publisher.New(publisher.Config{Store: store, Announcer: rec})
	defer p.Close(context.Background())
	o := object("a", 5)
	o.Durable = true
	p.Seal(context.Background(), batch(t, rec, 5, o))
	waitFor(t, "done", func() bool {
		ev := rec.snapshot()
		return len(ev) > 0 && ev[len(ev)-1].kind == "done"
	})
	if puts.Load() != 0 {
		t.Errorf("a durable object was put %d times", puts.Load())
	}
	if ev := rec.snapshot(); len(ev[0].keys) != 1 {
		t.Errorf("durable object not announced: %+v", ev)
	}
}

func TestConflictIsFinal(t *testing.T) {
	rec := &recorder{}
	var puts atomic.Int32
	store := &fakeStore{put: func(ctx context.Context, key string, body []byte) (bool, error) {
		puts.Add(1)
		return false, fmt.Errorf("put %s: %w", key, publisher.ErrConflict)
	}}
	p, _ := publisher.New(publisher.Config{Store: store, Announcer: rec, RetryMin: time.Millisecond})
	defer p.Close(context.Background())
	p.Seal(context.Background(), batch(t, rec, 5, object("a", 5)))
	waitFor(t, "done", func() bool {
		ev := rec.snapshot()
		return len(ev) > 0 && ev[len(ev)-1].kind == "done"
	})
	if puts.Load() != 1 {
		t.Errorf("a conflict was retried: %d puts", puts.Load())
	}
}

func TestCloseAbandonsWhatTheStoreRefuses(t *testing.T) {
	rec := &recorder{}
	store := &fakeStore{put: func(ctx context.Context, key string, body []byte) (bool, error) {
		return false, errors.New("down")
	}}
	p, _ := publisher.New(publisher.Config{Store: store, Announcer: rec, RetryMin: time.Millisecond})
	p.Seal(context.Background(), batch(t, rec, 5, object("a", 5)))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	p.Close(ctx)
	if time.Since(start) > 2*time.Second {
		t.Errorf("Close took %v", time.Since(start))
	}
	for _, e := range rec.snapshot() {
		if e.kind == "done" || e.published >= 5 {
			t.Errorf("undelivered batch reported durable: %+v", e)
		}
	}
}

// TestOutageSpoolsAndDrainsInOrder: while the store is down the publisher
// keeps taking batches (sealing never stops), overflows them to the spool
// on disk, and once the store is back stores every object and finishes
// every batch in seal order, leaving the spool empty.
func TestOutageSpoolsAndDrainsInOrder(t *testing.T) {
	rec := &recorder{}
	var down atomic.Bool
	down.Store(true)
	var stored sync.Map
	store := &fakeStore{put: func(ctx context.Context, key string, body []byte) (bool, error) {
		if down.Load() {
			return false, errors.New("store down")
		}
		stored.Store(key, string(body))
		return true, nil
	}}
	dir := t.TempDir()
	p, err := publisher.New(publisher.Config{
		Store: store, Announcer: rec, SpoolDir: dir, MemoryBytes: 1, // every batch past the first spills
		Inflight: 2,
		RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		p.Close(ctx)
	}()
	var objs []bucketer.Object
	for s := int64(1); s <= 30; s++ {
		o := object(fmt.Sprintf("room%d", s%4), s)
		objs = append(objs, o)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if err := p.Seal(ctx, batch(t, rec, s, o)); err != nil {
			t.Fatalf("Seal blocked during the outage: %v", err)
		}
		cancel()
	}
	files, _ := os.ReadDir(dir)
	if len(files) < 25 {
		t.Fatalf("%d spool files during the outage, want about 29", len(files))
	}
	down.Store(false)
	waitFor(t, "30 done", func() bool {
		n := 0
		for _, e := range rec.snapshot() {
			if e.kind == "done" {
				n++
			}
		}
		return n == 30
	})
	var order []int64
	for _, e := range rec.snapshot() {
		if e.kind == "done" {
			order = append(order, e.sealed)
		}
	}
	for i, s := range order {
		if s != int64(i+1) {
			t.Fatalf("done order %v", order)
		}
	}
	for _, o := range objs {
		if v, ok := stored.Load(o.Key); !ok || v.(string) != string(o.Body) {
			t.Errorf("%s not stored intact after the outage", o.Key)
		}
	}
	if files, _ := os.ReadDir(dir); len(files) != 0 {
		t.Errorf("%d spool files left after draining", len(files))
	}
}

// TestFullSpoolPushesBack: with memory and spool both full, Seal blocks
// rather than grow without bound.
func TestFullSpoolPushesBack(t *testing.T) {
	rec := &recorder{}
	store := &fakeStore{put: func(ctx context.Context, key string, body []byte) (bool, error) {
		return false, errors.New("store down")
	}}
	p, _ := publisher.New(publisher.Config{Store: store, Announcer: rec, SpoolDir: t.TempDir(),
		MemoryBytes: 1, SpoolBytes: 2000, RetryMin: time.Millisecond})
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		p.Close(ctx)
	}()
	blocked := false
	for s := int64(1); s <= 50; s++ {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		err := p.Seal(ctx, batch(t, rec, s, object("r", s)))
		cancel()
		if err != nil {
			blocked = true
			if s < 3 {
				t.Errorf("blocked at batch %d already", s)
			}
			break
		}
	}
	if !blocked {
		t.Error("50 batches went into a 2000-byte spool without pushing back")
	}
}

// TestSourcesFinishIndependently: a bucketer whose batch is stuck does not
// hold back another bucketer's batches, and each still finishes in order.
func TestSourcesFinishIndependently(t *testing.T) {
	rec := &recorder{}
	release := make(chan struct{})
	store := &fakeStore{put: func(ctx context.Context, key string, body []byte) (bool, error) {
		if strings.Contains(key, "/slow/") {
			<-release
		}
		return true, nil
	}}
	p, _ := publisher.New(publisher.Config{Store: store, Announcer: rec})
	defer p.Close(context.Background())
	var mu sync.Mutex
	var done []string
	mk := func(part int, room string, s int64) *bucketer.Batch {
		return bucketer.NewBatchFor([]int{part}, s-1, s, []bucketer.Object{object(room, s)}, func() {
			mu.Lock()
			done = append(done, fmt.Sprintf("%s%d", room, s))
			mu.Unlock()
		})
	}
	p.Seal(context.Background(), mk(1, "slow", 1))
	p.Seal(context.Background(), mk(1, "fast", 2))
	p.Seal(context.Background(), mk(2, "other", 1))
	p.Seal(context.Background(), mk(2, "other", 2))
	waitFor(t, "partition 2 done", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(done) == 2
	})
	mu.Lock()
	if fmt.Sprint(done) != "[other1 other2]" {
		t.Errorf("done %v while partition 1 is stuck", done)
	}
	mu.Unlock()
	close(release)
	waitFor(t, "all done", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(done) == 4
	})
	if fmt.Sprint(done[2:]) != "[slow1 fast2]" {
		t.Errorf("partition 1 finished out of order: %v", done)
	}
	// Each partition has its own watermark.
	var p1, p2 int64
	for _, e := range rec.snapshot() {
		if e.kind == "announce" && e.published > 0 {
			if len(e.partitions) == 1 && e.partitions[0] == 1 {
				p1 = e.published
			} else if len(e.partitions) == 1 && e.partitions[0] == 2 {
				p2 = e.published
			}
		}
	}
	if p1 != 2 || p2 != 2 {
		t.Errorf("published watermarks %d, %d", p1, p2)
	}
}
