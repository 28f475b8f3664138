package lease

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/danmaku/danmaku/internal/logstream"
)

const ttl = time.Second

// holder is a Manager with a record of the slots it runs work for.
type holder struct {
	m       *Manager
	mu      sync.Mutex
	running map[int]bool
	overlap func(slot int) // told when a slot starts while another holder runs it
}

func newHolder(t *testing.T, l *logstream.Log, id string, all *sync.Map) *holder {
	h := &holder{running: map[int]bool{}}
	m, err := New(Config{
		KV: l.Leases(), ID: id, Slots: 32, TTL: ttl,
		Acquire: func(s int) {
			h.mu.Lock()
			h.running[s] = true
			h.mu.Unlock()
			if prev, loaded := all.LoadOrStore(s, id); loaded {
				t.Errorf("%s acquired partition %d while %s runs it", id, s, prev)
			}
		},
		Release: func(s int) {
			h.mu.Lock()
			delete(h.running, s)
			h.mu.Unlock()
			all.CompareAndDelete(s, id)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.m = m
	return h
}

func (h *holder) slots() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []int
	for s := range h.running {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func openLog(t *testing.T) *logstream.Log {
	l, err := logstream.Open(context.Background(), logstream.Config{DataDir: t.TempDir(), LeaseTTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHoldersShareAndTakeOver(t *testing.T) {
	l := openLog(t)
	var all sync.Map
	a := newHolder(t, l, "a", &all)
	b := newHolder(t, l, "b", &all)
	actx, stopA := context.WithCancel(context.Background())
	go a.m.Run(actx)
	eventually(t, 5*time.Second, "a holds all 32", func() bool { return len(a.slots()) == 32 })

	bctx, stopB := context.WithCancel(context.Background())
	defer stopB()
	bDone := make(chan struct{})
	go func() { b.m.Run(bctx); close(bDone) }()
	eventually(t, 10*time.Second, "a and b hold 16 each", func() bool {
		return len(a.slots()) == 16 && len(b.slots()) == 16
	})
	union := append(a.slots(), b.slots()...)
	slices.Sort(union)
	if fmt.Sprint(union) != fmt.Sprint(seq(32)) {
		t.Errorf("shares %v + %v do not cover every partition once", a.slots(), b.slots())
	}

	// A graceful stop hands everything over at once.
	start := time.Now()
	stopA()
	eventually(t, 3*time.Second, "b takes a's share after a stops", func() bool { return len(b.slots()) == 32 })
	t.Logf("takeover after a graceful stop: %v", time.Since(start))
	if len(a.slots()) != 0 {
		t.Errorf("a still runs %v after stopping", a.slots())
	}
}

func TestTakeOverFromACrashedHolder(t *testing.T) {
	l := openLog(t)
	var all sync.Map
	a := newHolder(t, l, "a", &all)
	b := newHolder(t, l, "b", &all)
	ctx := context.Background()
	// a runs two rounds and then dies without releasing anything.
	if err := a.m.round(ctx); err != nil {
		t.Fatal(err)
	}
	if len(a.slots()) != 32 {
		t.Fatalf("a holds %d", len(a.slots()))
	}
	// Its work stops with it; the leases stay until they expire.
	for _, s := range a.slots() {
		all.Delete(s)
	}
	bctx, stopB := context.WithCancel(ctx)
	defer stopB()
	start := time.Now()
	go b.m.Run(bctx)
	eventually(t, 4*ttl, "b takes over a crashed holder's partitions", func() bool { return len(b.slots()) == 32 })
	took := time.Since(start)
	t.Logf("takeover after a crash: %v (lease TTL %v)", took, ttl)
	if took < ttl/2 {
		t.Errorf("b took the partitions after %v, before a's leases could expire", took)
	}
}

func TestLostLeaseStopsTheWork(t *testing.T) {
	l := openLog(t)
	var all sync.Map
	a := newHolder(t, l, "a", &all)
	ctx := context.Background()
	a.m.round(ctx)
	// Someone else's lease replaces a's on partition 3 (as after a pause).
	if err := l.Leases().Delete(ctx, slotKey(3)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Leases().Create(ctx, slotKey(3), []byte("z")); err != nil {
		t.Fatal(err)
	}
	a.m.renew(ctx)
	if slices.Contains(a.slots(), 3) || slices.Contains(a.m.Owned(), 3) {
		t.Error("a keeps running a partition whose lease it lost")
	}
}

func TestExpiredLeaseNobodyTookIsKept(t *testing.T) {
	l := openLog(t)
	var all sync.Map
	a := newHolder(t, l, "a", &all)
	ctx := context.Background()
	if err := a.m.round(ctx); err != nil {
		t.Fatal(err)
	}
	// Partition 3's lease is gone (as when it expires during an outage
	// that kept a from renewing it), and nobody else took it.
	if err := l.Leases().Purge(ctx, slotKey(3)); err != nil {
		t.Fatal(err)
	}
	a.m.renew(ctx)
	if !slices.Contains(a.slots(), 3) || !slices.Contains(a.m.Owned(), 3) {
		t.Fatal("a stopped a partition whose lease nobody else holds")
	}
	e, err := l.Leases().Get(ctx, slotKey(3))
	if err != nil || string(e.Value()) != "a" {
		t.Fatalf("partition 3's lease after renewing: %v, %v", e, err)
	}
	// And the lease is a's again in the store: the next renewal holds.
	a.m.renew(ctx)
	if !slices.Contains(a.m.Owned(), 3) {
		t.Error("a lost partition 3 on the renewal after taking it back")
	}
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}
