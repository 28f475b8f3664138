package bucketer

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func sampleEntries() []entry {
	return []entry{
		{seq: 1201, ms: 12, user: "u1", name: "Alice", msgs: []text{{text: "hi", color: DefaultColor, index: -1}}},
		{seq: 1204, ms: 305, user: "u2", name: "小明", msgs: []text{{text: "草", color: 0xFE0302, mode: Top, index: -1}}},
		{seq: 1205, ms: 305, user: "u1", name: "Alice", msgs: []text{
			{text: "哈哈 🎉", color: DefaultColor}, {text: `quote " back \ slash`, color: DefaultColor, mode: Bottom, index: 1}}},
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	raw := encode("lobby", 1764318000, 1, sampleEntries(), 0)
	b, err := Decode(raw)
	if err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	want := []Message{
		{ID: "1201", Second: 1764318000, OffsetMS: 12, UserID: "u1", UserName: "Alice", Text: "hi", Color: DefaultColor},
		{ID: "1204", Second: 1764318000, OffsetMS: 305, UserID: "u2", UserName: "小明", Text: "草", Color: 0xFE0302, Mode: Top},
		{ID: "1205.0", Second: 1764318000, OffsetMS: 305, UserID: "u1", UserName: "Alice", Text: "哈哈 🎉", Color: DefaultColor},
		{ID: "1205.1", Second: 1764318000, OffsetMS: 305, UserID: "u1", UserName: "Alice", Text: `quote " back \ slash`, Color: DefaultColor, Mode: Bottom},
	}
	if b.Room != "lobby" || b.Start != 1764318000 || b.Seconds != 1 {
		t.Errorf("header %+v", b)
	}
	if !reflect.DeepEqual(b.Messages, want) {
		t.Errorf("messages\n got %+v\nwant %+v", b.Messages, want)
	}
	again, err := Encode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, raw) {
		t.Errorf("Encode(Decode(x)) != x\n got %s\nwant %s", again, raw)
	}
}

func TestEncodeLeavesOutDefaultColumns(t *testing.T) {
	raw := string(encode("r", 10, 1, []entry{
		{seq: 5, ms: 1, user: "", name: "", msgs: []text{{text: "a", color: DefaultColor, index: -1}}},
		{seq: 7, ms: 2, user: "", name: "", msgs: []text{{text: "b", color: DefaultColor, index: -1}}},
	}, 0))
	for _, key := range []string{`"count"`, `"user"`, `"color"`, `"mode"`, `"index"`, `"avatar"`, `"badges"`, `"dup"`, `"dropped"`} {
		if strings.Contains(raw, key) {
			t.Errorf("%s present in %s", key, raw)
		}
	}
	if !strings.Contains(raw, `"seq":[5,2]`) || !strings.Contains(raw, `"ms":[1,1]`) {
		t.Errorf("sequences and offsets are not delta-coded: %s", raw)
	}
}

func TestEncodeEmptyAndSegment(t *testing.T) {
	b, err := Decode(encode("r", 1764318000, 1, nil, 0))
	if err != nil || len(b.Messages) != 0 || b.Start != 1764318000 {
		t.Fatalf("empty: %+v %v", b, err)
	}
	seg := encode("r", 1764318000, 10, []entry{{seq: 9, ms: 9123, msgs: []text{{text: "x", color: DefaultColor, index: -1}}}}, 0)
	b, err = Decode(seg)
	if err != nil {
		t.Fatal(err)
	}
	if m := b.Messages[0]; m.Second != 1764318009 || m.OffsetMS != 123 {
		t.Errorf("segment message at %d.%03d, want 1764318009.123", m.Second, m.OffsetMS)
	}
}

func TestAppendStringIsValidJSON(t *testing.T) {
	for _, s := range []string{"", "plain", "\"", "\\", "\x00\x01\x1f", "tab\there", "line\nbreak", "\u2028\u2029", "<script>&", "🎉草", "\xff\xfe bad"} {
		raw := appendString(nil, s)
		var got string
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Errorf("%q encoded as %s: %v", s, raw, err)
			continue
		}
		want := string([]rune(s)) // each invalid byte becomes U+FFFD
		if got != want {
			t.Errorf("%q round-tripped as %q", s, got)
		}
		if bytes.Contains(raw, []byte("\u2028")) || bytes.Contains(raw, []byte("\u2029")) {
			t.Errorf("%q: raw line separators left in %s", s, raw)
		}
	}
}

func TestDecodeRejectsMalformed(t *testing.T) {
	cases := map[string]string{
		"not json":          `{`,
		"version":           `{"v":2,"room":"r","start":1,"seconds":1}`,
		"seconds":           `{"v":1,"room":"r","start":1,"seconds":5}`,
		"bad room":          `{"v":1,"room":"../x","start":1,"seconds":1}`,
		"negative start":    `{"v":1,"room":"r","start":-1,"seconds":1}`,
		"unaligned segment": `{"v":1,"room":"r","start":3,"seconds":10}`,
		"short ms":          `{"v":1,"room":"r","start":1,"seconds":1,"seq":[1,1],"ms":[1],"users":[["",""]],"text":["a","b"]}`,
		"no users":          `{"v":1,"room":"r","start":1,"seconds":1,"seq":[1],"ms":[1],"text":["a"]}`,
		"text count":        `{"v":1,"room":"r","start":1,"seconds":1,"seq":[1],"ms":[1],"users":[["",""]],"text":["a","b"]}`,
		"count zero":        `{"v":1,"room":"r","start":1,"seconds":1,"seq":[1],"count":[0],"ms":[1],"users":[["",""]],"text":[]}`,
		"huge count":        `{"v":1,"room":"r","start":1,"seconds":1,"seq":[1],"count":[99999999],"ms":[1],"users":[["",""]],"text":["a"]}`,
		"ms out of second":  `{"v":1,"room":"r","start":1,"seconds":1,"seq":[1],"ms":[1000],"users":[["",""]],"text":["a"]}`,
		"negative ms":       `{"v":1,"room":"r","start":1,"seconds":1,"seq":[1],"ms":[-1],"users":[["",""]],"text":["a"]}`,
		"zero seq":          `{"v":1,"room":"r","start":1,"seconds":1,"seq":[0],"ms":[1],"users":[["",""]],"text":["a"]}`,
		"seq not rising":    `{"v":1,"room":"r","start":1,"seconds":1,"seq":[5,0],"ms":[1,0],"users":[["",""]],"text":["a","b"]}`,
		"user index":        `{"v":1,"room":"r","start":1,"seconds":1,"seq":[1],"ms":[1],"user":[1],"users":[["",""]],"text":["a"]}`,
		"mode value":        `{"v":1,"room":"r","start":1,"seconds":1,"seq":[1],"ms":[1],"users":[["",""]],"text":["a"],"mode":[3]}`,
		"color count":       `{"v":1,"room":"r","start":1,"seconds":1,"seq":[1],"ms":[1],"users":[["",""]],"text":["a"],"color":[1,2]}`,
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := Decode([]byte(in)); !errors.Is(err, ErrFormat) {
				t.Errorf("Decode(%s) = %v, want ErrFormat", in, err)
			}
		})
	}
}

func TestGzipIsDeterministic(t *testing.T) {
	raw := encode("r", 1, 1, sampleEntries(), 0)
	a, b := Gzip(raw), Gzip(raw)
	if !bytes.Equal(a, b) {
		t.Fatal("two gzips of one body differ")
	}
	if back, err := Gunzip(a); err != nil || !bytes.Equal(back, raw) {
		t.Fatalf("gunzip: %v", err)
	}
	if ETag(a) != ETag(b) || !strings.HasPrefix(ETag(a), `"`) {
		t.Errorf("etag %s", ETag(a))
	}
}

func TestMessageIDs(t *testing.T) {
	good := map[string][2]int64{"1": {1, -1}, "1205": {1205, -1}, "1205.0": {1205, 0}, "1205.17": {1205, 17}}
	for id, want := range good {
		seq, idx, err := ParseMessageID(id)
		if err != nil || int64(seq) != want[0] || int64(idx) != want[1] {
			t.Errorf("ParseMessageID(%q) = %d, %d, %v", id, seq, idx, err)
		}
	}
	for _, id := range []string{"", "0", "01", "-1", "1.", "1.01", "1.x", "x", "1.2.3", "1.-1", "99999999999999999999"} {
		if _, _, err := ParseMessageID(id); err == nil {
			t.Errorf("ParseMessageID(%q) accepted", id)
		}
	}
	if MessageID(7, 0, 1) != "7" || MessageID(7, 2, 3) != "7.2" {
		t.Error("MessageID")
	}
}

func TestEncodeRefusesWhatTheLogCannotHold(t *testing.T) {
	base := Message{ID: "5", Second: 100, UserID: "u", Text: "a", Color: DefaultColor}
	cases := map[string][]Message{
		"bad id":        {{ID: "x", Second: 100, Text: "a"}},
		"outside":       {{ID: "5", Second: 101, Text: "a"}},
		"out of order":  {{ID: "6", Second: 100, Text: "a"}, base},
		"batch differs": {{ID: "5.0", Second: 100, UserID: "a", Text: "a"}, {ID: "5.1", Second: 100, UserID: "b", Text: "b"}},
		"batch reorder": {{ID: "5.1", Second: 100, Text: "a"}, {ID: "5.0", Second: 100, Text: "b"}},
		"lone in batch": {{ID: "5", Second: 100, Text: "a"}, {ID: "5.1", Second: 100, Text: "b"}},
	}
	for name, msgs := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := Encode(&Body{Room: "r", Start: 100, Seconds: 1, Messages: msgs}); err == nil {
				t.Error("accepted")
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(encode("lobby", 1764318000, 1, sampleEntries(), 0))
	f.Add(encode("r", 1764318000, 10, nil, 0))
	f.Add([]byte(`{"v":1,"room":"r","start":1,"seconds":1,"seq":[1],"count":[2],"ms":[1],"users":[["a","b"]],"text":["x","y"]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not wrap ErrFormat", err)
			}
			return
		}
		for _, m := range b.Messages {
			if m.Second < b.Start || m.Second >= b.Start+int64(b.Seconds) || m.OffsetMS < 0 || m.OffsetMS > 999 {
				t.Fatalf("message %+v outside its body %d+%d", m, b.Start, b.Seconds)
			}
			if m.Mode > Bottom || m.Color > 0xFFFFFF {
				t.Fatalf("message %+v has a bad mode or color", m)
			}
		}
		// Whatever decodes re-encodes to a body that decodes the same.
		raw, err := Encode(b)
		if err != nil {
			t.Fatalf("Encode of a decoded body: %v", err)
		}
		b2, err := Decode(raw)
		if err != nil {
			t.Fatalf("re-encoded body does not decode: %v\n%s", err, raw)
		}
		if !reflect.DeepEqual(normalise(b), normalise(b2)) {
			t.Fatalf("re-encoded body differs\n%+v\n%+v", b, b2)
		}
	})
}

// normalise maps texts through UTF-8 repair, as encoding does.
func normalise(b *Body) *Body {
	c := *b
	c.Messages = append([]Message(nil), b.Messages...)
	for i := range c.Messages {
		m := &c.Messages[i]
		m.Text = string([]rune(m.Text))
		m.UserID = string([]rune(m.UserID))
		m.UserName = string([]rune(m.UserName))
	}
	if c.Messages == nil {
		c.Messages = []Message{}
	}
	return &c
}

func TestRedactKeepsTheOtherIDs(t *testing.T) {
	gz := Gzip(encode("lobby", 1764318000, 1, sampleEntries(), 0))
	out, removed, err := Redact(gz, map[string]bool{"1204": true, "1205.0": true, "nope": true})
	if err != nil || removed != 2 {
		t.Fatalf("Redact = %d removed, %v", removed, err)
	}
	b, err := DecodeGzip(out)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range b.Messages {
		ids = append(ids, m.ID)
	}
	if strings.Join(ids, " ") != "1201 1205.1" {
		t.Errorf("ids after redaction: %v", ids)
	}
	if b.Messages[1].Text != `quote " back \ slash` || b.Messages[1].Mode != Bottom {
		t.Errorf("survivor changed: %+v", b.Messages[1])
	}
	// Redacting the same ids again changes nothing; redacting everything
	// leaves no object.
	again, removed, _ := Redact(out, map[string]bool{"1204": true})
	if removed != 0 || !bytes.Equal(again, out) {
		t.Error("a second redaction of gone ids changed the object")
	}
	if none, removed, err := Redact(out, map[string]bool{"1201": true, "1205.1": true}); none != nil || removed != 2 || err != nil {
		t.Errorf("redacting every message = %d bytes, %d, %v; want no object", len(none), removed, err)
	}
}

func TestExtrasRoundTrip(t *testing.T) {
	entries := []entry{
		{seq: 10, ms: 5, user: "u1", name: "Ann", avatar: "https://a.example/1.png", badges: []string{"mod", "member"},
			msgs: []text{{text: "哈哈", color: DefaultColor, index: -1, count: 7}}},
		{seq: 12, ms: 9, user: "u2", name: "Bo", msgs: []text{{text: "hi", color: DefaultColor, index: -1}}},
		{seq: 13, ms: 9, user: "u1", name: "Ann", avatar: "https://a.example/1.png", badges: []string{"mod", "member"},
			msgs: []text{{text: "again", color: DefaultColor, index: -1}}},
	}
	raw := encode("r", 100, 1, entries, 42)
	b, err := Decode(raw)
	if err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	if b.Dropped != 42 {
		t.Errorf("dropped %d", b.Dropped)
	}
	m := b.Messages
	if m[0].Avatar != "https://a.example/1.png" || strings.Join(m[0].Badges, ",") != "mod,member" || m[0].Count != 7 {
		t.Errorf("first message %+v", m[0])
	}
	if m[1].Avatar != "" || m[1].Badges != nil || m[1].Count != 0 {
		t.Errorf("second message %+v", m[1])
	}
	if m[2].Avatar != m[0].Avatar || !strings.Contains(string(raw), `"users":[["u1","Ann"],["u2","Bo"]]`) {
		t.Errorf("the same user is not one row: %s", raw)
	}
	again, err := Encode(b)
	if err != nil || !bytes.Equal(again, raw) {
		t.Errorf("Encode(Decode(x)) != x: %v\n%s\n%s", err, again, raw)
	}
	for name, bad := range map[string]string{
		"dup zero":       `{"v":1,"room":"r","start":1,"seconds":1,"seq":[1],"ms":[1],"users":[["",""]],"text":["a"],"dup":[0]}`,
		"avatar count":   `{"v":1,"room":"r","start":1,"seconds":1,"seq":[1],"ms":[1],"users":[["",""]],"text":["a"],"avatar":["x","y"]}`,
		"badges count":   `{"v":1,"room":"r","start":1,"seconds":1,"seq":[1],"ms":[1],"users":[["",""]],"text":["a"],"badges":[]}`,
		"dropped below0": `{"v":1,"room":"r","start":1,"seconds":1,"dropped":-1}`,
	} {
		if _, err := Decode([]byte(bad)); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
