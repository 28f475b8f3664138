package bucketer

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/klauspost/compress/gzip"

	"github.com/danmaku/danmaku/internal/keys"
)

// Version is the body format written by this package.
const Version = 1

// Mode is where a comment is drawn.
type Mode uint8

// The modes a message can have.
const (
	Scroll Mode = iota // flies right to left
	Top                // pinned at the top
	Bottom             // pinned at the bottom
)

var modeNames = [...]string{"scroll", "top", "bottom"}

func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return "mode(" + strconv.Itoa(int(m)) + ")"
}

// ParseMode parses "scroll", "top" or "bottom".
func ParseMode(s string) (Mode, bool) {
	for i, n := range modeNames {
		if s == n {
			return Mode(i), true
		}
	}
	return 0, false
}

// DefaultColor is white, the color of a message that names none.
const DefaultColor = 0xFFFFFF

// Message is one comment as a player sees it.
type Message struct {
	ID       string `json:"id"`        // stable and unique: the log sequence, ".index" within a batch
	Second   int64  `json:"second"`    // unix second of the bucket holding it
	OffsetMS int    `json:"offset_ms"` // milliseconds into that second
	UserID   string `json:"user_id"`
	UserName string `json:"user_name"`
	Text     string `json:"text"`
	Color    uint32 `json:"color"` // 0xRRGGBB
	Mode     Mode   `json:"mode"`
	// Optional extras.
	Avatar string   `json:"avatar,omitempty"` // the poster's avatar URL, when a lookup found one
	Badges []string `json:"badges,omitempty"` // the poster's badges (moderator, member, …)
	Count  int      `json:"count,omitempty"`  // >1: this many identical texts were folded into this one
}

// Body is a decoded bucket (Seconds == 1) or segment (Seconds == 10).
type Body struct {
	Room     string
	Start    int64
	Seconds  int
	Messages []Message
	// Dropped counts messages a per-room cap left out of this object.
	Dropped int
}

// MessageID returns the id of message index of a log entry holding count
// messages: the sequence alone for a single message, "seq.index" in a batch.
func MessageID(seq uint64, index, count int) string {
	if count == 1 {
		return strconv.FormatUint(seq, 10)
	}
	return strconv.FormatUint(seq, 10) + "." + strconv.Itoa(index)
}

// ParseMessageID splits a message id into its log sequence and its index
// in a batch entry; index is -1 for the id of a single-message entry.
func ParseMessageID(id string) (seq uint64, index int, err error) {
	s, i, batch := strings.Cut(id, ".")
	seq, err = strconv.ParseUint(s, 10, 64)
	if err != nil || seq == 0 || (len(s) > 1 && s[0] == '0') {
		return 0, 0, fmt.Errorf("bucketer: bad message id %q", id)
	}
	index = -1
	if batch {
		n, err := strconv.ParseUint(i, 10, 31)
		if err != nil || (len(i) > 1 && i[0] == '0') {
			return 0, 0, fmt.Errorf("bucketer: bad message id %q", id)
		}
		index = int(n)
	}
	return seq, index, nil
}

// entry is one log entry placed in a bucket: the unit of the columnar layout.
type entry struct {
	seq    uint64
	ms     int // milliseconds since the object's start second
	user   string
	name   string
	avatar string
	badges []string
	msgs   []text
}

type text struct {
	text  string
	color uint32
	mode  Mode
	index int // -1: the entry's only message, id "seq"; else id "seq.index"
	count int // identical texts folded into this one; 0 or 1 means none
}

// natural reports whether an entry's message ids are the ones its position
// implies (a lone "seq", or "seq.0" … "seq.n-1"), as they are unless an
// operator redacted part of a batch.
func (e *entry) natural() bool {
	if len(e.msgs) == 1 {
		return e.msgs[0].index == -1
	}
	for i, m := range e.msgs {
		if m.index != i {
			return false
		}
	}
	return true
}

// The body is JSON laid out in columns for size: one row per log entry (a
// POST: one user, one timestamp, one or more messages), one row per message
// for text, color and mode. Sequences and offsets are delta-coded, users
// are indexed into a table in order of first appearance, and columns that
// hold only defaults are left out:
//
//	{"v":1,"room":"lobby","start":1764318000,"seconds":1,
//	 "seq":[1201,3,1],      entry log sequences, first absolute then deltas
//	 "count":[1,1,2],       messages per entry (absent: all 1)
//	 "ms":[12,293,50],      entry offsets in ms since start, delta-coded
//	 "user":[0,1,0],        index into users (absent: all 0)
//	 "users":[["u1","Alice"],["u2","Bo"]],
//	 "text":["hi","草","哈哈","wow"],
//	 "color":[16777215,…],  0xRRGGBB per message (absent: all white)
//	 "mode":[0,2,…],        0 scroll, 1 top, 2 bottom (absent: all scroll)
//	 "index":[-1,-1,0,2],   per message, its index in a batch entry, -1 for a
//	                        lone message; present only after a redaction
//	                        removed part of a batch (absent: implied)
//	 "avatar":["https://…",""],  per user (absent: none)
//	 "badges":[["mod"],[]], per user (absent: none)
//	 "dup":[1,3,1,1],       per message, identical texts folded into it (absent: all 1)
//	 "dropped":12}          messages a per-room cap left out (absent: 0)
func encode(room string, start int64, seconds int, entries []entry, dropped int) []byte {
	b := make([]byte, 0, 128+64*len(entries))
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, Version, 10)
	b = append(b, `,"room":`...)
	b = appendString(b, room)
	b = append(b, `,"start":`...)
	b = strconv.AppendInt(b, start, 10)
	b = append(b, `,"seconds":`...)
	b = strconv.AppendInt(b, int64(seconds), 10)
	if dropped > 0 {
		b = append(b, `,"dropped":`...)
		b = strconv.AppendInt(b, int64(dropped), 10)
	}
	if len(entries) == 0 {
		return append(b, '}')
	}

	b = append(b, `,"seq":[`...)
	var prevSeq uint64
	for i, e := range entries {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(e.seq-prevSeq), 10)
		prevSeq = e.seq
	}
	b = append(b, ']')

	allSingle := true
	for _, e := range entries {
		allSingle = allSingle && len(e.msgs) == 1
	}
	if !allSingle {
		b = append(b, `,"count":[`...)
		for i, e := range entries {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(len(e.msgs)), 10)
		}
		b = append(b, ']')
	}

	b = append(b, `,"ms":[`...)
	prevMS := 0
	for i, e := range entries {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(e.ms-prevMS), 10)
		prevMS = e.ms
	}
	b = append(b, ']')

	type user struct{ id, name, avatar, badges string }
	index := make(map[user]int, len(entries))
	var users []user
	var userBadges [][]string
	rows := make([]int, len(entries))
	anyAvatar, anyBadges := false, false
	for i, e := range entries {
		u := user{e.user, e.name, e.avatar, strings.Join(e.badges, "\x00")}
		n, ok := index[u]
		if !ok {
			n = len(users)
			index[u] = n
			users = append(users, u)
			userBadges = append(userBadges, e.badges)
			anyAvatar = anyAvatar || e.avatar != ""
			anyBadges = anyBadges || len(e.badges) > 0
		}
		rows[i] = n
	}
	if len(users) > 1 {
		b = append(b, `,"user":[`...)
		for i, n := range rows {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(n), 10)
		}
		b = append(b, ']')
	}
	b = append(b, `,"users":[`...)
	for i, u := range users {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = appendString(b, u.id)
		b = append(b, ',')
		b = appendString(b, u.name)
		b = append(b, ']')
	}
	b = append(b, ']')
	if anyAvatar {
		b = append(b, `,"avatar":[`...)
		for i, u := range users {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, u.avatar)
		}
		b = append(b, ']')
	}
	if anyBadges {
		b = append(b, `,"badges":[`...)
		for i, bs := range userBadges {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '[')
			for j, x := range bs {
				if j > 0 {
					b = append(b, ',')
				}
				b = appendString(b, x)
			}
			b = append(b, ']')
		}
		b = append(b, ']')
	}

	b = append(b, `,"text":[`...)
	first := true
	allWhite, allScroll := true, true
	for _, e := range entries {
		for _, m := range e.msgs {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = appendString(b, m.text)
			allWhite = allWhite && m.color == DefaultColor
			allScroll = allScroll && m.mode == Scroll
		}
	}
	b = append(b, ']')
	if !allWhite {
		b = appendColumn(b, `,"color":[`, entries, func(m text) int64 { return int64(m.color) })
	}
	if !allScroll {
		b = appendColumn(b, `,"mode":[`, entries, func(m text) int64 { return int64(m.mode) })
	}
	for i := range entries {
		if !entries[i].natural() {
			b = appendColumn(b, `,"index":[`, entries, func(m text) int64 { return int64(m.index) })
			break
		}
	}
	for _, e := range entries {
		if slices.ContainsFunc(e.msgs, func(m text) bool { return m.count > 1 }) {
			b = appendColumn(b, `,"dup":[`, entries, func(m text) int64 { return int64(max(m.count, 1)) })
			break
		}
	}
	return append(b, '}')
}

func appendColumn(b []byte, head string, entries []entry, f func(text) int64) []byte {
	b = append(b, head...)
	first := true
	for _, e := range entries {
		for _, m := range e.msgs {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = strconv.AppendInt(b, f(m), 10)
		}
	}
	return append(b, ']')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, keeping UTF-8 as is and escaping
// only what JSON (and JavaScript, for U+2028/U+2029) requires.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// Encode lays out a decoded body again. Messages must be grouped as the log
// stored them: those of one entry (one sequence) adjacent, in index order,
// sharing user and time. Encode(Decode(b)) == b for every body this package
// wrote, which is what lets backfill rebuild byte-identical objects from
// exported messages.
func Encode(b *Body) ([]byte, error) {
	if b.Seconds != 1 && b.Seconds != keys.SegmentSeconds {
		return nil, fmt.Errorf("bucketer: encode: %d seconds, want 1 or %d", b.Seconds, keys.SegmentSeconds)
	}
	var entries []entry
	for i := 0; i < len(b.Messages); {
		m := b.Messages[i]
		seq, _, err := ParseMessageID(m.ID)
		if err != nil {
			return nil, fmt.Errorf("bucketer: encode: %w", err)
		}
		ms := (m.Second-b.Start)*1000 + int64(m.OffsetMS)
		if m.OffsetMS < 0 || m.OffsetMS > 999 || ms < 0 || ms >= int64(b.Seconds)*1000 {
			return nil, fmt.Errorf("bucketer: encode: message %s at %d.%03d is outside %d+%ds", m.ID, m.Second, m.OffsetMS, b.Start, b.Seconds)
		}
		e := entry{seq: seq, ms: int(ms), user: m.UserID, name: m.UserName, avatar: m.Avatar, badges: m.Badges}
		j := i
		for ; j < len(b.Messages); j++ {
			n := b.Messages[j]
			s, index, err := ParseMessageID(n.ID)
			if err != nil {
				return nil, fmt.Errorf("bucketer: encode: %w", err)
			}
			if s != seq {
				break
			}
			if n.Second != m.Second || n.OffsetMS != m.OffsetMS || n.UserID != m.UserID || n.UserName != m.UserName ||
				n.Avatar != m.Avatar || !slices.Equal(n.Badges, m.Badges) {
				return nil, fmt.Errorf("bucketer: encode: messages of entry %d differ in time or user", seq)
			}
			if len(e.msgs) > 0 && (index <= e.msgs[len(e.msgs)-1].index || e.msgs[0].index == -1) {
				return nil, fmt.Errorf("bucketer: encode: message %s is out of order in its entry", n.ID)
			}
			e.msgs = append(e.msgs, text{text: n.Text, color: n.Color & 0xFFFFFF, mode: n.Mode, index: index, count: n.Count})
		}
		if len(entries) > 0 && seq <= entries[len(entries)-1].seq {
			return nil, fmt.Errorf("bucketer: encode: entry %d after %d is out of log order", seq, entries[len(entries)-1].seq)
		}
		entries = append(entries, e)
		i = j
	}
	if b.Dropped < 0 {
		return nil, fmt.Errorf("bucketer: encode: dropped %d", b.Dropped)
	}
	return encode(b.Room, b.Start, b.Seconds, entries, b.Dropped), nil
}

// wire is the JSON shape of a body for decoding.
type wire struct {
	V       int         `json:"v"`
	Room    string      `json:"room"`
	Start   int64       `json:"start"`
	Seconds int         `json:"seconds"`
	Seq     []int64     `json:"seq"`
	Count   []int       `json:"count"`
	MS      []int64     `json:"ms"`
	User    []int       `json:"user"`
	Users   [][2]string `json:"users"`
	Text    []string    `json:"text"`
	Color   []uint32    `json:"color"`
	Mode    []uint8     `json:"mode"`
	Index   []int       `json:"index"`
	Avatar  []string    `json:"avatar"`
	Badges  [][]string  `json:"badges"`
	Dup     []int       `json:"dup"`
	Dropped int         `json:"dropped"`
}

// ErrFormat means a body is not a well-formed bucket or segment.
var ErrFormat = errors.New("bucketer: malformed body")

// maxDecodedMessages bounds what Decode will allocate for one body.
const maxDecodedMessages = 1 << 20

// Decode parses an uncompressed body.
func Decode(data []byte) (*Body, error) {
	var w wire
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	bad := func(f string, a ...any) (*Body, error) {
		return nil, fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(f, a...))
	}
	if w.V != Version {
		return bad("version %d, want %d", w.V, Version)
	}
	if w.Seconds != 1 && w.Seconds != keys.SegmentSeconds {
		return bad("seconds %d", w.Seconds)
	}
	if !keys.ValidRoom(w.Room) {
		return bad("room %q", w.Room)
	}
	if w.Start < 0 || (w.Seconds == keys.SegmentSeconds && w.Start%keys.SegmentSeconds != 0) {
		return bad("start %d for %d seconds", w.Start, w.Seconds)
	}
	n := len(w.Seq)
	if len(w.MS) != n {
		return bad("%d offsets for %d entries", len(w.MS), n)
	}
	if w.Count != nil && len(w.Count) != n {
		return bad("%d counts for %d entries", len(w.Count), n)
	}
	if w.User != nil && len(w.User) != n {
		return bad("%d user rows for %d entries", len(w.User), n)
	}
	if n > 0 && len(w.Users) == 0 {
		return bad("no users")
	}
	total := 0
	for i := 0; i < n; i++ {
		c := 1
		if w.Count != nil {
			c = w.Count[i]
		}
		if c < 1 || total+c > maxDecodedMessages {
			return bad("entry %d holds %d messages", i, c)
		}
		total += c
	}
	if len(w.Text) != total {
		return bad("%d texts for %d messages", len(w.Text), total)
	}
	if w.Color != nil && len(w.Color) != total {
		return bad("%d colors for %d messages", len(w.Color), total)
	}
	if w.Mode != nil && len(w.Mode) != total {
		return bad("%d modes for %d messages", len(w.Mode), total)
	}
	if w.Index != nil && len(w.Index) != total {
		return bad("%d indexes for %d messages", len(w.Index), total)
	}
	if w.Dup != nil && len(w.Dup) != total {
		return bad("%d dup counts for %d messages", len(w.Dup), total)
	}
	if w.Avatar != nil && len(w.Avatar) != len(w.Users) {
		return bad("%d avatars for %d users", len(w.Avatar), len(w.Users))
	}
	if w.Badges != nil && len(w.Badges) != len(w.Users) {
		return bad("%d badge lists for %d users", len(w.Badges), len(w.Users))
	}
	if w.Dropped < 0 {
		return bad("dropped %d", w.Dropped)
	}
	body := &Body{Room: w.Room, Start: w.Start, Seconds: w.Seconds, Messages: make([]Message, 0, total), Dropped: w.Dropped}
	var seq int64
	var ms int64
	k := 0
	for i := 0; i < n; i++ {
		if i > 0 && w.Seq[i] <= 0 {
			return bad("entry %d does not follow entry %d in log order", i, i-1)
		}
		seq += w.Seq[i]
		ms += w.MS[i]
		if seq <= 0 {
			return bad("entry %d has sequence %d", i, seq)
		}
		if ms < 0 || ms >= int64(w.Seconds)*1000 {
			return bad("entry %d is %d ms into a %d s body", i, ms, w.Seconds)
		}
		u := 0
		if w.User != nil {
			u = w.User[i]
		}
		if u < 0 || u >= len(w.Users) {
			return bad("entry %d names user %d of %d", i, u, len(w.Users))
		}
		c := 1
		if w.Count != nil {
			c = w.Count[i]
		}
		prevIndex := -2
		for j := 0; j < c; j++ {
			id := MessageID(uint64(seq), j, c)
			if w.Index != nil {
				x := w.Index[k]
				if x < -1 || x <= prevIndex || (x == -1 && c > 1) || x > maxDecodedMessages {
					return bad("message %d has index %d", k, x)
				}
				prevIndex = x
				id = strconv.FormatUint(uint64(seq), 10)
				if x >= 0 {
					id += "." + strconv.Itoa(x)
				}
			}
			m := Message{
				ID:       id,
				Second:   w.Start + ms/1000,
				OffsetMS: int(ms % 1000),
				UserID:   w.Users[u][0],
				UserName: w.Users[u][1],
				Text:     w.Text[k],
				Color:    DefaultColor,
			}
			if w.Color != nil {
				m.Color = w.Color[k] & 0xFFFFFF
			}
			if w.Avatar != nil {
				m.Avatar = w.Avatar[u]
			}
			if w.Badges != nil && len(w.Badges[u]) > 0 {
				m.Badges = w.Badges[u]
			}
			if w.Dup != nil {
				if w.Dup[k] < 1 {
					return bad("message %d has dup %d", k, w.Dup[k])
				}
				if w.Dup[k] > 1 {
					m.Count = w.Dup[k]
				}
			}
			if w.Mode != nil {
				if int(w.Mode[k]) >= len(modeNames) {
					return bad("message %d has mode %d", k, w.Mode[k])
				}
				m.Mode = Mode(w.Mode[k])
			}
			body.Messages = append(body.Messages, m)
			k++
		}
	}
	return body, nil
}

// maxBodyBytes bounds how far Gunzip inflates one object.
const maxBodyBytes = 64 << 20

// gunzipPool keeps gzip readers, whose inflate state is large to make:
// players (and load generators of thousands of them) inflate a body a second.
var gunzipPool sync.Pool // *gzip.Reader

// Gunzip inflates a stored object, refusing anything that inflates past
// 64 MiB.
func Gunzip(gz []byte) ([]byte, error) {
	var r *gzip.Reader
	var err error
	if v, ok := gunzipPool.Get().(*gzip.Reader); ok {
		r, err = v, v.Reset(bytes.NewReader(gz))
	} else {
		r, err = gzip.NewReader(bytes.NewReader(gz))
	}
	if err != nil {
		return nil, fmt.Errorf("bucketer: gunzip: %w", err)
	}
	defer gunzipPool.Put(r)
	// The trailer names the inflated size (of the last member): a hint for
	// the buffer, bounded so that a crafted trailer cannot make it large.
	size := 512
	if n := len(gz); n >= 18 {
		size = min(int(binary.LittleEndian.Uint32(gz[n-4:])), 64*n, 1<<20) + bytes.MinRead
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	_, err = buf.ReadFrom(io.LimitReader(r, maxBodyBytes+1))
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("bucketer: gunzip: %w", err)
	}
	if buf.Len() > maxBodyBytes {
		return nil, fmt.Errorf("bucketer: gunzip: body larger than %d bytes", maxBodyBytes)
	}
	return buf.Bytes(), nil
}

// DecodeGzip inflates and parses a stored object.
func DecodeGzip(gz []byte) (*Body, error) {
	raw, err := Gunzip(gz)
	if err != nil {
		return nil, err
	}
	return Decode(raw)
}

var gzipPool = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(nil, gzip.BestCompression)
	return w
}}

// Gzip compresses a body the way every stored object is compressed: best
// compression, no name and no timestamp, so equal bodies give equal bytes.
func Gzip(raw []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(raw)/2 + 64)
	w := gzipPool.Get().(*gzip.Writer)
	w.Reset(&buf)
	w.Write(raw)
	w.Close()
	gzipPool.Put(w)
	return buf.Bytes()
}

// EmptyBody returns the stored form of an object with no messages, which the
// origin answers for a sealed second that has no object in the store.
func EmptyBody(room string, start int64, seconds int) []byte {
	return Gzip(encode(room, start, seconds, nil, 0))
}

// Redact removes the messages whose ids are in ids from a stored object and
// returns the new stored bytes and how many messages went. A body left with
// no messages returns nil: like any empty second, it should have no object.
// An object holding none of the ids comes back unchanged with removed == 0.
func Redact(gz []byte, ids map[string]bool) (out []byte, removed int, err error) {
	b, err := DecodeGzip(gz)
	if err != nil {
		return nil, 0, err
	}
	kept := b.Messages[:0:0]
	for _, m := range b.Messages {
		if ids[m.ID] {
			removed++
			continue
		}
		kept = append(kept, m)
	}
	if removed == 0 {
		return gz, 0, nil
	}
	if len(kept) == 0 && b.Dropped == 0 {
		return nil, removed, nil
	}
	b.Messages = kept
	raw, err := Encode(b)
	if err != nil {
		return nil, 0, err
	}
	return Gzip(raw), removed, nil
}

// MarshalText writes a mode as "scroll", "top" or "bottom".
func (m Mode) MarshalText() ([]byte, error) {
	if int(m) >= len(modeNames) {
		return nil, fmt.Errorf("bucketer: mode %d", m)
	}
	return []byte(modeNames[m]), nil
}

// UnmarshalText reads "scroll", "top" or "bottom".
func (m *Mode) UnmarshalText(b []byte) error {
	v, ok := ParseMode(string(b))
	if !ok {
		return fmt.Errorf("bucketer: mode %q: want scroll, top or bottom", b)
	}
	*m = v
	return nil
}

// Exported is one line of an export: a message and its room. Backfill reads
// these lines back and rebuilds byte-identical objects from them. A bucket
// from which a per-room cap left messages out adds a line with no message,
// only the room, the second and the count: {"room":…,"second":…,"dropped":N}.
type Exported struct {
	Room string `json:"room"`
	Message
	Dropped int `json:"dropped,omitempty"`
}

// Objects rebuilds the objects of one room from its messages: a bucket for
// every second with messages and a segment for every window that windows
// admits. Messages may come in any order; they are put back in log order.
func Objects(room string, msgs []Message, windows func(start int64) bool) ([]Object, error) {
	return ObjectsWithDropped(room, msgs, nil, windows)
}

// ObjectsWithDropped is Objects for buckets a per-room cap trimmed: dropped
// holds, per second, the count of messages the cap left out. A segment's
// count is the sum over its seconds.
func ObjectsWithDropped(room string, msgs []Message, dropped map[int64]int, windows func(start int64) bool) ([]Object, error) {
	if !keys.ValidRoom(room) {
		return nil, fmt.Errorf("bucketer: %w", keys.ErrRoom)
	}
	sorted := append([]Message(nil), msgs...)
	var sortErr error
	key := func(m Message) (uint64, int) {
		seq, idx, err := ParseMessageID(m.ID)
		if err != nil && sortErr == nil {
			sortErr = err
		}
		return seq, idx
	}
	slices.SortStableFunc(sorted, func(a, b Message) int {
		as, ai := key(a)
		bs, bi := key(b)
		if c := cmp.Compare(as, bs); c != 0 {
			return c
		}
		return cmp.Compare(ai, bi)
	})
	if sortErr != nil {
		return nil, fmt.Errorf("bucketer: %w", sortErr)
	}
	bySecond := map[int64][]Message{}
	byWindow := map[int64][]Message{}
	for _, m := range sorted {
		bySecond[m.Second] = append(bySecond[m.Second], m)
		byWindow[keys.SegmentStart(m.Second)] = append(byWindow[keys.SegmentStart(m.Second)], m)
	}
	windowDropped := map[int64]int{}
	for sec, n := range dropped {
		if n < 0 {
			return nil, fmt.Errorf("bucketer: second %d: dropped %d", sec, n)
		}
		if n > 0 {
			if _, ok := bySecond[sec]; !ok {
				bySecond[sec] = nil
			}
			w := keys.SegmentStart(sec)
			if _, ok := byWindow[w]; !ok {
				byWindow[w] = nil
			}
			windowDropped[w] += n
		}
	}
	var objs []Object
	for _, sec := range slices.Sorted(maps.Keys(bySecond)) {
		raw, err := Encode(&Body{Room: room, Start: sec, Seconds: 1, Messages: bySecond[sec], Dropped: dropped[sec]})
		if err != nil {
			return nil, err
		}
		o := NewObject(keys.Bucket, room, sec, raw, len(bySecond[sec]))
		o.Dropped = dropped[sec]
		objs = append(objs, o)
	}
	for _, w := range slices.Sorted(maps.Keys(byWindow)) {
		if windows != nil && !windows(w) {
			continue
		}
		raw, err := Encode(&Body{Room: room, Start: w, Seconds: keys.SegmentSeconds, Messages: byWindow[w], Dropped: windowDropped[w]})
		if err != nil {
			return nil, err
		}
		objs = append(objs, NewObject(keys.Segment, room, w, raw, len(byWindow[w])))
	}
	return objs, nil
}
