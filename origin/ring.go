package origin

import (
	"strconv"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/danmaku/danmaku/bucketer"
	"github.com/danmaku/danmaku/internal/keys"
	"github.com/danmaku/danmaku/publisher"
)

// item is one object held in memory, with the header values it is served
// with computed once. There are hundreds of thousands of items in a full
// ring, so an item is as few allocations as it can be: itself, its body and
// its Content-Length digits.
type item struct {
	second int64
	gz     []byte
	answer
	// plain is the decompressed body, made on first request from a client
	// that does not take gzip.
	plain atomic.Pointer[plainBody]
}

type plainBody struct {
	body []byte
	answer
}

// answer holds a representation's ETag and Content-Length header values,
// shared by every answer so that serving allocates nothing.
type answer struct {
	hv [2]string // ETag, Content-Length
}

func (a *answer) etag() string { return a.hv[0] }

// etagHV and lengthHV are net/http header values; their capacity is 1, so
// an append to one copies instead of writing into the item.
func (a *answer) etagHV() []string   { return a.hv[0:1:1] }
func (a *answer) lengthHV() []string { return a.hv[1:2:2] }

// etagB is the ETag for fasthttp, which copies header values it is given.
func (a *answer) etagB() []byte { return unsafe.Slice(unsafe.StringData(a.hv[0]), len(a.hv[0])) }

func newAnswer(etag string, length int) answer {
	return answer{hv: [2]string{etag, strconv.Itoa(length)}}
}

func newItem(second int64, gz []byte, etag string) *item {
	if etag == "" {
		etag = bucketer.ETag(gz)
	}
	return &item{second: second, gz: gz, answer: newAnswer(etag, len(gz))}
}

// ringSlot holds one object, replaced whole.
type ringSlot = atomic.Pointer[item]

// roomRing holds a room's newest buckets and segments. Slots are written
// under Origin.mu (or, for store fills, with the same bytes) and read
// without locks.
type roomRing struct {
	buckets  []ringSlot // slot second % len
	segments []ringSlot // slot (start/10) % len
	// coverFrom is the first second for which this ring saw every
	// announcement: from there on, within the ring's span, a sealed second
	// missing here has no messages. An admin drop moves it forward.
	coverFrom atomic.Int64
	newest    atomic.Int64 // newest second of any object announced
}

// each calls fn for every occupied slot of kind.
func (r *roomRing) each(kind keys.Kind, fn func(slot *ringSlot, it *item)) {
	slots := r.buckets
	if kind == keys.Segment {
		slots = r.segments
	}
	for i := range slots {
		if it := slots[i].Load(); it != nil {
			fn(&slots[i], it)
		}
	}
}

func (o *Origin) newRoomRing(cover int64) *roomRing {
	r := &roomRing{
		buckets:  make([]ringSlot, o.cfg.RingSeconds),
		segments: make([]ringSlot, o.segmentSlots),
	}
	r.coverFrom.Store(cover)
	return r
}

func (r *roomRing) slot(kind keys.Kind, second int64) *ringSlot {
	if kind == keys.Segment {
		return &r.segments[int((second/keys.SegmentSeconds)%int64(len(r.segments)))]
	}
	return &r.buckets[int(second%int64(len(r.buckets)))]
}

func (r *roomRing) get(kind keys.Kind, second int64) *item {
	if it := r.slot(kind, second).Load(); it != nil && it.second == second {
		return it
	}
	return nil
}

// put stores it unless the slot already holds a newer second.
func (r *roomRing) put(kind keys.Kind, it *item) {
	s := r.slot(kind, it.second)
	if old := s.Load(); old != nil && old.second > it.second {
		return
	}
	s.Store(it)
	if last := it.second + kind.Seconds() - 1; last > r.newest.Load() {
		r.newest.Store(last)
	}
}

// mark is a partition's watermark, replaced whole on every change.
type mark struct {
	sealed, published int64
	coverFrom         int64 // first second announced after this origin began listening
}

// state is what Announce maintains; readers see it through atomics.
type state struct {
	// mu serialises Announce and room creation and eviction.
	mu        sync.Mutex
	rooms     sync.Map // string -> *roomRing
	roomCount atomic.Int64
	marks     [keys.Partitions]atomic.Pointer[mark]
	// refusedThrough is the newest second of an object the ring refused
	// because it was full: absence proves nothing up to there.
	refusedThrough atomic.Int64
	// sealedCh is closed and replaced whenever a watermark moves, waking
	// held requests.
	sealedCh  atomic.Pointer[chan struct{}]
	minSealed int64 // under mu: the lowest sealed over all partitions
}

// Announce takes sealed objects into the ring and then applies the
// watermark. It implements publisher.Announcer.
func (o *Origin) Announce(objs []bucketer.Object, wm publisher.Watermark) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := range objs {
		obj := &objs[i]
		r := o.ringFor(obj.Room, obj.Second+obj.Kind.Seconds()-1)
		if r == nil {
			continue
		}
		r.put(obj.Kind, newItem(obj.Second, obj.Body, obj.ETag))
	}
	moved := false
	apply := func(p int) {
		old := o.marks[p].Load()
		m := &mark{sealed: wm.Sealed, published: wm.Published, coverFrom: wm.Sealed + 1}
		if old != nil {
			m.sealed = max(old.sealed, wm.Sealed)
			m.published = max(old.published, wm.Published)
			m.coverFrom = old.coverFrom
			if *m == *old {
				return
			}
		}
		moved = true
		o.marks[p].Store(m)
	}
	if wm.Partitions == nil {
		for p := range o.marks {
			apply(p)
		}
	} else {
		for _, p := range wm.Partitions {
			if p >= 0 && p < keys.Partitions {
				apply(p)
			}
		}
	}
	if moved {
		o.metrics.sealed.Set(float64(wm.Sealed))
		o.wake()
		o.evictIdle()
	}
}

func (o *Origin) wake() {
	ch := make(chan struct{})
	old := o.sealedCh.Swap(&ch)
	if old != nil {
		close(*old)
	}
}

// ringFor returns room's ring, creating it if there is room for it; nil
// means the ring is full and last is recorded as not covered. Call with mu.
func (o *Origin) ringFor(room string, last int64) *roomRing {
	if v, ok := o.rooms.Load(room); ok {
		return v.(*roomRing)
	}
	if o.roomCount.Load() >= int64(o.cfg.MaxRooms) {
		o.evictIdle()
		if o.roomCount.Load() >= int64(o.cfg.MaxRooms) {
			if last > o.refusedThrough.Load() {
				o.refusedThrough.Store(last)
			}
			o.metrics.refused.Inc()
			return nil
		}
	}
	r := o.newRoomRing(o.coverage(room))
	o.rooms.Store(room, r)
	o.metrics.rooms.Set(float64(o.roomCount.Add(1)))
	return r
}

// coverage is the first second from which a room without a ring is known to
// have had no announced object.
func (o *Origin) coverage(room string) int64 {
	c := o.refusedThrough.Load() + 1
	if m := o.marks[keys.Partition(room)].Load(); m != nil {
		c = max(c, m.coverFrom)
	}
	return c
}

// evictIdle drops rooms whose newest object has left the ring's span: they
// hold nothing a reader could be served, and dropping them loses no
// coverage. Call with mu.
func (o *Origin) evictIdle() {
	low := int64(-1)
	for p := range o.marks {
		m := o.marks[p].Load()
		if m == nil {
			return
		}
		if low < 0 || m.sealed < low {
			low = m.sealed
		}
	}
	// Scan at most once per ring span, or when full.
	if low-o.minSealed < int64(o.cfg.RingSeconds) && o.roomCount.Load() < int64(o.cfg.MaxRooms) {
		return
	}
	o.minSealed = low
	horizon := low - int64(o.cfg.RingSeconds)
	o.rooms.Range(func(k, v any) bool {
		if v.(*roomRing).newest.Load() <= horizon {
			o.rooms.Delete(k)
			o.roomCount.Add(-1)
		}
		return true
	})
	o.metrics.rooms.Set(float64(o.roomCount.Load()))
}

// Forget stops the ring vouching for absences up to through in these
// partitions (nil: all): reads of those seconds that miss the ring go to the
// store. The announcement receiver calls it when it missed a message.
func (o *Origin) Forget(partitions []int, through int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	forget := func(p int) {
		old := o.marks[p].Load()
		if old == nil || old.coverFrom > through {
			return // no watermark yet: the first one sets coverage
		}
		m := *old
		m.coverFrom = through + 1
		o.marks[p].Store(&m)
	}
	if partitions == nil {
		for p := range o.marks {
			forget(p)
		}
		return
	}
	for _, p := range partitions {
		if p >= 0 && p < keys.Partitions {
			forget(p)
		}
	}
}
