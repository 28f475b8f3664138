package bucketer_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/danmaku/danmaku/bucketer"
	"github.com/danmaku/danmaku/internal/keys"
	"github.com/danmaku/danmaku/internal/logstream"
)

// TestObjectsFromMessagesMatchTheSealer is what backfill from an export
// rests on: decoding every sealed bucket and rebuilding from those messages
// gives the sealer's bytes, buckets and segments alike, through a JSON
// round trip of the exported lines.
func TestObjectsFromMessagesMatchTheSealer(t *testing.T) {
	s := bucketer.NewSealer(bucketer.SealerConfig{})
	sealed := map[string]bucketer.Object{}
	seq := uint64(0)
	add := func(ms int64, room string, texts ...string) {
		seq++
		e := logstream.Entry{Seq: seq, Time: at(base+ms/1000, int(ms%1000)), Room: room}
		if room != "" {
			p := &logstream.Post{UserID: "u" + room, UserName: "名" + room}
			for i, x := range texts {
				p.Messages = append(p.Messages, logstream.Message{Text: x, Color: uint32(0xFFFFFF - i), Mode: uint8(i % 3)})
			}
			e.Data, _ = logstream.EncodePost(p)
		}
		objs, _, _ := s.Add(e)
		for _, o := range objs {
			sealed[o.Key] = o
		}
	}
	for ms := int64(0); ms < 25000; ms += 137 {
		switch ms % 3 {
		case 0:
			add(ms, "a", fmt.Sprintf("a%d", ms))
		case 1:
			add(ms, "b", fmt.Sprintf("b%d", ms), "second", "third")
		default:
			add(ms, "", "")
		}
	}
	add(40000, "", "")
	msgs := map[string][]bucketer.Message{}
	for _, o := range sealed {
		if o.Kind != keys.Bucket {
			continue
		}
		b, err := bucketer.DecodeGzip(o.Body)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range b.Messages {
			line, _ := json.Marshal(bucketer.Exported{Room: b.Room, Message: m})
			var back bucketer.Exported
			if err := json.Unmarshal(line, &back); err != nil {
				t.Fatal(err)
			}
			msgs[back.Room] = append(msgs[back.Room], back.Message)
		}
	}
	rebuilt := 0
	for room, ms := range msgs {
		objs, err := bucketer.Objects(room, ms, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			want, ok := sealed[o.Key]
			if !ok {
				t.Errorf("rebuilt %s, which was never sealed", o.Key)
				continue
			}
			if !bytes.Equal(o.Body, want.Body) {
				t.Errorf("%s rebuilt with different bytes", o.Key)
			}
			rebuilt++
		}
	}
	if rebuilt != len(sealed) || rebuilt < 40 {
		t.Errorf("rebuilt %d of %d sealed objects", rebuilt, len(sealed))
	}
}
