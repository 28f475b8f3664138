package keys_test

import (
	"errors"
	"hash/fnv"
	"strconv"
	"strings"
	"testing"

	"github.com/danmaku/danmaku/internal/keys"
)

func TestValidRoom(t *testing.T) {
	tests := []struct {
		name string
		room string
		want bool
	}{
		{"lower", "lobby", true},
		{"upper", "LOBBY", true},
		{"digits", "0123456789", true},
		{"underscore and dash", "a_b-c", true},
		{"only dash", "-", true},
		{"only underscore", "_", true},
		{"one char", "a", true},
		{"64 chars", strings.Repeat("a", 64), true},
		{"empty", "", false},
		{"65 chars", strings.Repeat("a", 65), false},
		{"dot", "a.b", false},
		{"dot dot", "..", false},
		{"slash", "a/b", false},
		{"backslash", `a\b`, false},
		{"space", "a b", false},
		{"leading space", " a", false},
		{"percent encoded dot", "%2e%2e", false},
		{"cyrillic a", "\u0430", false},
		{"cyrillic look-alike among latin", "r\u043eom", false}, // U+043E, not "o"
		{"fullwidth a", "\uff41", false},
		{"nul", "a\x00", false},
		{"newline", "a\n", false},
		{"plus", "a+b", false},
		{"colon", "a:b", false},
		{"latin-1 byte", "caf\xe9", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := keys.ValidRoom(tt.room); got != tt.want {
				t.Errorf("ValidRoom(%q) = %v, want %v", tt.room, got, tt.want)
			}
			err := keys.CheckRoom(tt.room)
			switch {
			case tt.want && err != nil:
				t.Errorf("CheckRoom(%q) = %v, want nil", tt.room, err)
			case !tt.want && !errors.Is(err, keys.ErrRoom):
				t.Errorf("CheckRoom(%q) = %v, want ErrRoom", tt.room, err)
			}
		})
	}
}

func TestParseSecond(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want int64
		ok   bool
	}{
		{"zero", "0", 0, true},
		{"one", "1", 1, true},
		{"ten", "10", 10, true},
		{"today", "1767225600", 1767225600, true},
		{"max", "99999999999", 99_999_999_999, true},
		{"ten digits", "9999999999", 9_999_999_999, true},
		{"empty", "", 0, false},
		{"leading zero", "01", 0, false},
		{"double zero", "00", 0, false},
		{"negative", "-1", 0, false},
		{"negative zero", "-0", 0, false},
		{"plus sign", "+1", 0, false},
		{"exponent", "1e3", 0, false},
		{"leading space", " 1", 0, false},
		{"trailing space", "1 ", 0, false},
		{"decimal point", "1.0", 0, false},
		{"hex", "0x10", 0, false},
		{"underscore", "1_000", 0, false},
		{"12 digits", "100000000000", 0, false},
		{"12 nines", "999999999999", 0, false},
		{"overflow int64", "9223372036854775808", 0, false},
		{"fullwidth digit", "\uff11", 0, false},
		{"arabic-indic digit", "\u0661", 0, false},
		{"letters", "abc", 0, false},
		{"digit then letter", "1a", 0, false},
		{"nul", "1\x00", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := keys.ParseSecond(tt.in)
			if !tt.ok {
				if !errors.Is(err, keys.ErrSecond) {
					t.Fatalf("ParseSecond(%q) = %d, %v; want ErrSecond", tt.in, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseSecond(%q) = %d, %v; want %d, nil", tt.in, got, err, tt.want)
			}
			// Exactly one spelling per second.
			if s := strconv.FormatInt(got, 10); s != tt.in {
				t.Errorf("ParseSecond(%q) = %d, which formats as %q", tt.in, got, s)
			}
		})
	}
}

func TestParseJSONName(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want int64
		ok   bool
	}{
		{"second", "1767225600.json", 1767225600, true},
		{"zero", "0.json", 0, true},
		{"no suffix", "1767225600", 0, false},
		{"upper suffix", "1.JSON", 0, false},
		{"gz suffix", "1.json.gz", 0, false},
		{"double suffix", "1.json.json", 0, false},
		{"only suffix", ".json", 0, false},
		{"leading zero", "01.json", 0, false},
		{"negative", "-1.json", 0, false},
		{"other suffix", "1.txt", 0, false},
		{"query", "1.json?x=1", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := keys.ParseJSONName(tt.in)
			if !tt.ok {
				if !errors.Is(err, keys.ErrSecond) {
					t.Fatalf("ParseJSONName(%q) = %d, %v; want ErrSecond", tt.in, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseJSONName(%q) = %d, %v; want %d, nil", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestKey(t *testing.T) {
	tests := []struct {
		name   string
		kind   keys.Kind
		room   string
		second int64
		want   string
	}{
		{"bucket", keys.Bucket, "lobby", 1767225600, "v1/rooms/lobby/buckets/1767225600.json"},
		{"segment", keys.Segment, "lobby", 1767225600, "v1/rooms/lobby/segments/1767225600.json"},
		{"bucket zero", keys.Bucket, "r", 0, "v1/rooms/r/buckets/0.json"},
		{"long room", keys.Bucket, strings.Repeat("x", 64), 5, "v1/rooms/" + strings.Repeat("x", 64) + "/buckets/5.json"},
		{"max second", keys.Segment, "a-b_C", 99_999_999_990, "v1/rooms/a-b_C/segments/99999999990.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := keys.Key(tt.kind, tt.room, tt.second); got != tt.want {
				t.Errorf("Key = %q, want %q", got, tt.want)
			}
			prefix := []byte("prefix:")
			got := keys.AppendKey(prefix, tt.kind, tt.room, tt.second)
			if string(got) != "prefix:"+tt.want {
				t.Errorf("AppendKey = %q, want %q", got, "prefix:"+tt.want)
			}
			if rp := keys.RoomPrefix(tt.kind, tt.room); !strings.HasPrefix(tt.want, rp) || !strings.HasSuffix(rp, "/") {
				t.Errorf("RoomPrefix = %q, not a directory prefix of %q", rp, tt.want)
			}
			kind, room, second, err := keys.Parse(tt.want)
			if err != nil || kind != tt.kind || room != tt.room || second != tt.second {
				t.Errorf("Parse(%q) = %v, %q, %d, %v; want %v, %q, %d, nil",
					tt.want, kind, room, second, err, tt.kind, tt.room, tt.second)
			}
		})
	}
}

func TestRoomPrefix(t *testing.T) {
	if got, want := keys.RoomPrefix(keys.Bucket, "lobby"), "v1/rooms/lobby/buckets/"; got != want {
		t.Errorf("RoomPrefix(Bucket) = %q, want %q", got, want)
	}
	if got, want := keys.RoomPrefix(keys.Segment, "lobby"), "v1/rooms/lobby/segments/"; got != want {
		t.Errorf("RoomPrefix(Segment) = %q, want %q", got, want)
	}
	// A room's prefix must not be a prefix of another room's keys.
	if k := keys.Key(keys.Bucket, "lobby2", 1); strings.HasPrefix(k, keys.RoomPrefix(keys.Bucket, "lobby")) {
		t.Errorf("key %q of room lobby2 is under the prefix of room lobby", k)
	}
}

func TestKind(t *testing.T) {
	tests := []struct {
		name    string
		kind    keys.Kind
		str     string
		seconds int64
	}{
		{"bucket", keys.Bucket, "bucket", 1},
		{"segment", keys.Segment, "segment", keys.SegmentSeconds},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.kind.String(); got != tt.str {
				t.Errorf("String() = %q, want %q", got, tt.str)
			}
			if got := tt.kind.Seconds(); got != tt.seconds {
				t.Errorf("Seconds() = %d, want %d", got, tt.seconds)
			}
		})
	}
	if keys.SegmentSeconds != 10 {
		t.Errorf("SegmentSeconds = %d, the URL contract says 10", keys.SegmentSeconds)
	}
}

func TestParseRoundTrip(t *testing.T) {
	rooms := []string{"a", "lobby", "A-Z_0-9", strings.Repeat("z", 64), "-", "_"}
	seconds := []int64{0, 10, 1767225600, 1767225610, 99_999_999_990}
	for _, kind := range []keys.Kind{keys.Bucket, keys.Segment} {
		for _, room := range rooms {
			for _, s := range seconds {
				key := keys.Key(kind, room, s)
				for _, path := range []string{key, "/" + key} {
					k, r, sec, err := keys.Parse(path)
					if err != nil || k != kind || r != room || sec != s {
						t.Errorf("Parse(%q) = %v, %q, %d, %v; want %v, %q, %d, nil", path, k, r, sec, err, kind, room, s)
					}
				}
			}
		}
	}
	// Buckets of any second round-trip, not only aligned ones.
	for _, s := range []int64{1, 9, 1767225601, 99_999_999_999} {
		key := keys.Key(keys.Bucket, "r", s)
		if _, _, sec, err := keys.Parse(key); err != nil || sec != s {
			t.Errorf("Parse(%q) = %d, %v; want %d, nil", key, sec, err, s)
		}
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name string
		path string
		want error
	}{
		{"empty", "", keys.ErrPath},
		{"root", "/", keys.ErrPath},
		{"double leading slash", "//v1/rooms/r/buckets/1.json", keys.ErrPath},
		{"no version", "rooms/r/buckets/1.json", keys.ErrPath},
		{"v2", "v2/rooms/r/buckets/1.json", keys.ErrPath},
		{"upper version", "V1/rooms/r/buckets/1.json", keys.ErrPath},
		{"room only", "v1/rooms/r", keys.ErrPath},
		{"room with slash", "v1/rooms/r/", keys.ErrPath},
		{"head", "v1/rooms/r/head", keys.ErrPath},
		{"messages", "v1/rooms/r/messages", keys.ErrPath},
		{"unknown kind", "v1/rooms/r/frames/1.json", keys.ErrPath},
		{"kind without slash", "v1/rooms/r/buckets1.json", keys.ErrPath},
		{"kind prefix", "v1/rooms/r/bucketsx/1.json", keys.ErrPath},
		{"upper kind", "v1/rooms/r/Buckets/1.json", keys.ErrPath},
		{"dot dot room", "v1/rooms/../buckets/1.json", keys.ErrRoom},
		{"dot dot escaping", "v1/rooms/r/../../etc/passwd", keys.ErrPath},
		{"encoded dot dot room", "v1/rooms/%2e%2e/buckets/1.json", keys.ErrRoom},
		{"encoded slash in room", "v1/rooms/a%2fb/buckets/1.json", keys.ErrRoom},
		{"dot room", "v1/rooms/./buckets/1.json", keys.ErrRoom},
		{"empty room", "v1/rooms//buckets/1.json", keys.ErrRoom},
		{"cyrillic a room", "v1/rooms/\u0430/buckets/1.json", keys.ErrRoom},
		{"cyrillic look-alike room", "v1/rooms/lobby\u0430/buckets/1.json", keys.ErrRoom},
		{"65 char room", "v1/rooms/" + strings.Repeat("a", 65) + "/buckets/1.json", keys.ErrRoom},
		{"room with dot", "v1/rooms/a.b/buckets/1.json", keys.ErrRoom},
		{"negative second", "v1/rooms/r/buckets/-1.json", keys.ErrSecond},
		{"plus second", "v1/rooms/r/buckets/+1.json", keys.ErrSecond},
		{"leading zero", "v1/rooms/r/buckets/01.json", keys.ErrSecond},
		{"exponent", "v1/rooms/r/buckets/1e3.json", keys.ErrSecond},
		{"space before second", "v1/rooms/r/buckets/ 1.json", keys.ErrSecond},
		{"encoded space", "v1/rooms/r/buckets/%201.json", keys.ErrSecond},
		{"12 digit second", "v1/rooms/r/buckets/100000000000.json", keys.ErrSecond},
		{"missing second", "v1/rooms/r/buckets/.json", keys.ErrSecond},
		{"missing name", "v1/rooms/r/buckets/", keys.ErrSecond},
		{"no suffix", "v1/rooms/r/buckets/1", keys.ErrSecond},
		{"wrong suffix", "v1/rooms/r/buckets/1.gz", keys.ErrSecond},
		{"extra suffix", "v1/rooms/r/buckets/1.json.gz", keys.ErrSecond},
		{"upper suffix", "v1/rooms/r/buckets/1.JSON", keys.ErrSecond},
		{"query", "v1/rooms/r/buckets/1.json?x=1", keys.ErrSecond},
		{"trailing slash", "v1/rooms/r/buckets/1.json/", keys.ErrSecond},
		{"extra element", "v1/rooms/r/buckets/1/2.json", keys.ErrSecond},
		{"dot element", "v1/rooms/r/buckets/./1.json", keys.ErrSecond},
		{"segment not aligned", "v1/rooms/r/segments/15.json", keys.ErrAligned},
		{"segment one", "v1/rooms/r/segments/1.json", keys.ErrAligned},
		{"segment 9", "v1/rooms/r/segments/1767225609.json", keys.ErrAligned},
		{"segment max second", "v1/rooms/r/segments/99999999999.json", keys.ErrAligned},
		{"segment negative", "v1/rooms/r/segments/-10.json", keys.ErrSecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kind, room, second, err := keys.Parse(tt.path)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse(%q) = %v, %q, %d, %v; want error %v", tt.path, kind, room, second, err, tt.want)
			}
			if room != "" || second != 0 {
				t.Errorf("Parse(%q) returned room %q and second %d with its error", tt.path, room, second)
			}
		})
	}
}

func TestSegmentStart(t *testing.T) {
	tests := []struct {
		name   string
		second int64
		want   int64
	}{
		{"zero", 0, 0},
		{"one", 1, 0},
		{"nine", 9, 0},
		{"ten", 10, 10},
		{"nineteen", 19, 10},
		{"today", 1767225607, 1767225600},
		{"max", 99_999_999_999, 99_999_999_990},
		{"minus one", -1, -10},
		{"minus nine", -9, -10},
		{"minus ten", -10, -10},
		{"minus eleven", -11, -20},
		{"minus twenty", -20, -20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := keys.SegmentStart(tt.second)
			if got != tt.want {
				t.Fatalf("SegmentStart(%d) = %d, want %d", tt.second, got, tt.want)
			}
			if got > tt.second || tt.second >= got+keys.SegmentSeconds || got%keys.SegmentSeconds != 0 {
				t.Errorf("SegmentStart(%d) = %d does not hold the second", tt.second, got)
			}
		})
	}
	for s := int64(-100); s <= 100; s++ {
		st := keys.SegmentStart(s)
		if st > s || s >= st+keys.SegmentSeconds || st%keys.SegmentSeconds != 0 {
			t.Errorf("SegmentStart(%d) = %d does not hold the second", s, st)
		}
	}
}

func TestPartition(t *testing.T) {
	// The partition is part of the log's subject layout: it must be FNV-1a
	// mod 32 forever, so pin it against the standard library's FNV-1a.
	fnvPartition := func(room string) int {
		h := fnv.New32a()
		h.Write([]byte(room))
		return int(h.Sum32() % keys.Partitions)
	}
	if keys.Partitions != 32 {
		t.Fatalf("Partitions = %d, the log layout says 32", keys.Partitions)
	}
	fixed := []string{"", "a", "lobby", "room-1", strings.Repeat("z", 64)}
	for _, room := range fixed {
		t.Run("fnv "+room, func(t *testing.T) {
			if got, want := keys.Partition(room), fnvPartition(room); got != want {
				t.Errorf("Partition(%q) = %d, want %d", room, got, want)
			}
			if a, b := keys.Partition(room), keys.Partition(room); a != b {
				t.Errorf("Partition(%q) is not stable: %d then %d", room, a, b)
			}
		})
	}
	// A known value, independent of any implementation: FNV-1a("a") = 0xe40c292c.
	if got := keys.Partition("a"); got != 0xe40c292c%32 {
		t.Errorf("Partition(%q) = %d, want %d", "a", got, 0xe40c292c%32)
	}

	const rooms = 10000
	counts := make([]int, keys.Partitions)
	for i := range rooms {
		room := "room-" + strconv.Itoa(i)
		p := keys.Partition(room)
		if p < 0 || p >= keys.Partitions {
			t.Fatalf("Partition(%q) = %d, out of [0, %d)", room, p, keys.Partitions)
		}
		if want := fnvPartition(room); p != want {
			t.Fatalf("Partition(%q) = %d, want %d", room, p, want)
		}
		counts[p]++
	}
	// Every partition is used, and none is far from the mean (312.5).
	for p, n := range counts {
		if n < rooms/keys.Partitions/2 || n > rooms/keys.Partitions*2 {
			t.Errorf("partition %d holds %d of %d rooms; the spread is poor: %v", p, n, rooms, counts)
		}
	}
}
