// Package lease divides a fixed number of slots (the log's partitions) among
// the processes that want them, through leases in a JetStream key-value
// bucket whose entries expire unless renewed. Each holder takes its fair
// share (slots / holders, rounded up), preferring slots in an order hashed
// from its id so holders rarely contend for the same ones, gives up extras
// when more holders appear, and takes over a dead holder's slots as soon as
// its leases expire.
//
// Leases make ownership efficient, not safe: for a moment after a pause two
// holders can both believe they own a slot. Writers tolerate that because
// sealing is a function of the log and the store is create-only.
package lease

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Config configures a Manager.
type Config struct {
	// KV holds the leases; its entries must expire after TTL.
	KV jetstream.KeyValue
	// ID names this holder; unique per process.
	ID string
	// Slots is how many slots there are.
	Slots int
	// TTL is the bucket's entry lifetime; leases are renewed every TTL/4.
	TTL time.Duration
	// Acquire is called when this holder wins a slot. It must not block:
	// start the slot's work and return.
	Acquire func(slot int)
	// Release is called when a slot is lost or given up, and must return
	// only once the slot's work has stopped.
	Release func(slot int)
	// Logger; if nil, slog.Default().
	Logger *slog.Logger
}

// Manager holds this process's share of the slots.
type Manager struct {
	cfg Config
	log *slog.Logger

	// mu guards held and settled.
	mu      sync.Mutex
	held    map[int]*holding
	settled bool
}

type holding struct {
	rev       uint64
	releasing bool          // giving it up: renewed until the work stopped
	released  chan struct{} // closed when Release returned
}

// New checks cfg and returns a Manager.
func New(cfg Config) (*Manager, error) {
	if cfg.KV == nil || cfg.ID == "" || cfg.Slots < 1 || cfg.TTL <= 0 || cfg.Acquire == nil || cfg.Release == nil {
		return nil, errors.New("lease: KV, ID, Slots, TTL, Acquire and Release are required")
	}
	if strings.ContainsAny(cfg.ID, ".*> ") {
		return nil, fmt.Errorf("lease: holder id %q may not contain '.', '*', '>' or spaces", cfg.ID)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Manager{cfg: cfg, log: cfg.Logger, held: map[int]*holding{}}, nil
}

func slotKey(s int) string { return "slot." + strconv.Itoa(s) }

// Owned returns the slots held now, sorted.
func (m *Manager) Owned() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []int
	for s, h := range m.held {
		if !h.releasing {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// Settled reports whether the manager has run a full round, so Owned is
// its share and not just a start.
func (m *Manager) Settled() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.settled
}

// Run holds leases until ctx ends, then releases every slot (waiting for
// its work to stop) and deletes the leases so others take over at once.
func (m *Manager) Run(ctx context.Context) error {
	tick := time.NewTicker(m.cfg.TTL / 4)
	defer tick.Stop()
	defer m.releaseAll()
	for {
		if err := m.round(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("lease round failed; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func (m *Manager) round(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, m.cfg.TTL/2)
	defer cancel()
	if _, err := m.cfg.KV.Put(rctx, "holder."+m.cfg.ID, []byte(time.Now().UTC().Format(time.RFC3339Nano))); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	m.renew(rctx)
	holders, err := m.holders(rctx)
	if err != nil {
		return err
	}
	target := (m.cfg.Slots + holders - 1) / holders
	rank := m.ranked()

	m.mu.Lock()
	owned := 0
	for _, h := range m.held {
		if !h.releasing {
			owned++
		}
	}
	m.mu.Unlock()

	// Give up the extras, least preferred first.
	for i := len(rank) - 1; i >= 0 && owned > target; i-- {
		s := rank[i]
		m.mu.Lock()
		h := m.held[s]
		if h != nil && !h.releasing {
			h.releasing = true
			owned--
			m.mu.Unlock()
			m.log.Info("giving up a partition to balance writers", "partition", s, "writers", holders)
			go m.release(s, h)
			continue
		}
		m.mu.Unlock()
	}
	// Take free slots, most preferred first, asking for as many at once as
	// are wanted: a takeover of a dead holder's share is one round trip,
	// not one per slot, so it fits in the round however slow the cluster.
	m.mu.Lock()
	free := make([]int, 0, len(rank))
	for _, s := range rank {
		if _, have := m.held[s]; !have {
			free = append(free, s)
		}
	}
	m.mu.Unlock()
	var failed error
	for len(free) > 0 && owned < target {
		batch := free[:min(target-owned, len(free))]
		free = free[len(batch):]
		revs := make([]uint64, len(batch))
		errs := make([]error, len(batch))
		var wg sync.WaitGroup
		for i, s := range batch {
			wg.Go(func() { revs[i], errs[i] = m.cfg.KV.Create(rctx, slotKey(s), []byte(m.cfg.ID)) })
		}
		wg.Wait()
		for i, s := range batch {
			switch err := errs[i]; {
			case err == nil:
				m.mu.Lock()
				m.held[s] = &holding{rev: revs[i]}
				m.mu.Unlock()
				owned++
				m.log.Info("acquired a partition", "partition", s)
				m.cfg.Acquire(s)
			case errors.Is(err, jetstream.ErrKeyExists):
			case failed == nil:
				failed = fmt.Errorf("acquire partition %d: %w", s, err)
			}
		}
	}
	if failed != nil {
		return failed
	}
	m.mu.Lock()
	m.settled = true
	m.mu.Unlock()
	return nil
}

// renew refreshes every lease held, all at once (a round must fit in TTL/2
// however many slots it holds); a lease that cannot be renewed is lost
// (another holder may own the slot now) and its work is stopped.
func (m *Manager) renew(ctx context.Context) {
	type renewal struct {
		slot int
		h    *holding
		rev  uint64
		err  error
	}
	m.mu.Lock()
	rs := make([]renewal, 0, len(m.held))
	for s, h := range m.held {
		rs = append(rs, renewal{slot: s, h: h, rev: h.rev})
	}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for i := range rs {
		r := &rs[i]
		wg.Go(func() { r.rev, r.err = m.cfg.KV.Update(ctx, slotKey(r.slot), []byte(m.cfg.ID), r.rev) })
	}
	wg.Wait()
	for _, r := range rs {
		if r.err == nil {
			m.mu.Lock()
			r.h.rev = r.rev
			m.mu.Unlock()
			continue
		}
		if ctx.Err() != nil {
			continue
		}
		var apiErr *jetstream.APIError
		if errors.As(r.err, &apiErr) || errors.Is(r.err, jetstream.ErrKeyNotFound) {
			// A lease that expired while the cluster could not take
			// renewals (a leader election outlasting the TTL) and that
			// nobody took meanwhile is ours again: keep the work running
			// rather than stop and restart it from its checkpoint. Not a
			// lease being given up: its release deleted it.
			m.mu.Lock()
			current := m.held[r.slot] == r.h && !r.h.releasing
			m.mu.Unlock()
			if current {
				if rev, err := m.cfg.KV.Create(ctx, slotKey(r.slot), []byte(m.cfg.ID)); err == nil {
					m.mu.Lock()
					r.h.rev = rev
					m.mu.Unlock()
					m.log.Info("a partition lease expired and nobody took it; holding it again", "partition", r.slot)
					continue
				}
			}
			m.log.Warn("lost a partition lease; stopping its writer", "partition", r.slot, "err", r.err)
			m.mu.Lock()
			if m.held[r.slot] == r.h {
				delete(m.held, r.slot)
			}
			releasing := r.h.releasing
			m.mu.Unlock()
			if !releasing {
				m.cfg.Release(r.slot)
			}
		}
	}
}

// release stops a slot's work, then deletes its lease (renewed meanwhile).
func (m *Manager) release(s int, h *holding) {
	m.cfg.Release(s)
	m.mu.Lock()
	rev := h.rev
	if m.held[s] == h {
		delete(m.held, s)
	}
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.TTL)
	defer cancel()
	if err := m.cfg.KV.Delete(ctx, slotKey(s), jetstream.LastRevision(rev)); err != nil {
		m.log.Debug("deleting a released lease", "partition", s, "err", err)
	}
}

func (m *Manager) releaseAll() {
	m.mu.Lock()
	var wg sync.WaitGroup
	for s, h := range m.held {
		if h.releasing {
			continue
		}
		h.releasing = true
		wg.Add(1)
		go func() { defer wg.Done(); m.release(s, h) }()
	}
	m.mu.Unlock()
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.TTL)
	defer cancel()
	m.cfg.KV.Delete(ctx, "holder."+m.cfg.ID)
}

// holders counts the live holders (this one included).
func (m *Manager) holders(ctx context.Context) (int, error) {
	kl, err := m.cfg.KV.ListKeysFiltered(ctx, "holder.*")
	if err != nil {
		return 0, fmt.Errorf("list holders: %w", err)
	}
	seen := map[string]bool{m.cfg.ID: true}
	for k := range kl.Keys() {
		seen[strings.TrimPrefix(k, "holder.")] = true
	}
	return len(seen), nil
}

// ranked orders the slots by a hash of this holder's id and the slot.
func (m *Manager) ranked() []int {
	type w struct {
		slot int
		h    uint64
	}
	ws := make([]w, m.cfg.Slots)
	for s := range ws {
		f := fnv.New64a()
		f.Write([]byte(m.cfg.ID))
		f.Write([]byte{':'})
		f.Write([]byte(strconv.Itoa(s)))
		ws[s] = w{s, f.Sum64()}
	}
	slices.SortFunc(ws, func(a, b w) int {
		switch {
		case a.h > b.h:
			return -1
		case a.h < b.h:
			return 1
		}
		return a.slot - b.slot
	})
	out := make([]int, len(ws))
	for i, x := range ws {
		out[i] = x.slot
	}
	return out
}
