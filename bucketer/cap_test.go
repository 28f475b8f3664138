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

// capLog is a log with one hot room: in each of ten seconds, 60 entries of
// one message (a third of them the same "233333"), a batch of 5 with a
// repeat inside, and 3 posts from a moderator with priority; plus a quiet
// room under the cap. It ends with a tick that seals everything.
func capLog() []logstream.Entry {
	var log []logstream.Entry
	seq := uint64(0)
	add := func(sec int64, ms int, room string, p *logstream.Post) {
		seq++
		e := logstream.Entry{Seq: seq, Time: at(sec, ms), Room: room}
		if p != nil {
			e.Data, _ = logstream.EncodePost(p)
		}
		log = append(log, e)
	}
	for s := int64(0); s < 10; s++ {
		sec := base + s
		for i := 0; i < 60; i++ {
			text := fmt.Sprintf("msg %d.%d", s, i)
			if i%3 == 0 {
				text = "233333"
			}
			add(sec, i*10, "hot", &logstream.Post{UserID: fmt.Sprintf("u%d", i%7), Messages: []logstream.Message{{Text: text, Color: 0xFFFFFF}}})
			if i == 30 {
				add(sec, 301, "hot", &logstream.Post{UserID: "batcher", Messages: []logstream.Message{
					{Text: "b1"}, {Text: "233333"}, {Text: "b3"}, {Text: "b3"}, {Text: "b5"}}})
				for k := 0; k < 3; k++ {
					add(sec, 302+k, "hot", &logstream.Post{UserID: "mod", Badges: []string{"moderator"}, Priority: true,
						Messages: []logstream.Message{{Text: "233333"}}})
				}
			}
		}
		add(sec, 900, "calm", &logstream.Post{UserID: "c", Messages: []logstream.Message{{Text: "hi"}, {Text: "hi"}}})
	}
	add(base+30, 0, "", nil)
	return log
}

// postedPerSecond is how many messages capLog posts to "hot" each second.
const postedPerSecond = 60 + 5 + 3

func sealAll(cfg bucketer.SealerConfig, log []logstream.Entry) map[string]bucketer.Object {
	s := bucketer.NewSealer(cfg)
	out := map[string]bucketer.Object{}
	for _, e := range log {
		objs, _, _ := s.Add(e)
		for _, o := range objs {
			out[o.Key] = o
		}
	}
	return out
}

func TestCapAccountsForEveryMessage(t *testing.T) {
	const perSecond = 20
	log := capLog()
	sealed := sealAll(bucketer.SealerConfig{Cap: bucketer.Cap{PerSecond: perSecond}}, log)
	uncapped := sealAll(bucketer.SealerConfig{}, log)
	folded := 0
	if len(sealed) != len(uncapped) {
		t.Fatalf("%d objects with the cap, %d without", len(sealed), len(uncapped))
	}
	for s := int64(0); s < 10; s++ {
		key := keys.Key(keys.Bucket, "hot", base+s)
		o, ok := sealed[key]
		if !ok {
			t.Fatalf("%s not sealed", key)
		}
		b := decode(t, o)
		if len(b.Messages) != perSecond {
			t.Errorf("%s keeps %d messages, want the cap %d", key, len(b.Messages), perSecond)
		}
		accounted, priority := b.Dropped, 0
		texts := map[string]bool{}
		for _, m := range b.Messages {
			accounted += max(m.Count, 1)
			if m.UserID == "mod" {
				priority++
				if m.Count != 0 {
					t.Errorf("%s: a priority message was folded: %+v", key, m)
				}
				continue
			}
			if texts[m.Text] {
				t.Errorf("%s: text %q kept twice; identical texts should fold", key, m.Text)
			}
			texts[m.Text] = true
		}
		if priority != 3 {
			t.Errorf("%s keeps %d priority messages, want all 3", key, priority)
		}
		if accounted != postedPerSecond {
			t.Errorf("%s accounts for %d messages (kept + folded + dropped %d), %d were posted", key, accounted, b.Dropped, postedPerSecond)
		}
		if o.Dropped != b.Dropped || o.Dropped == 0 || o.Dropped+o.Folded+len(b.Messages) != postedPerSecond {
			t.Errorf("%s: object counts dropped %d folded %d, body dropped %d", key, o.Dropped, o.Folded, b.Dropped)
		}
		folded += o.Folded
		// Every kept message is one the log holds, with its own id.
		all := decode(t, uncapped[key])
		ids := map[string]string{}
		for _, m := range all.Messages {
			ids[m.ID] = m.Text
		}
		for _, m := range b.Messages {
			if text, ok := ids[m.ID]; !ok || text != m.Text {
				t.Errorf("%s: kept message %s %q is not the log's (%q)", key, m.ID, m.Text, text)
			}
		}
	}
	if folded == 0 {
		t.Error("no second folded a repeated text into a kept one")
	}
	// A room under the cap is untouched, folding included.
	for key, o := range uncapped {
		if _, room, _, _ := keys.Parse(key); room == "calm" && !bytes.Equal(sealed[key].Body, o.Body) {
			t.Errorf("%s changed under the cap", key)
		}
	}
	// The segment holds exactly what its buckets hold, and their dropped.
	seg := decode(t, sealed[keys.Key(keys.Segment, "hot", base)])
	var fromBuckets []bucketer.Message
	dropped := 0
	for s := int64(0); s < 10; s++ {
		b := decode(t, sealed[keys.Key(keys.Bucket, "hot", base+s)])
		fromBuckets = append(fromBuckets, b.Messages...)
		dropped += b.Dropped
	}
	if seg.Dropped != dropped || len(seg.Messages) != len(fromBuckets) {
		t.Fatalf("segment: %d messages, dropped %d; buckets: %d, dropped %d", len(seg.Messages), seg.Dropped, len(fromBuckets), dropped)
	}
	for i := range fromBuckets {
		a, b := seg.Messages[i], fromBuckets[i]
		if a.ID != b.ID || a.Text != b.Text || a.Count != b.Count || a.Second != b.Second || a.OffsetMS != b.OffsetMS {
			t.Errorf("segment message %d is %+v, bucket has %+v", i, a, b)
		}
	}
}

// TestCapIsDeterministic: a second sealer over the same log (a writer after
// failover, or backfill), and one that starts at a segment boundary as a
// restarted writer does, seal the same bytes; so does a rebuild from the
// exported lines.
func TestCapIsDeterministic(t *testing.T) {
	cfg := bucketer.SealerConfig{Cap: bucketer.Cap{PerSecond: 15}}
	log := capLog()
	a := sealAll(cfg, log)
	b := sealAll(cfg, log)
	for key, o := range a {
		if !bytes.Equal(o.Body, b[key].Body) {
			t.Errorf("%s differs between two sealers", key)
		}
	}
	// A rebuild from a later start: everything from the fifth second on.
	var tail []logstream.Entry
	for _, e := range log {
		if e.Time.Unix() >= base+5 {
			tail = append(tail, e)
		}
	}
	c := sealAll(cfg, tail)
	for key, o := range c {
		if _, _, sec, _ := keys.Parse(key); sec >= base+5 && !bytes.Equal(o.Body, a[key].Body) {
			t.Errorf("%s differs when sealing starts later", key)
		}
	}
	// Export and rebuild.
	msgs := map[string][]bucketer.Message{}
	dropped := map[string]map[int64]int{}
	for _, o := range a {
		if o.Kind != keys.Bucket {
			continue
		}
		body := decode(t, o)
		for _, m := range body.Messages {
			line, _ := json.Marshal(bucketer.Exported{Room: body.Room, Message: m})
			var back bucketer.Exported
			if err := json.Unmarshal(line, &back); err != nil {
				t.Fatal(err)
			}
			msgs[back.Room] = append(msgs[back.Room], back.Message)
		}
		if body.Dropped > 0 {
			if dropped[body.Room] == nil {
				dropped[body.Room] = map[int64]int{}
			}
			dropped[body.Room][body.Start] = body.Dropped
		}
	}
	for room, ms := range msgs {
		objs, err := bucketer.ObjectsWithDropped(room, ms, dropped[room], nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if !bytes.Equal(o.Body, a[o.Key].Body) {
				t.Errorf("%s rebuilt from its export with different bytes", o.Key)
			}
		}
	}
}

func TestCapPriorityAboveTheCap(t *testing.T) {
	// Priority posts alone exceed the cap: they are all kept and every other
	// message is dropped, still accounted for.
	var log []logstream.Entry
	for i := 0; i < 8; i++ {
		p := &logstream.Post{UserID: fmt.Sprint("u", i), Priority: i < 5, Messages: []logstream.Message{{Text: fmt.Sprint("t", i)}}}
		data, _ := logstream.EncodePost(p)
		log = append(log, logstream.Entry{Seq: uint64(i + 1), Time: at(base, i), Room: "r", Data: data})
	}
	log = append(log, logstream.Entry{Seq: 9, Time: at(base+20, 0)})
	objs := sealAll(bucketer.SealerConfig{Cap: bucketer.Cap{PerSecond: 3}}, log)
	b := decode(t, objs[keys.Key(keys.Bucket, "r", base)])
	if len(b.Messages) != 5 || b.Dropped != 3 {
		t.Fatalf("kept %d, dropped %d; want the 5 priority messages kept and 3 dropped", len(b.Messages), b.Dropped)
	}
}
