package cmd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/danmaku/danmaku/bucketer"
	"github.com/danmaku/danmaku/internal/keys"
	"github.com/danmaku/danmaku/internal/natstest"
	"github.com/danmaku/danmaku/internal/testserve"
)

// cluster is a scaled-out deployment: a three-node NATS JetStream cluster,
// a shared store, and danmaku processes in their roles.
type cluster struct {
	t       *testing.T
	nats    *natstest.Cluster
	ingest  []*testserve.Server
	writers []*testserve.Server
	origins []*testserve.Server

	// out is which ingest and origin the "load balancer" keeps out of
	// rotation while it restarts.
	outMu sync.Mutex
	out   map[*testserve.Server]bool
}

func startCluster(t *testing.T) *cluster {
	c := &cluster{t: t, nats: natstest.Start(t, 3), out: map[*testserve.Server]bool{}}
	common := []string{"--nats", c.nats.NATSFlag(), "--store", "file://" + t.TempDir()}
	role := func(r string) []string { return append([]string{"--role", r}, common...) }
	// Writers first: origins are ready once every partition has a watermark.
	c.writers = []*testserve.Server{testserve.Start(t, role("writer")...), testserve.Start(t, role("writer")...)}
	c.origins = []*testserve.Server{testserve.Start(t, role("origin")...), testserve.Start(t, role("origin")...)}
	c.ingest = []*testserve.Server{testserve.Start(t, role("ingest")...), testserve.Start(t, role("ingest")...)}
	return c
}

func (c *cluster) inRotation(list []*testserve.Server) []*testserve.Server {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	var out []*testserve.Server
	for _, s := range list {
		if !c.out[s] {
			out = append(out, s)
		}
	}
	return out
}

// restart takes s out of rotation, restarts it gracefully, and puts it back.
func (c *cluster) restart(s *testserve.Server) {
	c.outMu.Lock()
	c.out[s] = true
	c.outMu.Unlock()
	time.Sleep(300 * time.Millisecond) // let requests in flight finish
	s.Restart()
	c.outMu.Lock()
	delete(c.out, s)
	c.outMu.Unlock()
}

// load posts to rooms through the ingest nodes in rotation and reads sealed
// seconds through the origins in rotation, recording what it sees.
type load struct {
	c     *cluster
	rooms []string
	stop  chan struct{}
	wg    sync.WaitGroup

	mu    sync.Mutex
	acked []acked
	seen  map[string][]byte // origin URL path → bytes read (first read)
	fails []string          // failed reads of sealed seconds, failed posts
	reads atomic.Int64
	// sealedAt[room] is a history of (when, head.sealed) seen on origin 0.
	sealedAt map[string][]sealedObs
}

type sealedObs struct {
	at     time.Time
	sealed int64
}

func (c *cluster) startLoad(rooms []string) *load {
	l := &load{c: c, rooms: rooms, stop: make(chan struct{}), seen: map[string][]byte{}, sealedAt: map[string][]sealedObs{}}
	for w := range 4 {
		l.wg.Add(1)
		go l.poster(w)
	}
	for w := range 2 {
		l.wg.Add(1)
		go l.reader(w)
	}
	l.wg.Add(1)
	go l.watchSealing()
	return l
}

func (l *load) stopped() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

func (l *load) fail(format string, a ...any) {
	l.mu.Lock()
	l.fails = append(l.fails, fmt.Sprintf(format, a...))
	l.mu.Unlock()
}

// poster posts single messages and batches, retrying a post that failed with
// the same Idempotency-Key until some ingest node acknowledges it.
func (l *load) poster(w int) {
	defer l.wg.Done()
	for i := 0; !l.stopped(); i++ {
		room := l.rooms[rand.IntN(len(l.rooms))]
		texts := []string{fmt.Sprintf("w%d-%d", w, i)}
		if i%4 == 0 {
			texts = append(texts, fmt.Sprintf("w%d-%d-b", w, i))
		}
		key := fmt.Sprintf("w%d-%d-%d", w, i, time.Now().UnixNano())
		got, ok := l.post(room, texts, key)
		if !ok {
			l.fail("post %s to %s was never acknowledged", key, room)
			continue
		}
		l.mu.Lock()
		l.acked = append(l.acked, got...)
		l.mu.Unlock()
		time.Sleep(time.Duration(50+rand.IntN(100)) * time.Millisecond)
	}
}

func (l *load) post(room string, texts []string, key string) ([]acked, bool) {
	var items []map[string]string
	for _, s := range texts {
		items = append(items, map[string]string{"text": s})
	}
	body, _ := json.Marshal(items)
	for attempt := 0; attempt < 100; attempt++ {
		nodes := l.c.inRotation(l.c.ingest)
		if len(nodes) == 0 {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		n := nodes[rand.IntN(len(nodes))]
		req, _ := http.NewRequest(http.MethodPost, n.Base+"/v1/rooms/"+room+"/messages", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		resp, err := rawClient.Do(req)
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		var ab struct {
			Messages []struct {
				ID     string `json:"id"`
				Second int64  `json:"second"`
			} `json:"messages"`
		}
		err = json.NewDecoder(resp.Body).Decode(&ab)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted || err != nil || len(ab.Messages) != len(texts) {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		var out []acked
		for i, m := range ab.Messages {
			out = append(out, acked{room: room, text: texts[i], id: m.ID, second: m.Second})
		}
		return out, true
	}
	return nil, false
}

type headAnswer struct {
	Sealed int64 `json:"sealed"`
}

func head(base, room string) (int64, error) {
	resp, err := rawClient.Get(base + "/v1/rooms/" + room + "/head")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("head: %s", resp.Status)
	}
	var h headAnswer
	err = json.NewDecoder(resp.Body).Decode(&h)
	return h.Sealed, err
}

// reader asks an origin in rotation for a room's head and reads the last few
// sealed seconds; every one must answer 200, with the same bytes as ever.
func (l *load) reader(w int) {
	defer l.wg.Done()
	for !l.stopped() {
		nodes := l.c.inRotation(l.c.origins)
		if len(nodes) == 0 {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		o := nodes[rand.IntN(len(nodes))]
		room := l.rooms[rand.IntN(len(l.rooms))]
		sealed, err := head(o.Base, room)
		if err != nil {
			if !l.c.isOut(o) {
				l.fail("reader %d: head of %s on %s: %v", w, room, o.Base, err)
			}
			continue
		}
		for sec := sealed - 3; sec <= sealed; sec++ {
			path := fmt.Sprintf("/v1/rooms/%s/buckets/%d.json", room, sec)
			f, err := tryGet(o.Base + path)
			if err != nil {
				if !l.c.isOut(o) {
					l.fail("reader %d: %s on %s: %v", w, path, o.Base, err)
				}
				break
			}
			l.reads.Add(1)
			if f.status != http.StatusOK {
				l.fail("reader %d: sealed %s on %s answered %d %s", w, path, o.Base, f.status, f.body)
				continue
			}
			l.mu.Lock()
			if prev, ok := l.seen[path]; !ok {
				l.seen[path] = f.body
			} else if !bytes.Equal(prev, f.body) {
				l.fails = append(l.fails, fmt.Sprintf("%s changed bytes (now from %s)", path, o.Base))
			}
			l.mu.Unlock()
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *cluster) isOut(s *testserve.Server) bool {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	return c.out[s]
}

func tryGet(url string) (fetched, error) {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := rawClient.Do(req)
	if err != nil {
		return fetched{}, err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return fetched{}, err
	}
	return fetched{status: resp.StatusCode, header: resp.Header, body: buf.Bytes()}, nil
}

// watchSealing polls every room's head on the first origin in rotation.
func (l *load) watchSealing() {
	defer l.wg.Done()
	for !l.stopped() {
		nodes := l.c.inRotation(l.c.origins)
		if len(nodes) > 0 {
			for _, room := range l.rooms {
				if s, err := head(nodes[0].Base, room); err == nil {
					l.mu.Lock()
					l.sealedAt[room] = append(l.sealedAt[room], sealedObs{time.Now(), s})
					l.mu.Unlock()
				}
			}
		}
		time.Sleep(150 * time.Millisecond)
	}
}

// longestStallSince is the longest time any room's head.sealed stood still
// in a stretch that ended after t0.
func (l *load) longestStallSince(t0 time.Time) (time.Duration, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var worst time.Duration
	where := ""
	for room, obs := range l.sealedAt {
		var since time.Time
		var last int64 = -1
		for _, o := range obs {
			if o.sealed != last {
				last, since = o.sealed, o.at
				continue
			}
			if d := o.at.Sub(since); o.at.After(t0) && d > worst {
				worst, where = d, room
			}
		}
	}
	return worst, where
}

// logStalls logs, per room, stalls of more than 1.5 s, relative to t0.
func (l *load) logStalls(t *testing.T, t0 time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for room, obs := range l.sealedAt {
		var since time.Time
		var last int64 = -1
		for _, o := range obs {
			if o.sealed != last {
				if !since.IsZero() && o.at.After(t0) && o.at.Sub(since) > 1500*time.Millisecond {
					t.Logf("room %s (partition %d): sealed stood at %d from %+.1fs to %+.1fs", room, keysPartition(room), last,
						since.Sub(t0).Seconds(), o.at.Sub(t0).Seconds())
				}
				last, since = o.sealed, o.at
			}
		}
	}
}

func (l *load) finish() {
	close(l.stop)
	l.wg.Wait()
}

// settle waits until every origin has sealed past every acknowledged second.
func (c *cluster) settle(acked []acked) {
	c.t.Helper()
	last := map[string]int64{}
	for _, a := range acked {
		last[a.room] = max(last[a.room], a.second)
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, o := range c.origins {
		for room, sec := range last {
			for {
				s, err := head(o.Base, room)
				if err == nil && s >= sec {
					break
				}
				if time.Now().After(deadline) {
					c.t.Fatalf("%s: room %s not sealed through %d within 60s (head %d, %v)", o.Base, room, sec, s, err)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
}

// checkAll reads every second of every room on both origins: each
// acknowledged message appears exactly once, nothing else appears, and both
// origins serve the same bytes.
func (c *cluster) checkAll(acked []acked) {
	c.t.Helper()
	byRoom := map[string]map[string]int{}
	lo, hi := map[string]int64{}, map[string]int64{}
	for _, a := range acked {
		if byRoom[a.room] == nil {
			byRoom[a.room] = map[string]int{}
			lo[a.room], hi[a.room] = a.second, a.second
		}
		byRoom[a.room][a.id] = 0
		lo[a.room], hi[a.room] = min(lo[a.room], a.second), max(hi[a.room], a.second)
	}
	for room, ids := range byRoom {
		for sec := lo[room] - 1; sec <= hi[room]+1; sec++ {
			path := fmt.Sprintf("/v1/rooms/%s/buckets/%d.json", room, sec)
			var first []byte
			for i, o := range c.origins {
				f := get(c.t, o.Base+path)
				if f.status != http.StatusOK {
					c.t.Errorf("%s on origin %d: %d %s", path, i, f.status, f.body)
					continue
				}
				if i == 0 {
					first = f.body
					continue
				}
				if !bytes.Equal(first, f.body) {
					c.t.Errorf("%s: the origins serve different bytes", path)
				}
			}
			b, err := bucketer.DecodeGzip(first)
			if err != nil {
				c.t.Errorf("%s: %v", path, err)
				continue
			}
			for _, m := range b.Messages {
				if _, ok := ids[m.ID]; !ok {
					c.t.Errorf("%s holds %s, never acknowledged", path, m.ID)
				}
				ids[m.ID]++
			}
		}
		for id, n := range ids {
			if n != 1 {
				c.t.Errorf("room %s: message %s appears %d times", room, id, n)
			}
		}
	}
}

func roomsN(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("room%02d", i))
	}
	return out
}

// TestClusterSurvivesLosingNodes runs three NATS nodes, two ingest nodes,
// two writers and two origins as processes, posts to 20 rooms through both
// ingest nodes and reads through both origins, then kills one NATS node and
// one writer (SIGKILL) mid-run.
func TestClusterSurvivesLosingNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test takes about a minute")
	}
	c := startCluster(t)
	l := c.startLoad(roomsN(20))
	time.Sleep(8 * time.Second)

	// What every reader saw before the kill must not change.
	l.mu.Lock()
	before := map[string][]byte{}
	for k, v := range l.seen {
		before[k] = v
	}
	l.mu.Unlock()
	// First a NATS node. If it led the stream, JetStream elects a new
	// leader (its election timeout is seconds), and every room waits.
	natsKilled := time.Now()
	c.nats.Nodes[1].Kill()
	t.Logf("killed NATS node %s", c.nats.Nodes[1].Name)
	time.Sleep(15 * time.Second)
	stall, room := l.longestStallSince(natsKilled)
	t.Logf("after losing a NATS node, the longest sealing stall was %v (room %s)", stall, room)
	l.logStalls(t, natsKilled)
	if stall > 15*time.Second {
		t.Errorf("sealing stood still for %v after losing a NATS node", stall)
	}

	// Then a writer: the other takes over its partitions.
	writerKilled := time.Now()
	c.writers[0].Kill()
	t.Logf("killed a writer")
	time.Sleep(10 * time.Second)
	l.finish()
	stall, room = l.longestStallSince(writerKilled)
	t.Logf("%d messages acknowledged, %d reads; after losing a writer the longest sealing stall was %v (room %s)",
		len(l.acked), l.reads.Load(), stall, room)
	l.logStalls(t, writerKilled)
	if stall > 5*time.Second {
		t.Errorf("sealing stood still for %v in room %s after losing a writer, want at most 5s", stall, room)
	}
	for _, f := range l.fails {
		t.Error(f)
	}
	c.settle(l.acked)
	c.checkAll(l.acked)
	for path, want := range before {
		f := get(t, c.origins[0].Base+path)
		if !bytes.Equal(f.body, want) {
			t.Errorf("%s, read before the kill, changed", path)
		}
	}
	if len(l.acked) < 200 {
		t.Errorf("only %d messages acknowledged", len(l.acked))
	}
}

// TestClusterRollingRestart restarts every process in turn under load; no
// read of a sealed second fails and no message is lost.
func TestClusterRollingRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test takes about a minute")
	}
	c := startCluster(t)
	l := c.startLoad(roomsN(10))
	time.Sleep(3 * time.Second)
	var order []string
	for _, group := range [][]*testserve.Server{c.ingest, c.writers, c.origins} {
		for _, s := range group {
			c.restart(s)
			order = append(order, s.Base)
			time.Sleep(2 * time.Second)
		}
	}
	l.finish()
	t.Logf("restarted %s; %d messages acknowledged, %d reads", strings.Join(order, " "), len(l.acked), l.reads.Load())
	for _, f := range l.fails {
		t.Error(f)
	}
	c.settle(l.acked)
	c.checkAll(l.acked)
}

func keysPartition(room string) int { return keys.Partition(room) }
