package ingest

import (
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateConfig configures per-poster rate limits. Rates are messages per
// second, sustained; bursts are how many messages may come at once. A
// poster is a verified user id, or for anonymous posts the client address
// (an IPv6 /64), and is limited per room.
type RateConfig struct {
	// UserRate and UserBurst limit each verified user in each room; a
	// UserRate of 0 sets no limit.
	UserRate  float64
	UserBurst int
	// AnonRate and AnonBurst limit each anonymous client address in each
	// room; an AnonRate of 0 sets no limit. Many people can share one
	// address (mobile carriers, offices), so set them higher.
	AnonRate  float64
	AnonBurst int
	// MaxKeys bounds the posters tracked at once; if 0, 100000. Past it the
	// least useful entries are forgotten (see RateLimiter).
	MaxKeys int
}

// RateLimiter keeps one token bucket per poster and room. Memory is bounded
// by MaxKeys: a bucket that has refilled completely is the same as a new
// one, so such buckets are forgotten first; if the table is still full,
// arbitrary entries go, which at worst gives their posters a fresh burst.
type RateLimiter struct {
	cfg    RateConfig
	seed   maphash.Seed
	perMax int
	shards [rateShards]rateShard
}

const rateShards = 64

type rateShard struct {
	mu sync.Mutex // guards m
	m  map[string]*rate.Limiter
}

// NewRateLimiter checks cfg and returns a RateLimiter.
func NewRateLimiter(cfg RateConfig) (*RateLimiter, error) {
	if cfg.MaxKeys == 0 {
		cfg.MaxKeys = 100000
	}
	if cfg.UserRate < 0 || cfg.AnonRate < 0 || math.IsNaN(cfg.UserRate) || math.IsNaN(cfg.AnonRate) ||
		(cfg.UserRate > 0 && cfg.UserBurst < 1) || (cfg.AnonRate > 0 && cfg.AnonBurst < 1) || cfg.MaxKeys < 1 {
		return nil, fmt.Errorf("ingest: bad rate limits: user %v/s burst %d, anonymous %v/s burst %d, %d keys",
			cfg.UserRate, cfg.UserBurst, cfg.AnonRate, cfg.AnonBurst, cfg.MaxKeys)
	}
	l := &RateLimiter{cfg: cfg, seed: maphash.MakeSeed(), perMax: max(cfg.MaxKeys/rateShards, 1)}
	for i := range l.shards {
		l.shards[i].m = map[string]*rate.Limiter{}
	}
	return l, nil
}

// errOverBurst means a batch holds more messages than the burst allows:
// no wait would let it through.
var errOverBurst = errors.New("ingest: batch larger than the burst")

func (l *RateLimiter) limits(verified bool) (rate.Limit, int) {
	if verified {
		return rate.Limit(l.cfg.UserRate), l.cfg.UserBurst
	}
	return rate.Limit(l.cfg.AnonRate), l.cfg.AnonBurst
}

// limiter returns key's bucket, creating it (and making room) if needed.
func (l *RateLimiter) limiter(key string, verified bool, now time.Time) *rate.Limiter {
	sh := &l.shards[maphash.String(l.seed, key)%rateShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if lim := sh.m[key]; lim != nil {
		return lim
	}
	if len(sh.m) >= l.perMax {
		l.evict(sh, now)
	}
	r, b := l.limits(verified)
	lim := rate.NewLimiter(r, b)
	sh.m[key] = lim
	return lim
}

// evict makes room in a full shard: first every bucket that is full again
// (forgetting it loses nothing), then, if that freed less than an eighth,
// arbitrary ones. Called with sh.mu held; amortised O(1) per insert.
func (l *RateLimiter) evict(sh *rateShard, now time.Time) {
	for k, lim := range sh.m {
		if lim.TokensAt(now) >= float64(lim.Burst()) {
			delete(sh.m, k)
		}
	}
	for k := range sh.m {
		if len(sh.m) <= l.perMax-max(l.perMax/8, 1) {
			break
		}
		delete(sh.m, k)
	}
}

// Keys is how many posters are tracked.
func (l *RateLimiter) Keys() int {
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// Peek reports how long key must wait before it may post at all, without
// taking anything: 0 if a token is there. It lets a poster over the limit
// be refused before its body is read.
func (l *RateLimiter) Peek(key string, verified bool, now time.Time) time.Duration {
	if r, _ := l.limits(verified); r == 0 {
		return 0
	}
	lim := l.limiter(key, verified, now)
	tokens := lim.TokensAt(now)
	if tokens >= 1 {
		return 0
	}
	return time.Duration((1 - tokens) / float64(lim.Limit()) * float64(time.Second))
}

// Take takes n tokens from key's bucket. It returns 0 when they were there,
// the wait until they will be (taking nothing), or errOverBurst when n is
// more than the bucket holds.
func (l *RateLimiter) Take(key string, verified bool, n int, now time.Time) (time.Duration, error) {
	r, burst := l.limits(verified)
	if r == 0 {
		return 0, nil
	}
	if n > burst {
		return 0, errOverBurst
	}
	lim := l.limiter(key, verified, now)
	res := lim.ReserveN(now, n)
	if !res.OK() {
		return 0, errOverBurst
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d, nil
	}
	return 0, nil
}

// retryAfter is the Retry-After value of a wait: whole seconds, at least 1.
func retryAfter(d time.Duration) string {
	s := int64(math.Ceil(d.Seconds()))
	return fmt.Sprint(max(s, 1))
}
