package origin

import (
	"net/netip"
	"sync"

	"github.com/danmaku/danmaku/internal/httpx"
)

// clientHolds counts the requests each client has held at once, so that
// one client (an address, or an IPv6 /64) cannot take every held slot with
// a flood of requests for the next seconds. Entries go when their count
// does, so memory follows the held requests, which MaxHeld bounds.
type clientHolds struct {
	max    int32
	shards [32]holdShard
}

type holdShard struct {
	mu sync.Mutex // guards n
	n  map[netip.Addr]int32
}

func newClientHolds(max int) *clientHolds {
	c := &clientHolds{max: int32(max)}
	for i := range c.shards {
		c.shards[i].n = map[netip.Addr]int32{}
	}
	return c
}

func (c *clientHolds) shard(a netip.Addr) *holdShard {
	b := a.As16()
	h := uint32(2166136261)
	for _, x := range b {
		h = (h ^ uint32(x)) * 16777619
	}
	return &c.shards[h%uint32(len(c.shards))]
}

// acquire takes a held slot for client; it returns the key to give back to
// release, and false when the client holds its maximum already.
func (c *clientHolds) acquire(client netip.Addr) (netip.Addr, bool) {
	a := httpx.ClientKey(client)
	sh := c.shard(a)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.n[a] >= c.max {
		return a, false
	}
	sh.n[a]++
	return a, true
}

func (c *clientHolds) release(a netip.Addr) {
	sh := c.shard(a)
	sh.mu.Lock()
	if sh.n[a] <= 1 {
		delete(sh.n, a)
	} else {
		sh.n[a]--
	}
	sh.mu.Unlock()
}
