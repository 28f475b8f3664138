package bucketer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/danmaku/danmaku/bucketer"
	"github.com/danmaku/danmaku/internal/keys"
	"github.com/danmaku/danmaku/internal/logstream"
)

// fakeLog is an in-memory log: Read replays entries from a sequence and then
// waits for more.
type fakeLog struct {
	mu      sync.Mutex
	entries []logstream.Entry
	grew    chan struct{}
	ckpt    map[string][]byte
}

func newFakeLog() *fakeLog {
	return &fakeLog{grew: make(chan struct{}), ckpt: map[string][]byte{}}
}

func (l *fakeLog) add(ts time.Time, room string, texts ...string) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := logstream.Entry{Seq: uint64(len(l.entries) + 1), Time: ts, Room: room}
	if room != "" {
		p := &logstream.Post{UserID: "u-" + room, UserName: "名字"}
		for _, s := range texts {
			p.Messages = append(p.Messages, logstream.Message{Text: s, Color: bucketer.DefaultColor})
		}
		e.Data, _ = logstream.EncodePost(p)
	}
	l.entries = append(l.entries, e)
	close(l.grew)
	l.grew = make(chan struct{})
	return e.Seq
}

func (l *fakeLog) Read(ctx context.Context, from uint64, _ []int, fn func(logstream.Entry) error) error {
	next := max(from, 1)
	for {
		l.mu.Lock()
		grew := l.grew
		var batch []logstream.Entry
		if int(next) <= len(l.entries) {
			batch = append(batch, l.entries[next-1:]...)
		}
		total := uint64(len(l.entries))
		l.mu.Unlock()
		for _, e := range batch {
			e.Pending = total - e.Seq
			if err := fn(e); err != nil {
				return err
			}
			next = e.Seq + 1
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-grew:
		}
	}
}

func (l *fakeLog) LastSeq(context.Context) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return uint64(len(l.entries)), nil
}

func (l *fakeLog) LoadCheckpoint(_ context.Context, name string) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ckpt[name], nil
}

func (l *fakeLog) SaveCheckpoint(_ context.Context, name string, v []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ckpt[name] = append([]byte(nil), v...)
	return nil
}

// recordSink keeps every batch and finishes it at once (or never, when
// hold is set).
type recordSink struct {
	mu      sync.Mutex
	batches []*bucketer.Batch
	hold    bool
	got     chan struct{}
}

func newSink() *recordSink { return &recordSink{got: make(chan struct{}, 1000)} }

func (s *recordSink) Seal(_ context.Context, b *bucketer.Batch) error {
	s.mu.Lock()
	s.batches = append(s.batches, b)
	hold := s.hold
	s.mu.Unlock()
	if !hold {
		b.Done()
	}
	s.got <- struct{}{}
	return nil
}

func (s *recordSink) objects() map[string]bucketer.Object {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]bucketer.Object{}
	for _, b := range s.batches {
		for _, o := range b.Objects {
			out[o.Key] = o
		}
	}
	return out
}

func (s *recordSink) sealedThrough() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.batches) == 0 {
		return -1
	}
	return s.batches[len(s.batches)-1].Through
}

// run starts a bucketer on log and sink and returns a stop function.
func run(t *testing.T, log *fakeLog, sink *recordSink) (*bucketer.Bucketer, func()) {
	t.Helper()
	return runConfig(t, bucketer.Config{Source: log, Checkpoints: log, Sink: sink, Grace: 100 * time.Millisecond})
}

// runConfig runs a bucketer; the func it returns stops it and expects Run
// to have ended only then, without an error.
func runConfig(t *testing.T, cfg bucketer.Config) (*bucketer.Bucketer, func()) {
	t.Helper()
	b, err := bucketer.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx, time.Second) }()
	return b, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}
}

func waitSealed(t *testing.T, sink *recordSink, second int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for sink.sealedThrough() < second {
		if time.Now().After(deadline) {
			t.Fatalf("second %d not sealed; sealed through %d", second, sink.sealedThrough())
		}
		time.Sleep(time.Millisecond)
	}
}

const base = 1764318000 // a segment start

func at(second int64, ms int) time.Time { return time.UnixMilli(second*1000 + int64(ms)) }

func decode(t *testing.T, o bucketer.Object) *bucketer.Body {
	t.Helper()
	b, err := bucketer.DecodeGzip(o.Body)
	if err != nil {
		t.Fatalf("%s: %v", o.Key, err)
	}
	return b
}

func texts(b *bucketer.Body) []string {
	var out []string
	for _, m := range b.Messages {
		out = append(out, m.Text)
	}
	return out
}

func TestSealsOnceTheLogPassesSecondPlusGrace(t *testing.T) {
	log, sink := newFakeLog(), newSink()
	log.add(at(base, 200), "a", "one")
	log.add(at(base, 900), "a", "two", "three")
	log.add(at(base+1, 50), "a", "four")
	log.add(at(base+1, 90), "", "") // tick inside the grace: nothing sealed yet
	_, stop := run(t, log, sink)
	defer stop()
	time.Sleep(50 * time.Millisecond)
	if got := sink.sealedThrough(); got >= base {
		t.Fatalf("sealed through %d before the log reached %d.100", got, base+1)
	}
	log.add(at(base+1, 100), "", "")
	waitSealed(t, sink, base)
	objs := sink.objects()
	o, ok := objs[keys.Key(keys.Bucket, "a", base)]
	if !ok {
		t.Fatalf("no bucket for %d; have %v", base, objs)
	}
	b := decode(t, o)
	if got := texts(b); fmt.Sprint(got) != "[one two three]" {
		t.Errorf("bucket %d holds %v", base, got)
	}
	if b.Messages[0].OffsetMS != 200 || b.Messages[1].OffsetMS != 900 || b.Messages[1].ID != "2.0" || b.Messages[2].ID != "2.1" {
		t.Errorf("offsets or ids: %+v", b.Messages)
	}
	if _, ok := objs[keys.Key(keys.Bucket, "a", base+1)]; ok {
		t.Error("second base+1 sealed early")
	}
	if o.Messages != 3 || o.ETag != bucketer.ETag(o.Body) {
		t.Errorf("object metadata %d messages, etag %s", o.Messages, o.ETag)
	}
}

func TestEmptySecondsWriteNothingAndQuietLogsSeal(t *testing.T) {
	log, sink := newFakeLog(), newSink()
	log.add(at(base, 10), "a", "x")
	for s := int64(1); s <= 5; s++ {
		log.add(at(base+s, 101), "", "") // one tick a second
	}
	_, stop := run(t, log, sink)
	defer stop()
	waitSealed(t, sink, base+4)
	for key := range sink.objects() {
		if key != keys.Key(keys.Bucket, "a", base) {
			t.Errorf("unexpected object %s", key)
		}
	}
}

func TestClockStepBackJoinsTheOpenSecond(t *testing.T) {
	log, sink := newFakeLog(), newSink()
	log.add(at(base, 10), "a", "before")
	log.add(at(base+1, 200), "", "") // seals base
	log.add(at(base, 500), "a", "stepped back")
	log.add(at(base+2, 200), "", "") // seals base+1
	_, stop := run(t, log, sink)
	defer stop()
	waitSealed(t, sink, base+1)
	o, ok := sink.objects()[keys.Key(keys.Bucket, "a", base+1)]
	if !ok {
		t.Fatal("the stepped-back message was not sealed into the next open second")
	}
	b := decode(t, o)
	if texts(b)[0] != "stepped back" || b.Messages[0].OffsetMS != 0 {
		t.Errorf("got %+v", b.Messages)
	}
	if got := texts(decode(t, sink.objects()[keys.Key(keys.Bucket, "a", base)])); len(got) != 1 {
		t.Errorf("sealed bucket changed: %v", got)
	}
}

func TestSegmentHoldsItsTenSeconds(t *testing.T) {
	log, sink := newFakeLog(), newSink()
	log.add(at(base-1, 999), "a", "previous segment")
	log.add(at(base, 1), "a", "s0")
	log.add(at(base+3, 250), "a", "s3")
	log.add(at(base+9, 999), "a", "s9")
	log.add(at(base+10, 5), "a", "next segment")
	log.add(at(base+10, 150), "", "")
	_, stop := run(t, log, sink)
	defer stop()
	waitSealed(t, sink, base+9)
	o, ok := sink.objects()[keys.Key(keys.Segment, "a", base)]
	if !ok {
		t.Fatal("no segment")
	}
	b := decode(t, o)
	if b.Seconds != 10 || fmt.Sprint(texts(b)) != "[s0 s3 s9]" {
		t.Fatalf("segment %d s holds %v", b.Seconds, texts(b))
	}
	if m := b.Messages[1]; m.Second != base+3 || m.OffsetMS != 250 {
		t.Errorf("s3 at %d.%03d", m.Second, m.OffsetMS)
	}
	// Each message of the segment is also in its bucket, with the same id.
	for _, m := range b.Messages {
		bo := sink.objects()[keys.Key(keys.Bucket, "a", m.Second)]
		bb := decode(t, bo)
		if len(bb.Messages) != 1 || bb.Messages[0].ID != m.ID {
			t.Errorf("bucket %d: %+v, segment message %+v", m.Second, bb.Messages, m)
		}
	}
}

// TestReplayFromCheckpointIsByteIdentical runs a log to the end, then
// replays it from every checkpoint the run saved, and checks that every
// object the replay rebuilds has the bytes of the first run and that the
// replay rebuilds every object that was not yet durable.
func TestReplayFromCheckpointIsByteIdentical(t *testing.T) {
	log := newFakeLog()
	for s := int64(0); s < 35; s++ {
		for k := 0; k < 3; k++ {
			room := []string{"a", "b", "c"}[(int(s)+k)%3]
			log.add(at(base+s, 100+k*300), room, fmt.Sprintf("m%d-%d", s, k))
		}
		log.add(at(base+s+1, 120), "", "")
	}
	sink := newSink()
	var checkpoints [][]byte
	var mu sync.Mutex
	saver := &savingLog{fakeLog: log, saved: func(v []byte) {
		mu.Lock()
		checkpoints = append(checkpoints, v)
		mu.Unlock()
	}}
	b, err := bucketer.New(bucketer.Config{Source: saver, Checkpoints: saver, Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx, time.Second) }()
	waitSealed(t, sink, base+34)
	cancel()
	<-done
	first := sink.objects()
	if len(checkpoints) < 3 {
		t.Fatalf("only %d checkpoints saved", len(checkpoints))
	}
	for i, raw := range checkpoints {
		var ck bucketer.Checkpoint
		if err := json.Unmarshal(raw, &ck); err != nil {
			t.Fatal(err)
		}
		replay := newFakeLog()
		replay.entries = log.entries
		replay.ckpt["all"] = raw
		rs := newSink()
		_, stop := run(t, replay, rs)
		waitSealed(t, rs, base+34)
		stop()
		again := rs.objects()
		for key, o := range again {
			f, ok := first[key]
			if !ok {
				t.Errorf("checkpoint %d: replay made %s, which the first run did not", i, key)
				continue
			}
			if !bytes.Equal(f.Body, o.Body) {
				t.Errorf("checkpoint %d: %s differs on replay", i, key)
			}
			_, second, _ := mustParse(t, key)
			last := second
			if f.Kind == keys.Segment {
				last += keys.SegmentSeconds - 1
			}
			if o.Durable != (last <= ck.Published) {
				t.Errorf("checkpoint %d (%+v): %s durable=%v", i, ck, key, o.Durable)
			}
		}
		for key, o := range first {
			_, second, _ := mustParse(t, key)
			last := second
			if o.Kind == keys.Segment {
				last += keys.SegmentSeconds - 1
			}
			if _, ok := again[key]; !ok && last > ck.Published {
				t.Errorf("checkpoint %d (%+v): %s not durable yet, but the replay did not rebuild it", i, ck, key)
			}
		}
	}
}

func mustParse(t *testing.T, key string) (keys.Kind, int64, string) {
	t.Helper()
	kind, room, second, err := keys.Parse(key)
	if err != nil {
		t.Fatal(err)
	}
	return kind, second, room
}

type savingLog struct {
	*fakeLog
	saved func([]byte)
}

func (s *savingLog) SaveCheckpoint(ctx context.Context, name string, v []byte) error {
	s.saved(v)
	return s.fakeLog.SaveCheckpoint(ctx, name, v)
}

func TestCheckpointWaitsForTheSink(t *testing.T) {
	log, sink := newFakeLog(), newSink()
	sink.hold = true
	log.add(at(base, 10), "a", "x")
	for s := int64(1); s <= 12; s++ {
		log.add(at(base+s, 150), "", "")
	}
	_, stop := run(t, log, sink)
	waitSealed(t, sink, base+11)
	if raw, _ := log.LoadCheckpoint(context.Background(), "all"); raw != nil {
		var ck bucketer.Checkpoint
		json.Unmarshal(raw, &ck)
		if ck.Published >= base {
			t.Errorf("checkpoint %+v claims durability the sink never confirmed", ck)
		}
	}
	// Finish everything: the checkpoint moves past the first segment.
	sink.mu.Lock()
	held := sink.batches
	sink.mu.Unlock()
	for _, b := range held {
		b.Done()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		raw, _ := log.LoadCheckpoint(context.Background(), "all")
		var ck bucketer.Checkpoint
		json.Unmarshal(raw, &ck)
		if ck.Published >= base+11 && ck.Second == base+10 && ck.Seq > 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("checkpoint %s did not advance after the sink finished", raw)
		}
		time.Sleep(5 * time.Millisecond)
	}
	stop()
}

func TestSkipsUnreadableEntries(t *testing.T) {
	log, sink := newFakeLog(), newSink()
	log.add(at(base, 10), "a", "good")
	log.mu.Lock()
	log.entries = append(log.entries, logstream.Entry{Seq: 2, Time: at(base, 20), Room: "a", Data: []byte("{not json")})
	log.mu.Unlock()
	log.add(at(base+1, 200), "", "")
	_, stop := run(t, log, sink)
	defer stop()
	waitSealed(t, sink, base)
	b := decode(t, sink.objects()[keys.Key(keys.Bucket, "a", base)])
	if fmt.Sprint(texts(b)) != "[good]" {
		t.Errorf("got %v", texts(b))
	}
}

func TestReadyOnceCaughtUp(t *testing.T) {
	log, sink := newFakeLog(), newSink()
	for i := 0; i < 100; i++ {
		log.add(at(base, i), "a", "x")
	}
	b, stop := run(t, log, sink)
	defer stop()
	deadline := time.Now().Add(5 * time.Second)
	for !b.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("never ready")
		}
		time.Sleep(time.Millisecond)
	}
}

// brokenLog's first `broken` readers run bad instead of reading the log;
// later readers work.
type brokenLog struct {
	*fakeLog
	broken int
	bad    func(from uint64, fn func(logstream.Entry) error) error
	mu     sync.Mutex
	reads  int
}

func (b *brokenLog) Read(ctx context.Context, from uint64, p []int, fn func(logstream.Entry) error) error {
	b.mu.Lock()
	b.reads++
	n := b.reads
	b.mu.Unlock()
	if n > b.broken {
		return b.fakeLog.Read(ctx, from, p, fn)
	}
	return b.bad(from, fn)
}

// stuckLog's first reader delivers two entries and then hangs, deaf to its
// context, like a consumer on a server that vanished.
func stuckLog(log *fakeLog) *brokenLog {
	return &brokenLog{fakeLog: log, broken: 1, bad: func(_ uint64, fn func(logstream.Entry) error) error {
		for _, e := range log.entries[:2] {
			if err := fn(e); err != nil {
				return err
			}
		}
		select {} // stuck for good
	}}
}

func TestStuckReaderIsReopened(t *testing.T) {
	log, sink := newFakeLog(), newSink()
	log.add(at(base, 10), "a", "before")
	log.add(at(base, 20), "a", "during")
	log.add(at(base, 30), "a", "after the stall")
	log.add(at(base+1, 200), "", "")
	src := stuckLog(log)
	_, stop := runConfig(t, bucketer.Config{Source: src, Checkpoints: log, Sink: sink, StallAfter: 200 * time.Millisecond})
	defer stop()
	waitSealed(t, sink, base)
	got := texts(decode(t, sink.objects()[keys.Key(keys.Bucket, "a", base)]))
	if fmt.Sprint(got) != "[before during after the stall]" {
		t.Errorf("after reopening the reader: %v (each message once, in order)", got)
	}
}

// failingLog's first readers deliver an entry and then fail, as a consumer
// does when its stream has no leader for a moment.
func failingLog(log *fakeLog, fails int) *brokenLog {
	return &brokenLog{fakeLog: log, broken: fails, bad: func(from uint64, fn func(logstream.Entry) error) error {
		log.mu.Lock()
		e := log.entries[min(int(max(from, 1))-1, len(log.entries)-1)]
		log.mu.Unlock()
		if err := fn(e); err != nil {
			return err
		}
		return errors.New("nats: no responders available for request")
	}}
}

func TestFailedReaderIsReopenedInPlace(t *testing.T) {
	log, sink := newFakeLog(), newSink()
	log.add(at(base, 10), "a", "one")
	log.add(at(base, 20), "a", "two")
	log.add(at(base, 30), "a", "three")
	log.add(at(base+1, 200), "", "")
	src := failingLog(log, 3)
	_, stop := runConfig(t, bucketer.Config{Source: src, Checkpoints: log, Sink: sink})
	defer stop() // and Run must not have ended on a reader's error
	waitSealed(t, sink, base)
	got := texts(decode(t, sink.objects()[keys.Key(keys.Bucket, "a", base)]))
	if fmt.Sprint(got) != "[one two three]" {
		t.Errorf("after the reader failed three times: %v (each message once, in order)", got)
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	if src.reads != 4 {
		t.Errorf("%d reads, want 3 failed and 1 that works", src.reads)
	}
}
