package client

import (
	"time"

	"github.com/danmaku/danmaku/internal/keys"
)

// stepKind is what the client does next.
type stepKind int

const (
	stepBucket  stepKind = iota // GET the bucket of step.second
	stepSegment                 // GET the segment starting at step.second
	stepHead                    // GET head: catching up needs a fresh sealed second
	stepSkip                    // give up on [step.second, step.to): older than the catch-up cap
)

type step struct {
	kind    stepKind
	second  int64
	to      int64 // stepSkip: the first second still read
	catchUp bool  // stepBucket: a sealed second read while catching up
}

// cursor is what plan decides from.
type cursor struct {
	next     int64 // first second not read yet
	nowMS    int64 // the server's clock as estimated, unix ms
	sealed   int64 // newest second known sealed
	headAge  time.Duration
	noSegIn  int64 // a segment start the origin refused; read that window by buckets
	catchUp  int64 // seconds behind the server clock that start a catch-up
	maxBack  int64 // how far behind the server clock a catch-up reaches
	freshFor time.Duration
}

// plan decides the next request. Close to the server's clock the client
// reads one bucket per second (the origin holds each until it seals). Far
// behind it catches up: it refreshes head to learn the newest sealed
// second, skips what is older than the cap, reads whole sealed 10-second
// windows as segments and the rest as single buckets.
func plan(c cursor) step {
	now := floorDiv(c.nowMS, 1000)
	if now-c.next <= c.catchUp {
		return step{kind: stepBucket, second: c.next}
	}
	if c.headAge > c.freshFor {
		return step{kind: stepHead}
	}
	if floor := now - c.maxBack; c.next < floor {
		return step{kind: stepSkip, second: c.next, to: floor}
	}
	w := keys.SegmentStart(c.next)
	last := w + keys.SegmentSeconds - 1
	// A segment costs one request for up to ten seconds; a single needed
	// second is cheaper as its bucket.
	if last <= c.sealed && last-c.next >= 1 && w != c.noSegIn {
		return step{kind: stepSegment, second: w}
	}
	return step{kind: stepBucket, second: c.next, catchUp: true}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// backoff is the wait before retry attempt (0 for the first retry): full
// jitter, a uniform draw from [0, min(max, min·2^attempt)). r is in [0, 1).
func backoff(attempt int, lo, hi time.Duration, r float64) time.Duration {
	ceil := lo
	for i := 0; i < attempt && ceil < hi; i++ {
		ceil *= 2
	}
	ceil = min(ceil, hi)
	return time.Duration(r * float64(ceil))
}

// dedup remembers the last n message ids.
type dedup struct {
	seen  map[string]struct{}
	order []string // ring of remembered ids, oldest at pos
	pos   int
}

func newDedup(n int) *dedup {
	return &dedup{seen: make(map[string]struct{}, n), order: make([]string, 0, n)}
}

// add remembers id and reports whether it is new.
func (d *dedup) add(id string) bool {
	if _, ok := d.seen[id]; ok {
		return false
	}
	if len(d.order) < cap(d.order) {
		d.order = append(d.order, id)
	} else {
		delete(d.seen, d.order[d.pos])
		d.order[d.pos] = id
		d.pos = (d.pos + 1) % len(d.order)
	}
	d.seen[id] = struct{}{}
	return true
}
