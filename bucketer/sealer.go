package bucketer

import (
	"slices"
	"time"

	"github.com/danmaku/danmaku/internal/keys"
	"github.com/danmaku/danmaku/internal/logstream"
)

// SealerConfig configures a Sealer.
type SealerConfig struct {
	// Grace is how far past a second's end the log must be before the
	// second seals; if 0, defaults to 100ms.
	Grace time.Duration
	// Observer, if set, is told what the sealer does (for metrics).
	Observer Observer
	// OnSkip, if set, is told of log entries that could not be decoded.
	OnSkip func(e logstream.Entry, err error)
	// Cap bounds the messages a room's bucket keeps per second; the zero
	// value keeps all.
	Cap Cap
}

// Observer receives counts from a Sealer.
type Observer interface {
	Entry()
	Placed(messages int)
	Skipped()
	Sealed(o *Object)
}

// Sealer is the sealing state machine, with no I/O: fed the log in order,
// it returns the objects each entry seals. The writer runs one over the
// live log; backfill runs one over a stretch of it; both get the same bytes.
type Sealer struct {
	graceMS int64
	obs     Observer
	onSkip  func(logstream.Entry, error)
	cap     Cap
	sealed  int64 // every second ≤ sealed is sealed; -1 before the first entry
	highMS  int64 // newest log timestamp seen, unix ms
	rooms   map[string]*room
}

type room struct {
	entries []placed // in log order, sealed or not, until their segment is sealed
	// dropped counts, per sealed second, the messages the cap left out,
	// until the second's segment is sealed.
	dropped map[int64]int
}

type placed struct {
	second   int64
	priority bool // the poster's messages are kept above the cap
	entry
}

// NewSealer returns a Sealer that starts sealing at its first entry.
func NewSealer(cfg SealerConfig) *Sealer {
	s := &Sealer{graceMS: 100, obs: cfg.Observer, onSkip: cfg.OnSkip, cap: cfg.Cap, sealed: -1, rooms: map[string]*room{}}
	if cfg.Grace > 0 {
		s.graceMS = cfg.Grace.Milliseconds()
	}
	return s
}

// Resume makes every second ≤ sealed count as sealed, as after a restart.
func (s *Sealer) Resume(sealed int64) { s.sealed = sealed }

// Sealed is the newest sealed second, -1 before the first entry.
func (s *Sealer) Sealed() int64 { return s.sealed }

// Add applies one log entry: it places the entry's messages in the second
// of its log timestamp (or, if the log's clock stepped back past a sealed
// second, in the first open one) and seals every second the log has now
// moved past. It returns the objects sealed, the second the entry went to,
// and whether any second sealed.
func (s *Sealer) Add(e logstream.Entry) (objs []Object, second int64, sealed bool) {
	ms := e.Time.UnixMilli()
	second = floorDiv(ms, 1000)
	if s.sealed < 0 {
		s.sealed = second - 1
	}
	if second <= s.sealed {
		second = s.sealed + 1
	}
	if s.obs != nil {
		s.obs.Entry()
	}
	if e.Room != "" {
		s.place(e, second, ms)
	}
	s.highMS = max(s.highMS, ms)
	// The newest S with S+1+grace ≤ the high-water mark.
	through := floorDiv(s.highMS-s.graceMS, 1000) - 1
	if through <= s.sealed {
		return nil, second, false
	}
	return s.seal(through), second, true
}

func (s *Sealer) place(e logstream.Entry, second, ms int64) {
	post, err := logstream.DecodePost(e.Data)
	if err != nil {
		// Ingest validated it, so this is a foreign or damaged entry;
		// skipping it is the same decision on every rebuild.
		if s.obs != nil {
			s.obs.Skipped()
		}
		if s.onSkip != nil {
			s.onSkip(e, err)
		}
		return
	}
	offset := max(ms-second*1000, 0) // 0 when moved forward into an open second
	msgs := make([]text, len(post.Messages))
	for i, m := range post.Messages {
		msgs[i] = text{text: m.Text, color: m.Color & 0xFFFFFF, mode: Mode(m.Mode), index: i}
		if len(post.Messages) == 1 {
			msgs[i].index = -1
		}
		if msgs[i].mode > Bottom {
			msgs[i].mode = Scroll
		}
	}
	r := s.rooms[e.Room]
	if r == nil {
		r = &room{}
		s.rooms[e.Room] = r
	}
	r.entries = append(r.entries, placed{second: second, priority: post.Priority, entry: entry{
		seq: e.Seq, ms: int(offset), user: post.UserID, name: post.UserName,
		avatar: post.Avatar, badges: post.Badges, msgs: msgs,
	}})
	if s.obs != nil {
		s.obs.Placed(len(msgs))
	}
}

// seal seals every second in (s.sealed, through].
func (s *Sealer) seal(through int64) []Object {
	var objs []Object
	for name, r := range s.rooms {
		objs = s.sealRoom(objs, name, r, through)
		if len(r.entries) == 0 {
			delete(s.rooms, name)
		}
	}
	if s.obs != nil {
		for i := range objs {
			s.obs.Sealed(&objs[i])
		}
	}
	s.sealed = through
	return objs
}

// sealRoom appends the objects of room name sealed by moving to through:
// one bucket per newly sealed second with messages, one segment per newly
// complete window with messages.
func (s *Sealer) sealRoom(objs []Object, name string, r *room, through int64) []Object {
	// Entries are in log order, which is second order except across clock
	// steps, so gather per second.
	var seconds, windows []int64
	for _, p := range r.entries {
		if p.second > s.sealed && p.second <= through {
			seconds = appendUnique(seconds, p.second)
		}
		if w := keys.SegmentStart(p.second); w+keys.SegmentSeconds-1 <= through {
			windows = appendUnique(windows, w)
		}
	}
	capped := false
	for _, sec := range seconds {
		var ps []*placed
		for i := range r.entries {
			if r.entries[i].second == sec {
				ps = append(ps, &r.entries[i])
			}
		}
		// The cap is applied once, as the second seals; its segment is
		// built later from the same trimmed entries.
		res := s.cap.apply(name, ps)
		if res.dropped > 0 {
			if r.dropped == nil {
				r.dropped = map[int64]int{}
			}
			r.dropped[sec] = res.dropped
		}
		var es []entry
		n := 0
		for _, p := range ps {
			if len(p.msgs) > 0 {
				es = append(es, p.entry)
				n += len(p.msgs)
			} else {
				capped = true
			}
		}
		o := NewObject(keys.Bucket, name, sec, encode(name, sec, 1, es, res.dropped), n)
		o.Dropped, o.Folded = res.dropped, res.folded
		objs = append(objs, o)
	}
	if capped { // entries the cap emptied
		r.entries = slices.DeleteFunc(r.entries, func(p placed) bool { return len(p.msgs) == 0 })
	}
	for _, w := range windows {
		var es []entry
		n, dropped := 0, 0
		for _, p := range r.entries {
			if keys.SegmentStart(p.second) == w {
				e := p.entry
				e.ms += int(p.second-w) * 1000
				es = append(es, e)
				n += len(p.msgs)
			}
		}
		for sec := w; sec < w+keys.SegmentSeconds; sec++ {
			dropped += r.dropped[sec]
			delete(r.dropped, sec)
		}
		objs = append(objs, NewObject(keys.Segment, name, w, encode(name, w, keys.SegmentSeconds, es, dropped), n))
	}
	keep := r.entries[:0]
	for _, p := range r.entries {
		if keys.SegmentStart(p.second)+keys.SegmentSeconds-1 > through {
			keep = append(keep, p)
		}
	}
	clear(r.entries[len(keep):])
	r.entries = keep
	return objs
}

func appendUnique(s []int64, v int64) []int64 {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}
