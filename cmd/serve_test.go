package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/danmaku/danmaku/bucketer"
)

// server is a danmaku serve running in this process.
type server struct {
	base string
	stop func() error
}

func startServe(t testing.TB, data string, mutate ...func(*serveOptions)) *server {
	t.Helper()
	opts := &serveOptions{}
	opts.AddFlags(pflag.NewFlagSet("serve", pflag.ContinueOnError)) // the command's own defaults
	opts.Listen = "127.0.0.1:0"
	opts.Data = data
	opts.LogLevel = "warn"
	for _, m := range mutate {
		m(opts)
	}
	addr := make(chan string, 1)
	opts.onListen = func(a string) { addr <- a }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runServe(ctx, opts, &testWriter{t: t}) }()
	var s *server
	select {
	case a := <-addr:
		s = &server{base: "http://" + a}
	case err := <-done:
		cancel()
		t.Fatalf("serve exited at start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("serve did not start listening within 30s")
	}
	var once sync.Once
	var stopErr error
	s.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(30 * time.Second):
				stopErr = fmt.Errorf("serve did not stop within 30s")
			}
		})
		return stopErr
	}
	t.Cleanup(func() { s.stop() })
	waitReady(t, s.base)
	return s
}

func waitReady(t testing.TB, base string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s/readyz did not answer 200 within 20s", base)
}

// testWriter sends the server's log lines to the test log.
type testWriter struct{ t testing.TB }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", bytes.TrimRight(p, "\n"))
	return len(p), nil
}

// rawClient does not negotiate compression itself, so tests see the bytes
// the server sent.
var rawClient = &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: 30 * time.Second}

type acked struct {
	room, text, id string
	second         int64
}

func post(t testing.TB, base, room, body string) (int, []byte) {
	t.Helper()
	resp, err := rawClient.Post(base+"/v1/rooms/"+room+"/messages", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// postMessages posts texts to room, one by one or as one batch, and returns
// what the server acknowledged.
func postMessages(t testing.TB, base, room string, texts []string, batch bool) []acked {
	t.Helper()
	var out []acked
	if batch {
		var items []map[string]string
		for _, s := range texts {
			items = append(items, map[string]string{"text": s})
		}
		body, _ := json.Marshal(items)
		code, resp := post(t, base, room, string(body))
		if code != http.StatusAccepted {
			t.Fatalf("batch post: %d %s", code, resp)
		}
		var ab struct {
			Messages []struct {
				ID     string `json:"id"`
				Second int64  `json:"second"`
			} `json:"messages"`
		}
		if err := json.Unmarshal(resp, &ab); err != nil || len(ab.Messages) != len(texts) {
			t.Fatalf("batch answer %s: %v", resp, err)
		}
		for i, m := range ab.Messages {
			out = append(out, acked{room: room, text: texts[i], id: m.ID, second: m.Second})
		}
		return out
	}
	for _, s := range texts {
		body, _ := json.Marshal(map[string]string{"text": s, "user_id": "u-" + room, "user_name": "用户"})
		code, resp := post(t, base, room, string(body))
		if code != http.StatusAccepted {
			t.Fatalf("post: %d %s", code, resp)
		}
		var a struct {
			ID     string `json:"id"`
			Second int64  `json:"second"`
		}
		if err := json.Unmarshal(resp, &a); err != nil || a.ID == "" || a.Second == 0 {
			t.Fatalf("answer %s: %v", resp, err)
		}
		out = append(out, acked{room: room, text: s, id: a.ID, second: a.Second})
	}
	return out
}

type fetched struct {
	status int
	header http.Header
	body   []byte
	took   time.Duration
}

func get(t testing.TB, url string, hdr ...string) fetched {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Accept-Encoding", "gzip")
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	start := time.Now()
	resp, err := rawClient.Do(req)
	if err != nil {
		t.Fatalf("get %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return fetched{status: resp.StatusCode, header: resp.Header, body: b, took: time.Since(start)}
}

func bucketURL(base, room string, second int64) string {
	return fmt.Sprintf("%s/v1/rooms/%s/buckets/%d.json", base, room, second)
}

// checkImmutable asserts the headers every sealed 200 carries.
func checkImmutable(t *testing.T, url string, f fetched) {
	t.Helper()
	if f.status != http.StatusOK {
		t.Fatalf("%s: status %d %s", url, f.status, f.body)
	}
	want := map[string]string{
		"Content-Encoding": "gzip",
		"Content-Type":     "application/json",
		"Cache-Control":    "public, max-age=31536000, immutable",
	}
	for k, v := range want {
		if got := f.header.Get(k); got != v {
			t.Errorf("%s: %s = %q, want %q", url, k, got, v)
		}
	}
	et := f.header.Get("ETag")
	if len(et) < 3 || et[0] != '"' || et[len(et)-1] != '"' {
		t.Errorf("%s: ETag %q is not a strong entity tag", url, et)
	}
}

func TestServeEndToEnd(t *testing.T) {
	s := startServe(t, t.TempDir())
	rooms := []string{"lobby", "game-7", "music_1", "r4", "R-5"}

	// A read of the open second is held until it seals, then answered 200.
	heldDone := make(chan fetched, 1)
	first := postMessages(t, s.base, "lobby", []string{"first! 先来"}, false)[0]
	go func() { heldDone <- get(t, bucketURL(s.base, "lobby", first.second)) }()

	// A few hundred unique messages, several rooms, concurrently, spread
	// over a few seconds, singly and in batches.
	var mu sync.Mutex
	all := []acked{first}
	var wg sync.WaitGroup
	for i, room := range rooms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := 0; round < 6; round++ {
				var texts []string
				for k := 0; k < 10; k++ {
					texts = append(texts, fmt.Sprintf("%s 第%d轮 #%d 🎉 <b>&\"x\"</b>", room, round, k))
				}
				got := postMessages(t, s.base, room, texts, (round+i)%2 == 0)
				mu.Lock()
				all = append(all, got...)
				mu.Unlock()
				time.Sleep(400 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	if len(all) < 300 {
		t.Fatalf("posted %d messages, want at least 300", len(all))
	}

	held := <-heldDone
	checkImmutable(t, "held bucket", held)
	if !containsID(t, held.body, first.id) {
		t.Errorf("held bucket lacks message %s", first.id)
	}

	// Every acknowledged message appears exactly once, in the second its
	// 202 named, and no bucket holds anything else.
	byRoom := map[string]map[string]acked{}
	minS, maxS := all[0].second, all[0].second
	for _, a := range all {
		if byRoom[a.room] == nil {
			byRoom[a.room] = map[string]acked{}
		}
		if _, dup := byRoom[a.room][a.id]; dup {
			t.Fatalf("id %s acknowledged twice in %s", a.id, a.room)
		}
		byRoom[a.room][a.id] = a
		minS, maxS = min(minS, a.second), max(maxS, a.second)
	}
	for _, room := range rooms {
		seen := map[string]int{}
		for sec := minS - 1; sec <= maxS+1; sec++ {
			url := bucketURL(s.base, room, sec)
			f := get(t, url)
			checkImmutable(t, url, f)
			body, err := bucketer.DecodeGzip(f.body)
			if err != nil {
				t.Fatalf("%s: %v", url, err)
			}
			if body.Room != room || body.Start != sec || body.Seconds != 1 {
				t.Errorf("%s: body is room %q start %d seconds %d", url, body.Room, body.Start, body.Seconds)
			}
			for _, m := range body.Messages {
				seen[m.ID]++
				a, ok := byRoom[room][m.ID]
				switch {
				case !ok:
					t.Errorf("%s holds message %s that was never acknowledged", url, m.ID)
				case a.second != sec:
					t.Errorf("message %s is in second %d, its 202 said %d", m.ID, sec, a.second)
				case a.text != m.Text:
					t.Errorf("message %s text %q, posted %q", m.ID, m.Text, a.text)
				}
			}
			// Immutable: a second read gives the same bytes and tag.
			again := get(t, url)
			if !bytes.Equal(again.body, f.body) || again.header.Get("ETag") != f.header.Get("ETag") {
				t.Errorf("%s changed between two reads", url)
			}
		}
		for id := range byRoom[room] {
			if seen[id] != 1 {
				t.Errorf("room %s: message %s appears %d times", room, id, seen[id])
			}
		}
	}

	// Conditional, plain and far-future reads.
	url := bucketURL(s.base, "lobby", first.second)
	f := get(t, url)
	nm := get(t, url, "If-None-Match", f.header.Get("ETag"))
	if nm.status != http.StatusNotModified || len(nm.body) != 0 {
		t.Errorf("If-None-Match: status %d, %d body bytes; want 304 and none", nm.status, len(nm.body))
	}
	plain := get(t, url, "Accept-Encoding", "")
	if plain.status != http.StatusOK || plain.header.Get("Content-Encoding") != "" {
		t.Fatalf("plain read: status %d, Content-Encoding %q", plain.status, plain.header.Get("Content-Encoding"))
	}
	raw, _ := bucketer.Gunzip(f.body)
	if !bytes.Equal(plain.body, raw) {
		t.Errorf("plain body differs from the gunzipped stored body")
	}
	if _, err := bucketer.Decode(plain.body); err != nil {
		t.Errorf("plain body is not a bucket: %v", err)
	}
	far := get(t, bucketURL(s.base, "lobby", time.Now().Unix()+3600))
	if far.status != http.StatusNotFound || far.header.Get("Cache-Control") != "no-store" {
		t.Errorf("far future: status %d Cache-Control %q, want 404 no-store", far.status, far.header.Get("Cache-Control"))
	}
	var e struct{ Code, Message string }
	if json.Unmarshal(far.body, &e) != nil || e.Code == "" || e.Message == "" {
		t.Errorf("far future body %q is not a JSON error", far.body)
	}

	// Head names a sealed second at or after everything above.
	h := get(t, s.base+"/v1/rooms/lobby/head")
	var head struct {
		NowMS         int64 `json:"now_ms"`
		Sealed        int64 `json:"sealed"`
		BucketSeconds int   `json:"bucket_seconds"`
		PollMS        int   `json:"poll_ms"`
	}
	if err := json.Unmarshal(h.body, &head); err != nil {
		t.Fatalf("head %s: %v", h.body, err)
	}
	if head.Sealed < maxS || head.BucketSeconds != 1 || head.PollMS != 1000 || head.NowMS/1000 < head.Sealed {
		t.Errorf("head %+v", head)
	}
	if cc := h.header.Get("Cache-Control"); cc != "public, max-age=1" {
		t.Errorf("head Cache-Control %q", cc)
	}
}

func containsID(t *testing.T, gz []byte, id string) bool {
	t.Helper()
	b, err := bucketer.DecodeGzip(gz)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	for _, m := range b.Messages {
		if m.ID == id {
			return true
		}
	}
	return false
}

func TestServeHoldsTheOpenSecond(t *testing.T) {
	s := startServe(t, t.TempDir())
	// Ask for the second after the current one: nothing can be sealed
	// yet, so the answer must wait for the seal and then be a 200.
	next := time.Now().Unix() + 1
	f := get(t, bucketURL(s.base, "quiet", next))
	checkImmutable(t, "held empty bucket", f)
	if done := time.Now(); done.Before(time.Unix(next+1, 0)) {
		t.Errorf("answered at %v, before second %d ended", done, next)
	}
	b, err := bucketer.DecodeGzip(f.body)
	if err != nil || len(b.Messages) != 0 || b.Start != next {
		t.Errorf("held empty bucket: %+v, %v", b, err)
	}
}

func TestServeRestartKeepsSealedBytes(t *testing.T) {
	dir := t.TempDir()
	s := startServe(t, dir)
	var all []acked
	for i := 0; i < 3; i++ {
		all = append(all, postMessages(t, s.base, "keep", []string{fmt.Sprintf("before %d", i)}, false)...)
		all = append(all, postMessages(t, s.base, "keep", []string{fmt.Sprintf("batch %d a", i), fmt.Sprintf("batch %d b", i)}, true)...)
		time.Sleep(700 * time.Millisecond)
	}
	seconds := map[int64]bool{}
	for _, a := range all {
		seconds[a.second] = true
	}
	before := map[int64][]byte{}
	for sec := range seconds {
		f := get(t, bucketURL(s.base, "keep", sec))
		checkImmutable(t, "before restart", f)
		before[sec] = f.body
	}
	// Posted just before the stop: likely not sealed when the server stops.
	last := postMessages(t, s.base, "keep", []string{"last words"}, false)
	all = append(all, last...)
	if err := s.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}

	s2 := startServe(t, dir)
	for sec, want := range before {
		f := get(t, bucketURL(s2.base, "keep", sec))
		if !bytes.Equal(f.body, want) {
			t.Errorf("bucket %d changed across the restart", sec)
		}
	}
	found := map[string]int{}
	for sec := range seconds {
		seconds[sec] = true
	}
	seconds[last[0].second] = true
	for sec := range seconds {
		f := get(t, bucketURL(s2.base, "keep", sec))
		checkImmutable(t, "after restart", f)
		b, err := bucketer.DecodeGzip(f.body)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range b.Messages {
			found[m.ID]++
		}
	}
	for _, a := range all {
		if found[a.id] != 1 {
			t.Errorf("message %s (%q) appears %d times after restart", a.id, a.text, found[a.id])
		}
	}
}

func TestServeDemoAndFallback(t *testing.T) {
	s := startServe(t, t.TempDir())
	page := get(t, s.base+"/")
	if page.status != http.StatusOK || !strings.HasPrefix(page.header.Get("Content-Type"), "text/html") || !bytes.Contains(page.body, []byte("/demo.js")) {
		t.Errorf("GET /: %d %q", page.status, page.header.Get("Content-Type"))
	}
	js := get(t, s.base+"/danmaku.js")
	if js.status != http.StatusOK || !strings.HasPrefix(js.header.Get("Content-Type"), "text/javascript") {
		t.Errorf("GET /danmaku.js: %d %q", js.status, js.header.Get("Content-Type"))
	}
	for _, path := range []string{"/nope", "/index.htm", "/v1/rooms/x"} {
		f := get(t, s.base+path)
		var e struct{ Code string }
		if f.status != http.StatusNotFound || json.Unmarshal(f.body, &e) != nil || e.Code != "not_found" {
			t.Errorf("GET %s: %d %s, want the JSON 404", path, f.status, f.body)
		}
	}
}
