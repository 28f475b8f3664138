package keys_test

import (
	"strings"
	"testing"

	"github.com/danmaku/danmaku/internal/keys"
)

// FuzzParse pins "exactly one URL per object": whatever Parse accepts is the
// one key Key builds from the parts it returns.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"v1/rooms/lobby/buckets/1767225600.json",
		"/v1/rooms/lobby/segments/1767225600.json",
		"v1/rooms/r/buckets/0.json",
		"v1/rooms/r/buckets/01.json",
		"v1/rooms/r/buckets/-1.json",
		"v1/rooms/r/buckets/+1.json",
		"v1/rooms/../buckets/1.json",
		"v1/rooms/%2e%2e/buckets/1.json",
		"v1/rooms/\u0430/buckets/1.json",
		"v1/rooms/r/segments/15.json",
		"//v1/rooms/r/buckets/1.json",
		"v1/rooms/r/buckets/99999999999.json",
		"v1/rooms/r/buckets/100000000000.json",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		kind, room, second, err := keys.Parse(path)
		if err != nil {
			if room != "" || second != 0 {
				t.Fatalf("Parse(%q) failed with %v but returned room %q, second %d", path, err, room, second)
			}
			return
		}
		if want, got := strings.TrimPrefix(path, "/"), keys.Key(kind, room, second); got != want {
			t.Fatalf("Parse(%q) = %v, %q, %d, but Key of those is %q", path, kind, room, second, got)
		}
		if kind != keys.Bucket && kind != keys.Segment {
			t.Fatalf("Parse(%q) returned kind %d", path, kind)
		}
		if !keys.ValidRoom(room) {
			t.Fatalf("Parse(%q) accepted room %q", path, room)
		}
		if second < 0 || second > 99_999_999_999 {
			t.Fatalf("Parse(%q) accepted second %d", path, second)
		}
		if kind == keys.Segment && keys.SegmentStart(second) != second {
			t.Fatalf("Parse(%q) accepted unaligned segment %d", path, second)
		}
	})
}
