package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danmaku/danmaku/bucketer"
	"github.com/danmaku/danmaku/internal/keys"
	"github.com/danmaku/danmaku/internal/testserve"
)

// crashRun is the record of a kill -9 test across its runs of the server.
type crashRun struct {
	t     *testing.T
	s     *testserve.Server
	rooms []string

	mu      sync.Mutex        // guards the fields below
	acked   map[string]acked  // room/id → what its 202 said
	texts   map[string]string // text → "acked", or "unknown" when no answer came (killed mid-request)
	seen    map[string][]byte // URL → bytes of a 200 a reader got before a kill
	maxSec  int64             // newest second a 202 named
	minSec  int64
	killedN int
}

// crashClient gives up quickly: the server may be dead.
var crashClient = &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: 10 * time.Second}

// TestKillNineKeepsEveryAcknowledgedMessage runs danmaku serve as a child
// process under concurrent posting (single messages and batches, several
// rooms) while a reader fetches sealed buckets and segments, kills it with
// SIGKILL at a random moment (one of them right after a seal), restarts it
// on the same data directory, and checks after each restart that every
// message that got a 202 is in exactly one sealed bucket, that nothing
// appears that was never posted, and that every object a reader had seen
// has the same bytes.
func TestKillNineKeepsEveryAcknowledgedMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("kill -9 test takes about a minute")
	}
	// The embedded log without --log-fsync: an acknowledged entry is in the
	// page cache, which survives the process. Posting is not rate limited
	// here: the point is volume.
	s := testserve.Start(t, "--anon-rate", "0", "--word-list", "off")
	c := &crashRun{t: t, s: s, rooms: []string{"k1", "k2", "k3"},
		acked: map[string]acked{}, texts: map[string]string{}, seen: map[string][]byte{}}
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 7))
	const kills = 4
	for iter := 0; iter < kills; iter++ {
		ctx, stop := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() { defer wg.Done(); c.post(ctx, iter, g, rand.New(rand.NewPCG(uint64(seed), uint64(iter*10+g)))) }()
		}
		wg.Add(1)
		go func() { defer wg.Done(); c.read(ctx) }()

		var how string
		if iter%2 == 1 {
			// Right after a seal: watch head and kill the moment it moves.
			time.Sleep(time.Duration(500+rng.IntN(1500)) * time.Millisecond)
			c.waitForSeal(ctx)
			how = "right after a seal"
		} else {
			d := time.Duration(700+rng.IntN(3300)) * time.Millisecond
			time.Sleep(d)
			how = "after " + d.String()
		}
		s.Kill()
		stop()
		wg.Wait()
		c.mu.Lock()
		c.killedN++
		n := len(c.acked)
		c.mu.Unlock()
		t.Logf("kill %d (%s): %d messages acknowledged so far", iter+1, how, n)
		s.Restart()
		c.verify()
		if t.Failed() {
			return
		}
	}
}

// post sends single messages and batches of up to five to random rooms
// until ctx ends, recording each text as acknowledged or unknown.
func (c *crashRun) post(ctx context.Context, iter, g int, rng *rand.Rand) {
	for n := 0; ctx.Err() == nil; n++ {
		room := c.rooms[rng.IntN(len(c.rooms))]
		size := 1
		if rng.IntN(3) == 0 {
			size = 2 + rng.IntN(4)
		}
		var texts []string
		for i := 0; i < size; i++ {
			texts = append(texts, fmt.Sprintf("kill%d-g%d-n%d-%d 弹幕", iter, g, n, i))
		}
		var body []byte
		if size == 1 && rng.IntN(2) == 0 {
			body, _ = json.Marshal(map[string]string{"text": texts[0]})
		} else {
			var items []map[string]string
			for _, s := range texts {
				items = append(items, map[string]string{"text": s})
			}
			body, _ = json.Marshal(items)
		}
		c.mu.Lock()
		for _, s := range texts {
			c.texts[s] = "unknown"
		}
		c.mu.Unlock()
		resp, err := crashClient.Post(c.s.Base+"/v1/rooms/"+room+"/messages", "application/json", bytes.NewReader(body))
		if err != nil {
			continue // killed: these texts may or may not be in the log
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusAccepted {
			if err == nil && resp.StatusCode < 500 {
				c.t.Errorf("post to %s: %d %s", room, resp.StatusCode, b)
			}
			continue
		}
		var ids []Accepted
		if b[0] == '[' || bytes.HasPrefix(b, []byte(`{"messages"`)) {
			var ab struct{ Messages []Accepted }
			json.Unmarshal(b, &ab)
			ids = ab.Messages
		} else {
			var a Accepted
			json.Unmarshal(b, &a)
			ids = []Accepted{a}
		}
		if len(ids) != len(texts) {
			c.t.Errorf("202 %s for %d messages", b, len(texts))
			continue
		}
		c.mu.Lock()
		for i, a := range ids {
			key := room + "/" + a.ID
			if _, dup := c.acked[key]; dup {
				c.t.Errorf("id %s acknowledged twice", key)
			}
			c.acked[key] = acked{room: room, text: texts[i], id: a.ID, second: a.Second}
			c.texts[texts[i]] = "acked"
			if c.minSec == 0 || a.Second < c.minSec {
				c.minSec = a.Second
			}
			c.maxSec = max(c.maxSec, a.Second)
		}
		c.mu.Unlock()
		time.Sleep(time.Duration(10+rng.IntN(40)) * time.Millisecond)
	}
}

// Accepted is a 202's message.
type Accepted struct {
	ID     string `json:"id"`
	Second int64  `json:"second"`
}

// read fetches every newly sealed bucket (and segment) of every room, as a
// player would, recording the bytes of each 200.
func (c *crashRun) read(ctx context.Context) {
	next := map[string]int64{}
	for ctx.Err() == nil {
		for _, room := range c.rooms {
			sealed, ok := c.head(room)
			if !ok {
				continue
			}
			from := next[room]
			if from == 0 || from < sealed-20 {
				from = sealed - 5
			}
			for sec := from; sec <= sealed && ctx.Err() == nil; sec++ {
				c.fetch(keys.Bucket, room, sec)
				if (sec+1)%keys.SegmentSeconds == 0 {
					c.fetch(keys.Segment, room, keys.SegmentStart(sec))
				}
				next[room] = sec + 1
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *crashRun) head(room string) (int64, bool) {
	resp, err := crashClient.Get(c.s.Base + "/v1/rooms/" + room + "/head")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	var h struct{ Sealed int64 }
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&h) != nil {
		return 0, false
	}
	return h.Sealed, true
}

func (c *crashRun) fetch(kind keys.Kind, room string, second int64) {
	url := c.s.Base + "/" + keys.Key(kind, room, second)
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := crashClient.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.seen[url]; ok && !bytes.Equal(prev, b) {
		c.t.Errorf("%s changed bytes between two reads", url)
	}
	c.seen[url] = b
}

// waitForSeal returns as soon as room k1's sealed second moves.
func (c *crashRun) waitForSeal(ctx context.Context) {
	first, _ := c.head(c.rooms[0])
	deadline := time.Now().Add(5 * time.Second)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		if s, ok := c.head(c.rooms[0]); ok && s > first {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// verify waits for the restarted writer to seal and store past every
// acknowledged second, then checks the invariants over everything so far.
func (c *crashRun) verify() {
	t := c.t
	c.mu.Lock()
	minSec, maxSec := c.minSec, c.maxSec
	c.mu.Unlock()
	last := maxSec + 2
	deadline := time.Now().Add(60 * time.Second)
	for metric(t, c.s.Base, "danmaku_publisher_published_second") < float64(last) {
		if time.Now().After(deadline) {
			t.Fatalf("after restart, second %d was not published within 60s", last)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Every object a reader saw before a kill has the same bytes now.
	c.mu.Lock()
	seen := make(map[string][]byte, len(c.seen))
	for k, v := range c.seen {
		seen[k] = v
	}
	c.mu.Unlock()
	for url, want := range seen {
		f := get(t, url)
		if f.status != http.StatusOK || !bytes.Equal(f.body, want) {
			t.Errorf("%s: %d after the restart, and %s the bytes read before", url, f.status,
				map[bool]string{true: "the same as", false: "not"}[bytes.Equal(f.body, want)])
		}
	}
	// Every acknowledged message exactly once; nothing never posted.
	found := map[string]int{}
	texts := map[string]int{}
	for _, room := range c.rooms {
		for sec := minSec - 1; sec <= last; sec++ {
			f := get(t, bucketURL(c.s.Base, room, sec))
			if f.status != http.StatusOK {
				t.Fatalf("%s bucket %d: %d %s", room, sec, f.status, f.body)
			}
			b, err := bucketer.DecodeGzip(f.body)
			if err != nil {
				t.Fatalf("%s bucket %d: %v", room, sec, err)
			}
			for _, m := range b.Messages {
				found[room+"/"+m.ID]++
				texts[m.Text]++
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	lost := 0
	for key, a := range c.acked {
		if n := found[key]; n != 1 {
			lost++
			if lost <= 5 {
				t.Errorf("message %s (%q, 202 second %d) is in %d buckets", key, a.text, a.second, n)
			}
		}
	}
	unknownKept := 0
	for text, n := range texts {
		state, posted := c.texts[text]
		switch {
		case !strings.HasPrefix(text, "kill") || !posted:
			t.Errorf("a bucket holds %q, which was never posted", text)
		case n != 1:
			t.Errorf("%q is in %d bucket messages", text, n)
		case state == "unknown":
			unknownKept++
		}
	}
	t.Logf("after %d kills: %d acknowledged messages each in exactly one bucket (%d lost); %d objects read before kills unchanged; %d messages posted during a kill made it in",
		c.killedN, len(c.acked), lost, len(seen), unknownKept)
}
