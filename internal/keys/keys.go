// Package keys holds the URL and object-key contract: room ids, second
// numbers, and the paths under which buckets and segments live. Object key in
// the store == URL path without its leading slash.
package keys

import (
	"errors"
	"strconv"
	"strings"
)

// SegmentSeconds is the length of a segment: the seconds [start, start+10).
const SegmentSeconds = 10

// MaxRoomLen is the longest room id accepted.
const MaxRoomLen = 64

// Errors returned by the parsers. Handlers map them to a 400 answer.
var (
	ErrRoom    = errors.New("room id must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'")
	ErrSecond  = errors.New("second must be a decimal unix second without sign or leading zeros")
	ErrAligned = errors.New("segment start must be a multiple of 10")
	ErrPath    = errors.New("not a bucket or segment path")
)

// maxSecond bounds accepted seconds to keep arithmetic far from overflow
// (year 5138); anything later is a client error, not a future second.
const maxSecond = 99_999_999_999

// ValidRoom reports whether room is a well-formed room id.
func ValidRoom(room string) bool {
	if len(room) == 0 || len(room) > MaxRoomLen {
		return false
	}
	for i := 0; i < len(room); i++ {
		c := room[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// CheckRoom returns ErrRoom unless room is well formed.
func CheckRoom(room string) error {
	if !ValidRoom(room) {
		return ErrRoom
	}
	return nil
}

// ParseSecond parses a unix second as it appears in a URL: decimal digits,
// no sign, no leading zeros (so every second has exactly one URL).
func ParseSecond(s string) (int64, error) {
	if len(s) == 0 || len(s) > 11 || (s[0] == '0' && len(s) > 1) {
		return 0, ErrSecond
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, ErrSecond
		}
		n = n*10 + int64(c-'0')
	}
	if n > maxSecond {
		return 0, ErrSecond
	}
	return n, nil
}

// ParseJSONName parses the last path element of a bucket or segment URL,
// "{second}.json".
func ParseJSONName(name string) (int64, error) {
	s, ok := strings.CutSuffix(name, ".json")
	if !ok {
		return 0, ErrSecond
	}
	return ParseSecond(s)
}

// Kind tells a bucket from a segment.
type Kind uint8

// The two kinds of object.
const (
	Bucket Kind = iota
	Segment
)

func (k Kind) String() string {
	if k == Segment {
		return "segment"
	}
	return "bucket"
}

// Seconds is how many seconds an object of this kind covers.
func (k Kind) Seconds() int64 {
	if k == Segment {
		return SegmentSeconds
	}
	return 1
}

// Key returns the object key (URL path without the leading slash) of the
// bucket or segment of room starting at second.
func Key(kind Kind, room string, second int64) string {
	b := make([]byte, 0, 40+len(room))
	return string(AppendKey(b, kind, room, second))
}

// AppendKey appends Key(kind, room, second) to b.
func AppendKey(b []byte, kind Kind, room string, second int64) []byte {
	b = append(b, "v1/rooms/"...)
	b = append(b, room...)
	if kind == Segment {
		b = append(b, "/segments/"...)
	} else {
		b = append(b, "/buckets/"...)
	}
	b = strconv.AppendInt(b, second, 10)
	return append(b, ".json"...)
}

// RoomPrefix is the key prefix under which every object of a room of the
// given kind lives, for listing.
func RoomPrefix(kind Kind, room string) string {
	if kind == Segment {
		return "v1/rooms/" + room + "/segments/"
	}
	return "v1/rooms/" + room + "/buckets/"
}

// Parse splits an object key or URL path (leading slash optional) into its
// kind, room and second, validating each part.
func Parse(path string) (Kind, string, int64, error) {
	p := strings.TrimPrefix(path, "/")
	rest, ok := strings.CutPrefix(p, "v1/rooms/")
	if !ok {
		return 0, "", 0, ErrPath
	}
	room, rest, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, "", 0, ErrPath
	}
	if !ValidRoom(room) {
		return 0, "", 0, ErrRoom
	}
	var kind Kind
	switch {
	case strings.HasPrefix(rest, "buckets/"):
		kind, rest = Bucket, rest[len("buckets/"):]
	case strings.HasPrefix(rest, "segments/"):
		kind, rest = Segment, rest[len("segments/"):]
	default:
		return 0, "", 0, ErrPath
	}
	second, err := ParseJSONName(rest)
	if err != nil {
		return 0, "", 0, err
	}
	if kind == Segment && second%SegmentSeconds != 0 {
		return 0, "", 0, ErrAligned
	}
	return kind, room, second, nil
}

// SegmentStart is the start of the segment holding second.
func SegmentStart(second int64) int64 {
	return second - mod(second, SegmentSeconds)
}

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

// Partitions is the fixed number of log partitions rooms are spread over.
// It is part of the log's subject layout, so it never changes.
const Partitions = 32

// Partition returns the log partition of room (FNV-1a, mod Partitions).
func Partition(room string) int {
	h := uint32(2166136261)
	for i := 0; i < len(room); i++ {
		h ^= uint32(room[i])
		h *= 16777619
	}
	return int(h % Partitions)
}

// PartitionLabel names a set of partitions in metrics and logs: "all" for
// nil, else the numbers joined by commas.
func PartitionLabel(partitions []int) string {
	if partitions == nil {
		return "all"
	}
	b := make([]byte, 0, 3*len(partitions))
	for i, p := range partitions {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(p), 10)
	}
	return string(b)
}
