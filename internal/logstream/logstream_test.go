package logstream

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/danmaku/danmaku/internal/keys"
)

func open(t *testing.T) *Log {
	t.Helper()
	l, err := Open(context.Background(), Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

func TestAppendNamesTheStoredSecond(t *testing.T) {
	l := open(t)
	ctx := context.Background()
	for i := 0; i < 50; i++ {
		ack, err := l.Append(ctx, "lobby", []byte(`{"m":[{"t":"x","c":1}]}`), "id-"+string(rune('a'+i)))
		if err != nil {
			t.Fatal(err)
		}
		e, err := l.Entry(ctx, ack.Seq)
		if err != nil {
			t.Fatal(err)
		}
		if e.Time.Unix() != ack.Time.Unix() {
			t.Fatalf("append %d: ack names second %d, the log stored it in %d", i, ack.Time.Unix(), e.Time.Unix())
		}
		if e.Room != "lobby" {
			t.Fatalf("entry room %q", e.Room)
		}
		time.Sleep(7 * time.Millisecond) // walk across a second boundary or two
	}
}

func TestAppendDeduplicatesByID(t *testing.T) {
	l := open(t)
	ctx := context.Background()
	a, err := l.Append(ctx, "r", []byte("one"), "same")
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Append(ctx, "r", []byte("one"), "same")
	if err != nil {
		t.Fatal(err)
	}
	if !b.Duplicate || b.Seq != a.Seq || b.Time.Unix() != a.Time.Unix() {
		t.Errorf("second append %+v, first %+v", b, a)
	}
	last, _ := l.LastSeq(ctx)
	if last != a.Seq {
		t.Errorf("log holds %d entries, want %d", last, a.Seq)
	}
}

func TestReadInOrderWithPartitionFilter(t *testing.T) {
	l := open(t)
	ctx := context.Background()
	rooms := []string{"a", "b", "c", "d", "e", "f"}
	want := map[string][]uint64{}
	for i := 0; i < 30; i++ {
		room := rooms[i%len(rooms)]
		ack, err := l.Append(ctx, room, []byte("x"), "")
		if err != nil {
			t.Fatal(err)
		}
		want[room] = append(want[room], ack.Seq)
		if i == 10 {
			if _, err := l.Tick(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	part := keys.Partition("a")
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var got []Entry
	err := l.Read(rctx, 1, []int{part}, func(e Entry) error {
		got = append(got, e)
		if e.Pending == 0 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("read: %v", err)
	}
	ticks := 0
	var prev uint64
	gotRooms := map[string][]uint64{}
	for _, e := range got {
		if e.Seq <= prev {
			t.Fatalf("sequence %d after %d", e.Seq, prev)
		}
		prev = e.Seq
		if e.Room == "" {
			ticks++
			if len(e.Data) != 0 {
				t.Error("tick with data")
			}
			continue
		}
		if keys.Partition(e.Room) != part {
			t.Errorf("room %s of partition %d read with filter %d", e.Room, keys.Partition(e.Room), part)
		}
		gotRooms[e.Room] = append(gotRooms[e.Room], e.Seq)
	}
	if ticks != 1 {
		t.Errorf("%d ticks read, want 1", ticks)
	}
	for room, seqs := range want {
		if keys.Partition(room) != part {
			continue
		}
		if len(gotRooms[room]) != len(seqs) {
			t.Errorf("room %s: read %v, appended %v", room, gotRooms[room], seqs)
		}
	}
}

func TestReadFromAMidpoint(t *testing.T) {
	l := open(t)
	ctx := context.Background()
	var seqs []uint64
	for i := 0; i < 10; i++ {
		a, _ := l.Append(ctx, "r", []byte("x"), "")
		seqs = append(seqs, a.Seq)
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var first uint64
	var mu sync.Mutex
	l.Read(rctx, seqs[6], nil, func(e Entry) error {
		mu.Lock()
		defer mu.Unlock()
		if first == 0 {
			first = e.Seq
		}
		cancel()
		return nil
	})
	if first != seqs[6] {
		t.Errorf("read from %d started at %d", seqs[6], first)
	}
}

func TestCheckpoints(t *testing.T) {
	l := open(t)
	ctx := context.Background()
	v, err := l.LoadCheckpoint(ctx, "all")
	if err != nil || v != nil {
		t.Fatalf("fresh checkpoint %q, %v", v, err)
	}
	if err := l.SaveCheckpoint(ctx, "all", []byte(`{"seq":5}`)); err != nil {
		t.Fatal(err)
	}
	v, _ = l.LoadCheckpoint(ctx, "all")
	if string(v) != `{"seq":5}` {
		t.Errorf("loaded %q", v)
	}
}

func TestCheckpointSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	l, err := Open(ctx, Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	l.SaveCheckpoint(ctx, "all", []byte("7"))
	ack, _ := l.Append(ctx, "r", []byte("kept"), "")
	l.Close()
	l, err = Open(ctx, Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if v, _ := l.LoadCheckpoint(ctx, "all"); string(v) != "7" {
		t.Errorf("checkpoint after reopen %q", v)
	}
	e, err := l.Entry(ctx, ack.Seq)
	if err != nil || string(e.Data) != "kept" {
		t.Errorf("entry after reopen: %q, %v", e.Data, err)
	}
}

func TestSubjects(t *testing.T) {
	for _, room := range []string{"a", "lobby", "Game_7-x"} {
		if got := roomOf(Subject(room)); got != room {
			t.Errorf("roomOf(Subject(%q)) = %q", room, got)
		}
	}
	if roomOf(TickSubject) != "" || roomOf("other.subject") != "" {
		t.Error("non-message subjects must have no room")
	}
}

func TestRedact(t *testing.T) {
	got := redact("nats://user:secret@h1:4222,nats://h2:4222")
	if got != "nats://***@h1:4222,nats://h2:4222" {
		t.Errorf("redact: %s", got)
	}
}

func TestPostRoundTrip(t *testing.T) {
	p := &Post{UserID: "u", UserName: "名", Messages: []Message{{Text: "a", Color: 0xFFFFFF}, {Text: "b", Mode: 2}}}
	b, err := EncodePost(p)
	if err != nil {
		t.Fatal(err)
	}
	q, err := DecodePost(b)
	if err != nil || q.UserName != "名" || len(q.Messages) != 2 || q.Messages[1].Mode != 2 {
		t.Errorf("round trip %+v %v", q, err)
	}
	if _, err := DecodePost([]byte(`{"m":[]}`)); err == nil {
		t.Error("a post without messages decoded")
	}
}

func TestEmbeddedDirectoryIsLocked(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(context.Background(), Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), Config{DataDir: dir}); err == nil {
		t.Fatal("a second embedded server opened the same directory")
	}
	l.Close()
	l2, err := Open(context.Background(), Config{DataDir: dir})
	if err != nil {
		t.Fatalf("reopen after close: %v", err)
	}
	l2.Close()
}

func TestReadSinceFiltersRooms(t *testing.T) {
	l := open(t)
	ctx := context.Background()
	l.Append(ctx, "old", []byte("x"), "")
	time.Sleep(20 * time.Millisecond)
	start := time.Now()
	want, _ := l.Append(ctx, "keep", []byte("k"), "")
	l.Append(ctx, "other", []byte("o"), "")
	l.Tick(ctx)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var got []Entry
	l.ReadSince(rctx, start, []string{"keep"}, func(e Entry) error {
		got = append(got, e)
		if e.Pending == 0 {
			cancel()
		}
		return nil
	})
	if len(got) != 2 || got[0].Seq != want.Seq || got[0].Room != "keep" || got[1].Room != "" {
		t.Errorf("read %+v", got)
	}
}

func TestListenServesOtherProcesses(t *testing.T) {
	l, err := Open(context.Background(), Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	url := l.ClientURL()
	if url == "" {
		t.Fatal("no client URL")
	}
	other, err := Open(context.Background(), Config{URLs: []string{url}})
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	defer other.Close()
	a, err := other.Append(context.Background(), "r", []byte("via tcp"), "")
	if err != nil {
		t.Fatal(err)
	}
	if e, err := l.Entry(context.Background(), a.Seq); err != nil || string(e.Data) != "via tcp" {
		t.Errorf("entry %q, %v", e.Data, err)
	}
}
