package cmd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danmaku/danmaku/bucketer"
	"github.com/danmaku/danmaku/internal/keys"
	fsstore "github.com/danmaku/danmaku/publisher/fs"
)

// TestRoomCapAccountsForEveryMessage floods one room past --room-cap from
// anonymous posters and a moderator, then checks the accounting the README
// promises: in each second's bucket, the kept messages, the identical texts
// folded into them (dup) and the dropped count add up to exactly the
// messages acknowledged for that second; every kept message was
// acknowledged, none twice; every moderator message is kept. Backfill from
// the log with the same cap, and from an export, rebuild the same bytes;
// with another cap it reports conflicts.
func TestRoomCapAccountsForEveryMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("cap test takes about 20s")
	}
	const roomCap = 15
	dir := t.TempDir()
	s := startServe(t, dir, func(o *serveOptions) {
		o.RoomCap = roomCap
		o.AnonRate = 0
		o.AuthSecret = testSecret
		o.AllowAnonymous = true
	})
	modToken := signToken(t, testSecret, "mod-1", "管理员", "moderator", time.Hour)

	type ack struct {
		text     string
		second   int64
		priority bool
	}
	var mu sync.Mutex
	acks := map[string]ack{}
	postOne := func(body, auth string, texts []string, priority bool) {
		req, _ := http.NewRequest(http.MethodPost, s.base+"/v1/rooms/hot/messages", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := rawClient.Do(req)
		if err != nil {
			t.Errorf("post: %v", err)
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Errorf("post: %d %s", resp.StatusCode, b)
			return
		}
		var ids []Accepted
		if bytes.HasPrefix(b, []byte(`{"messages"`)) {
			var ab struct{ Messages []Accepted }
			json.Unmarshal(b, &ab)
			ids = ab.Messages
		} else {
			var a Accepted
			json.Unmarshal(b, &a)
			ids = []Accepted{a}
		}
		mu.Lock()
		for i, a := range ids {
			acks[a.ID] = ack{text: texts[i], second: a.Second, priority: priority}
		}
		mu.Unlock()
	}
	// Start just after a segment boundary so whole segments are covered.
	for time.Now().Unix()%10 != 0 {
		time.Sleep(20 * time.Millisecond)
	}
	from := time.Now().Unix()
	stop := time.Now().Add(4 * time.Second)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(stop); i++ {
				text := fmt.Sprintf("w%d msg %d", w, i)
				if i%3 == 0 {
					text = "233333" // folds
				}
				if i%5 == 0 {
					texts := []string{text, fmt.Sprintf("w%d batch %d", w, i), "awsl"}
					body, _ := json.Marshal([]map[string]string{{"text": texts[0]}, {"text": texts[1]}, {"text": texts[2]}})
					postOne(string(body), "", texts, false)
				} else {
					postOne(`{"text":"`+text+`"}`, "", []string{text}, false)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; time.Now().Before(stop); i++ {
			postOne(`{"text":"233333"}`, modToken, []string{"233333"}, true) // a moderator's repeat is kept as is
			time.Sleep(300 * time.Millisecond)
		}
	}()
	wg.Wait()
	to := keys.SegmentStart(time.Now().Unix()) + keys.SegmentSeconds - 1
	for time.Now().Unix() < to+2 {
		time.Sleep(100 * time.Millisecond)
	}
	waitPublished(t, s.base, to)
	if n := metric(t, s.base, "danmaku_writer_dropped_messages_total"); n == 0 {
		t.Error("danmaku_writer_dropped_messages_total is 0 after flooding past the cap")
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}

	st, err := fsstore.New(filepath.Join(dir, "store"))
	if err != nil {
		t.Fatal(err)
	}
	original := storeState(t, st, "hot")
	perSecond := map[int64]int{}
	for _, a := range acks {
		perSecond[a.second]++
	}
	kept := map[string]bool{}
	capped := 0
	for sec, posted := range perSecond {
		gz, ok := original[keys.Key(keys.Bucket, "hot", sec)]
		if !ok {
			t.Errorf("second %d: %d messages acknowledged, no bucket", sec, posted)
			continue
		}
		b, err := bucketer.DecodeGzip(gz)
		if err != nil {
			t.Fatal(err)
		}
		accounted := b.Dropped
		nonPriority := 0
		for _, m := range b.Messages {
			a, ok := acks[m.ID]
			switch {
			case !ok:
				t.Errorf("second %d holds %s, which was never acknowledged", sec, m.ID)
			case kept[m.ID]:
				t.Errorf("%s kept twice", m.ID)
			case a.text != m.Text || a.second != sec:
				t.Errorf("%s is %q in %d; posted %q in %d", m.ID, m.Text, sec, a.text, a.second)
			}
			kept[m.ID] = true
			accounted += max(m.Count, 1)
			if !a.priority {
				nonPriority++
			}
		}
		if accounted != posted {
			t.Errorf("second %d: kept + folded + dropped = %d, but %d messages were acknowledged", sec, accounted, posted)
		}
		if posted > roomCap {
			capped++
			if nonPriority > roomCap {
				t.Errorf("second %d keeps %d messages besides priority ones, over the cap %d", sec, nonPriority, roomCap)
			}
		}
	}
	for id, a := range acks {
		if a.priority && !kept[id] {
			t.Errorf("moderator message %s was not kept", id)
		}
	}
	if capped < 2 {
		t.Fatalf("only %d seconds went over the cap; the test did not flood", capped)
	}
	t.Logf("%d messages acknowledged over %d seconds; %d seconds over the cap of %d kept %d messages, every one accounted for",
		len(acks), len(perSecond), capped, roomCap, len(kept))

	// Backfill from the log with the same cap: the same bytes.
	rangeArgs := []string{"--room", "hot", "--from", fmt.Sprint(from), "--to", fmt.Sprint(to)}
	rebuilt := t.TempDir()
	code, out, stderr := cli(t, append([]string{"backfill", "--data", dir, "--store", "file://" + rebuilt, "--room-cap", fmt.Sprint(roomCap)}, rangeArgs...)...)
	if code != 0 {
		t.Fatalf("backfill: %d %s %s", code, out, stderr)
	}
	rst, _ := fsstore.New(rebuilt)
	same := func(how string, got map[string][]byte) {
		t.Helper()
		for k, want := range original {
			if !bytes.Equal(got[k], want) {
				t.Errorf("%s: %s differs", how, k)
			}
		}
		if len(got) != len(original) {
			t.Errorf("%s: %d objects, serve stored %d", how, len(got), len(original))
		}
	}
	same("backfill from the log", storeState(t, rst, "hot"))

	// Through an export (which carries each bucket's dropped count).
	export := filepath.Join(t.TempDir(), "hot.jsonl")
	if code, _, stderr := cli(t, append([]string{"export", "--data", dir, "--output", export}, rangeArgs...)...); code != 0 {
		t.Fatalf("export: %s", stderr)
	}
	fromExport := t.TempDir()
	if code, out, stderr := cli(t, append([]string{"backfill", "--input", export, "--store", "file://" + fromExport}, rangeArgs...)...); code != 0 {
		t.Fatalf("backfill --input: %d %s %s", code, out, stderr)
	}
	est, _ := fsstore.New(fromExport)
	same("backfill from the export", storeState(t, est, "hot"))

	// Another cap seals other bytes: backfill says so and changes nothing.
	code, out, _ = cli(t, append([]string{"backfill", "--data", dir, "--store", "file://" + filepath.Join(dir, "store"), "--room-cap", "0", "--dry-run"}, rangeArgs...)...)
	if code != 1 || strings.Contains(out, " 0 conflicts") {
		t.Errorf("backfill with another cap: exit %d, %q; want conflicts", code, out)
	}
}
