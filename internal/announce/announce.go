// Package announce carries sealed objects and watermarks from writers to
// origins over NATS, so that any origin can answer any room from its ring.
//
// Each writer process publishes on danmaku.sealed.<source> (a partition
// number, or "all"), with a sequence number per subject. NATS core delivery
// is at most once, so a receiver that sees a sequence jump — a dropped
// message, a reconnect, a slow consumer — tells its origin to stop vouching
// for the absence of objects in those partitions up to now (Forget); the
// origin then asks the store, which is always right, instead of answering
// an empty second that might not be.
package announce

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/danmaku/danmaku/bucketer"
	"github.com/danmaku/danmaku/internal/keys"
	"github.com/danmaku/danmaku/publisher"
)

// SubjectPrefix is where announcements go.
const SubjectPrefix = "danmaku.sealed."

// Sender publishes announcements; it is a publisher.Announcer.
type Sender struct {
	nc       *nats.Conn
	instance string
	log      *slog.Logger
	max      int // largest payload to send in one message

	// mu guards seq and orders each subject's messages.
	mu  sync.Mutex
	seq map[string]uint64
}

var _ publisher.Announcer = (*Sender)(nil)

// NewSender returns a Sender on nc with a fresh instance id.
func NewSender(nc *nats.Conn, log *slog.Logger) *Sender {
	var b [8]byte
	rand.Read(b[:])
	if log == nil {
		log = slog.Default()
	}
	max := int(nc.MaxPayload())
	if max <= 0 {
		max = 1 << 20
	}
	return &Sender{nc: nc, instance: hex.EncodeToString(b[:]), log: log, max: max, seq: map[string]uint64{}}
}

func source(partitions []int) string {
	if partitions == nil {
		return "all"
	}
	parts := make([]string, len(partitions))
	for i, p := range partitions {
		parts[i] = strconv.Itoa(p)
	}
	return strings.Join(parts, "_")
}

// Announce publishes objs and then wm. Objects that do not fit one message
// go ahead in messages of their own, which carry no watermark.
func (s *Sender) Announce(objs []bucketer.Object, wm publisher.Watermark) {
	subject := SubjectPrefix + source(wm.Partitions)
	s.mu.Lock()
	defer s.mu.Unlock()
	send := func(m *Message) {
		s.seq[subject]++
		m.Instance, m.Seq = s.instance, s.seq[subject]
		data := m.Encode()
		if err := s.nc.Publish(subject, data); err != nil {
			// The receivers see the gap and fall back to the store.
			s.log.Warn("announcement not sent", "subject", subject, "err", err)
		}
	}
	var chunk []bucketer.Object
	size := 0
	for _, o := range objs {
		n := len(o.Body) + len(o.Room) + len(o.ETag) + 32
		if len(chunk) > 0 && size+n > s.max-1024 {
			send(&Message{Partitions: wm.Partitions, Objects: chunk, ObjectsOnly: true})
			chunk, size = nil, 0
		}
		chunk = append(chunk, o)
		size += n
	}
	send(&Message{Partitions: wm.Partitions, Objects: chunk, Sealed: wm.Sealed, Published: wm.Published})
}

// Message is one announcement on the wire.
type Message struct {
	Instance          string // the sending process
	Seq               uint64 // per instance and subject, from 1
	Partitions        []int  // nil: every partition
	ObjectsOnly       bool   // no watermark: more objects follow
	Sealed, Published int64
	Objects           []bucketer.Object
}

// The encoding: "DMKA1", instance (u8 length + bytes), seq (u64), flags
// (u8: 1 = every partition, 2 = objects only), partition count (u8) and
// partitions (u8 each), sealed and published (i64), object count (u32),
// then per object: kind (u8), second (i64), messages (u32), and room, etag,
// body (u32 length + bytes each). Integers are big-endian.
const magic = "DMKA1"

// Encode writes m in the wire form.
func (m *Message) Encode() []byte {
	n := len(magic) + 1 + len(m.Instance) + 8 + 2 + len(m.Partitions) + 16 + 4
	for _, o := range m.Objects {
		n += 13 + 12 + len(o.Room) + len(o.ETag) + len(o.Body)
	}
	b := make([]byte, 0, n)
	b = append(b, magic...)
	b = append(b, byte(len(m.Instance)))
	b = append(b, m.Instance...)
	b = binary.BigEndian.AppendUint64(b, m.Seq)
	var flags byte
	if m.Partitions == nil {
		flags |= 1
	}
	if m.ObjectsOnly {
		flags |= 2
	}
	b = append(b, flags, byte(len(m.Partitions)))
	for _, p := range m.Partitions {
		b = append(b, byte(p))
	}
	b = binary.BigEndian.AppendUint64(b, uint64(m.Sealed))
	b = binary.BigEndian.AppendUint64(b, uint64(m.Published))
	b = binary.BigEndian.AppendUint32(b, uint32(len(m.Objects)))
	for _, o := range m.Objects {
		b = append(b, byte(o.Kind))
		b = binary.BigEndian.AppendUint64(b, uint64(o.Second))
		b = binary.BigEndian.AppendUint32(b, uint32(o.Messages))
		for _, f := range []string{o.Room, o.ETag} {
			b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
			b = append(b, f...)
		}
		b = binary.BigEndian.AppendUint32(b, uint32(len(o.Body)))
		b = append(b, o.Body...)
	}
	return b
}

// ErrMalformed means a message is not an announcement.
var ErrMalformed = errors.New("announce: malformed message")

// Decode reads a message written by Encode, checking every field: a
// receiver must never put something into the ring it cannot serve.
func Decode(b []byte) (*Message, error) {
	r := reader{b: b}
	if string(r.bytes(len(magic))) != magic {
		return nil, fmt.Errorf("%w: not an announcement", ErrMalformed)
	}
	m := &Message{}
	m.Instance = string(r.bytes(int(r.u8())))
	m.Seq = r.u64()
	flags := r.u8()
	np := int(r.u8())
	if flags > 3 || (flags&1 != 0 && np != 0) {
		r.fail()
	}
	if flags&1 == 0 {
		m.Partitions = make([]int, 0, np)
	}
	for range np {
		p := int(r.u8())
		if p >= keys.Partitions {
			r.fail()
		}
		if m.Partitions != nil {
			m.Partitions = append(m.Partitions, p)
		}
	}
	m.ObjectsOnly = flags&2 != 0
	m.Sealed = int64(r.u64())
	m.Published = int64(r.u64())
	count := r.u32()
	if r.err != nil || count > uint32(len(b)/25) {
		return nil, fmt.Errorf("%w: header", ErrMalformed)
	}
	for range count {
		o := bucketer.Object{Kind: keys.Kind(r.u8()), Second: int64(r.u64()), Messages: int(r.u32())}
		o.Room = string(r.bytes(int(r.u32())))
		o.ETag = string(r.bytes(int(r.u32())))
		o.Body = r.bytes(int(r.u32()))
		if r.err != nil {
			return nil, fmt.Errorf("%w: object", ErrMalformed)
		}
		if (o.Kind != keys.Bucket && o.Kind != keys.Segment) || !keys.ValidRoom(o.Room) || o.Second < 0 ||
			(o.Kind == keys.Segment && o.Second%keys.SegmentSeconds != 0) || len(o.Body) == 0 {
			return nil, fmt.Errorf("%w: object %q %d", ErrMalformed, o.Room, o.Second)
		}
		if o.ETag != bucketer.ETag(o.Body) {
			return nil, fmt.Errorf("%w: object %s/%d does not match its entity tag", ErrMalformed, o.Room, o.Second)
		}
		o.Key = keys.Key(o.Kind, o.Room, o.Second)
		m.Objects = append(m.Objects, o)
	}
	if r.off != len(b) {
		return nil, fmt.Errorf("%w: %d bytes left over", ErrMalformed, len(b)-r.off)
	}
	return m, nil
}

type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail() { r.err = ErrMalformed }

func (r *reader) bytes(n int) []byte {
	if r.err != nil || n < 0 || r.off+n > len(r.b) {
		r.fail()
		return nil
	}
	out := r.b[r.off : r.off+n]
	r.off += n
	return out
}

func (r *reader) u8() byte {
	b := r.bytes(1)
	if b == nil {
		return 0
	}
	return b[0]
}

func (r *reader) u32() uint32 {
	b := r.bytes(4)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

func (r *reader) u64() uint64 {
	b := r.bytes(8)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// Target is what a receiver feeds: the origin.
type Target interface {
	publisher.Announcer
	// Forget stops the origin inferring empty seconds up to through from
	// what its ring lacks in these partitions (nil: all).
	Forget(partitions []int, through int64)
}

// Receiver applies announcements from every writer to a Target.
type Receiver struct {
	sub    *nats.Subscription
	target Target
	log    *slog.Logger

	// mu guards last (the sequence last seen per instance and subject),
	// dirty (subjects with a message missed since their last watermark)
	// and gaps, and keeps messages in order.
	mu    sync.Mutex
	last  map[string]uint64
	dirty map[string]bool
	gaps  int
}

// Receive subscribes to every writer's announcements.
func Receive(nc *nats.Conn, target Target, log *slog.Logger) (*Receiver, error) {
	if log == nil {
		log = slog.Default()
	}
	r := &Receiver{target: target, log: log, last: map[string]uint64{}, dirty: map[string]bool{}}
	sub, err := nc.Subscribe(SubjectPrefix+">", r.handle)
	if err != nil {
		return nil, fmt.Errorf("announce: subscribe: %w", err)
	}
	// Bursts after a writer catches up can be large; a dropped message is
	// handled, but better not dropped.
	sub.SetPendingLimits(1<<16, 1<<30)
	r.sub = sub
	return r, nil
}

// Close unsubscribes.
func (r *Receiver) Close() { r.sub.Unsubscribe() }

// Gaps counts the times messages were missed.
func (r *Receiver) Gaps() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gaps
}

func (r *Receiver) handle(msg *nats.Msg) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, err := Decode(msg.Data)
	if err != nil {
		r.log.Error("ignoring a malformed announcement", "subject", msg.Subject, "err", err)
		r.dirty[msg.Subject] = true
		r.gaps++
		return
	}
	key := m.Instance + " " + msg.Subject
	prev, seen := r.last[key]
	r.last[key] = m.Seq
	if (seen && m.Seq != prev+1) || (!seen && m.Seq != 1) {
		// Something from this writer was missed, or it is heard from the
		// middle. The missed objects belong to seconds up to the next
		// watermark at most.
		r.dirty[msg.Subject] = true
		r.gaps++
		if seen {
			r.log.Info("announcements missed; reads of those seconds go to the store",
				"subject", msg.Subject, "after", prev, "got", m.Seq)
		}
	}
	if m.ObjectsOnly {
		r.target.Announce(m.Objects, publisher.Watermark{Partitions: []int{}})
		return
	}
	if r.dirty[msg.Subject] {
		// Before the watermark moves: the ring must not vouch for an
		// absence it may have missed.
		r.target.Forget(m.Partitions, m.Sealed)
		delete(r.dirty, msg.Subject)
	}
	r.target.Announce(m.Objects, publisher.Watermark{Partitions: m.Partitions, Sealed: m.Sealed, Published: m.Published})
}
