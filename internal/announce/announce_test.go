package announce

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/danmaku/danmaku/bucketer"
	"github.com/danmaku/danmaku/internal/keys"
	"github.com/danmaku/danmaku/internal/logstream"
	"github.com/danmaku/danmaku/publisher"
)

func obj(kind keys.Kind, room string, second int64, text string) bucketer.Object {
	raw := fmt.Sprintf(`{"v":1,"room":%q,"start":%d,"seconds":%d,"seq":[7],"ms":[5],"users":[["u","n"]],"text":[%q]}`,
		room, second, kind.Seconds(), text)
	return bucketer.NewObject(kind, room, second, []byte(raw), 1)
}

func TestEncodeDecode(t *testing.T) {
	for _, m := range []*Message{
		{Instance: "abc", Seq: 9, Partitions: []int{3, 31}, Sealed: 1764318005, Published: 1764318001,
			Objects: []bucketer.Object{obj(keys.Bucket, "r", 1764318005, "x"), obj(keys.Segment, "r2", 1764317990, "y")}},
		{Instance: "abc", Seq: 10, Partitions: nil, Sealed: 5, Published: 5},
		{Instance: "", Seq: 1, Partitions: []int{}, ObjectsOnly: true, Objects: []bucketer.Object{obj(keys.Bucket, "a", 1, "z")}},
	} {
		got, err := Decode(m.Encode())
		if err != nil {
			t.Fatalf("%+v: %v", m, err)
		}
		for i := range m.Objects {
			m.Objects[i].Durable = false
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("round trip\n got %+v\nwant %+v", got, m)
		}
	}
}

func TestDecodeRefuses(t *testing.T) {
	good := (&Message{Instance: "i", Seq: 1, Partitions: []int{1}, Objects: []bucketer.Object{obj(keys.Bucket, "r", 10, "x")}}).Encode()
	bad := map[string][]byte{
		"empty":       nil,
		"magic":       append([]byte("XXXXX"), good[5:]...),
		"truncated":   good[:len(good)-3],
		"trailing":    append(append([]byte(nil), good...), 0),
		"partition":   func() []byte { b := append([]byte(nil), good...); b[5+1+1+8+2] = 200; return b }(),
		"tag":         bytes.Replace(append([]byte(nil), good...), []byte(`"`), []byte(`'`), 1),
		"room":        (&Message{Objects: []bucketer.Object{{Kind: keys.Bucket, Room: "../x", Second: 1, Body: []byte("x"), ETag: bucketer.ETag([]byte("x"))}}}).Encode(),
		"segment":     (&Message{Objects: []bucketer.Object{{Kind: keys.Segment, Room: "r", Second: 3, Body: []byte("x"), ETag: bucketer.ETag([]byte("x"))}}}).Encode(),
		"kind":        (&Message{Objects: []bucketer.Object{{Kind: 7, Room: "r", Second: 3, Body: []byte("x"), ETag: bucketer.ETag([]byte("x"))}}}).Encode(),
		"huge length": append(good[:len(good)-4-len(obj(keys.Bucket, "r", 10, "x").Body)], 0xff, 0xff, 0xff, 0xff),
	}
	for name, b := range bad {
		if _, err := Decode(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add((&Message{Instance: "i", Seq: 1, Partitions: []int{1}, Sealed: 3, Objects: []bucketer.Object{obj(keys.Bucket, "r", 10, "x")}}).Encode())
	f.Add((&Message{Seq: 2, Sealed: 4}).Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		for _, o := range m.Objects {
			if !keys.ValidRoom(o.Room) || o.ETag != bucketer.ETag(o.Body) || o.Key != keys.Key(o.Kind, o.Room, o.Second) {
				t.Fatalf("accepted a bad object %+v", o)
			}
		}
		if !bytes.Equal(m.Encode(), b) {
			t.Fatalf("re-encoding differs")
		}
	})
}

// recorder is a Target that records calls in order.
type recorder struct {
	mu    sync.Mutex
	calls []string
}

func (r *recorder) Announce(objs []bucketer.Object, wm publisher.Watermark) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, fmt.Sprintf("announce %d objects %v sealed %d", len(objs), wm.Partitions, wm.Sealed))
}

func (r *recorder) Forget(partitions []int, through int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, fmt.Sprintf("forget %v through %d", partitions, through))
}

func (r *recorder) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

func waitCalls(t *testing.T, r *recorder, n int) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(r.snapshot()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("calls %v, want %d", r.snapshot(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return r.snapshot()
}

func TestReceiverOverNATS(t *testing.T) {
	l, err := logstream.Open(context.Background(), logstream.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	rec := &recorder{}
	r, err := Receive(l.Conn(), rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s := NewSender(l.Conn(), nil)
	s.max = 600 // force chunks
	objs := []bucketer.Object{obj(keys.Bucket, "a", 100, "one"), obj(keys.Bucket, "b", 100, "two"), obj(keys.Bucket, "c", 100, "three")}
	s.Announce(objs, publisher.Watermark{Partitions: []int{4}, Sealed: 100, Published: 99})
	calls := waitCalls(t, rec, 3)
	want := []string{"announce 1 objects [] sealed 0", "announce 1 objects [] sealed 0", "announce 1 objects [4] sealed 100"}
	if fmt.Sprint(calls) != fmt.Sprint(want) {
		t.Errorf("in-order delivery:\n got %v\nwant %v", calls, want)
	}
	if r.Gaps() != 0 {
		t.Errorf("%d gaps in an unbroken stream", r.Gaps())
	}

	// A lost message: the next watermark is preceded by a Forget.
	s.mu.Lock()
	s.seq[SubjectPrefix+"4"]++
	s.mu.Unlock()
	s.Announce(nil, publisher.Watermark{Partitions: []int{4}, Sealed: 103, Published: 101})
	calls = waitCalls(t, rec, 5)
	if calls[3] != "forget [4] through 103" || calls[4] != "announce 0 objects [4] sealed 103" {
		t.Errorf("after a gap: %v", calls[3:])
	}
	// And the stream is clean again afterwards.
	s.Announce(nil, publisher.Watermark{Partitions: []int{4}, Sealed: 104, Published: 104})
	calls = waitCalls(t, rec, 6)
	if calls[5] != "announce 0 objects [4] sealed 104" || r.Gaps() != 1 {
		t.Errorf("after recovering: %v, %d gaps", calls[5:], r.Gaps())
	}

	// A receiver that joins late cannot vouch for what came before.
	late := &recorder{}
	r2, _ := Receive(l.Conn(), late, nil)
	defer r2.Close()
	s.Announce(nil, publisher.Watermark{Partitions: []int{4}, Sealed: 105, Published: 105})
	calls = waitCalls(t, late, 2)
	if calls[0] != "forget [4] through 105" {
		t.Errorf("late joiner: %v", calls)
	}
}
