package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/danmaku/danmaku/bucketer"
	"github.com/danmaku/danmaku/internal/corpus"
)

// benchIngest posts as fast as it can, single messages and then batches of
// 100, into danmaku serve with its embedded JetStream, and times how long
// until the writer has sealed every accepted message.
func benchIngest(ctx context.Context, e *env) *section {
	s := &section{id: "ingest", num: "6", title: "Ingest → sealed throughput (embedded JetStream)"}
	dur := 10 * time.Second
	if e.quick {
		dur = 2 * time.Second
	}
	s.cmd("go run ./bench -only ingest   # the bench itself posts, over 64 keep-alive connections")
	var tbl bytes.Buffer
	tbl.WriteString("| POST | connections | posts/s accepted | msgs/s accepted | msgs/s sealed (first POST to the seal of the last) | drain after the last POST | p50 / p99 POST latency |\n| --- | --- | --- | --- | --- | --- | --- |\n")
	batches := []int{1, 100}
	if e.quick {
		batches = []int{100} // the quick run keeps the goal's case
	}
	for _, batch := range batches {
		srv, err := e.startServe(ctx, "--max-batch", "500")
		if err != nil {
			s.err = err
			return s
		}
		s.cmd(e.show(srv.argv))
		r, err := ingestRun(ctx, srv.base, batch, 64, dur)
		srv.stop()
		if err != nil {
			s.err = err
			return s
		}
		what := "single message"
		if batch > 1 {
			what = fmt.Sprintf("batch of %d", batch)
		}
		fmt.Fprintf(&tbl, "| %s | 64 | %.0f | %.0f | %.0f | %.1f s | %.1f / %.1f ms |\n", what, r.posts/r.postSecs, r.msgs/r.postSecs, r.msgs/r.sealSecs, r.sealSecs-r.postSecs, r.p50, r.p99)
		if batch == 1 {
			s.add("sealed msgs/s, single-message POSTs", fmt.Sprintf("%.0f", r.msgs/r.sealSecs), "", nil)
		} else {
			rate := r.msgs / r.sealSecs
			s.add(fmt.Sprintf("sealed msgs/s, batches of %d", batch), fmt.Sprintf("%.0f", rate), "≥ 100,000", yes(rate >= 100000))
		}
	}
	s.detail(fmt.Sprintf("Each run posts for %v into a fresh `danmaku serve` (every role, embedded JetStream, directory store) spread over 100 rooms, then waits until `danmaku_writer_messages_total` counts every accepted message and `danmaku_writer_sealed_second` is past the last one. The server runs on core 0 (`taskset`, so ingest, the embedded JetStream, the writer with its gzip and MD5, the publisher and the origin share one core); the poster is this bench process, not pinned, with pre-encoded bodies. Single-message POSTs are bounded by the per-request cost of HTTP, JSON validation and a synchronous JetStream publish with its acknowledgement (one log entry per POST); a batch pays those once for 100 messages.\n\n%s", dur, tbl.String()))
	return s
}

type ingestResult struct {
	posts, msgs        float64
	postSecs, sealSecs float64
	p50, p99           float64
}

func ingestRun(ctx context.Context, base string, batch, conns int, dur time.Duration) (*ingestResult, error) {
	// Bodies are made beforehand: the poster should cost little.
	gen := corpus.Generate(uint64(batch)+7, 0, 1, 20000)
	var bodies [][]byte
	for i := 0; i+batch <= len(gen) && len(bodies) < 200; i += batch {
		var msgs []map[string]any
		for _, m := range gen[i : i+batch] {
			mm := map[string]any{"text": m.Text, "user_id": gen[i].UserID, "user_name": gen[i].UserName}
			if m.Color != bucketer.DefaultColor {
				mm["color"] = fmt.Sprintf("#%06x", m.Color)
			}
			msgs = append(msgs, mm)
		}
		var b []byte
		if batch == 1 {
			b, _ = json.Marshal(msgs[0])
		} else {
			b, _ = json.Marshal(msgs)
		}
		bodies = append(bodies, b)
	}
	m0, err := metric(base, "danmaku_writer_messages_total")
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var posts, msgs, failed atomic.Int64
	var lastSecond atomic.Int64
	lat := make([][]float64, conns)
	start := time.Now()
	deadline := start.Add(dur)
	var wg sync.WaitGroup
	for w := 0; w < conns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; time.Now().Before(deadline) && ctx.Err() == nil; i += conns {
				room := "ing" + strconv.Itoa(i%100)
				t0 := time.Now()
				resp, err := hc.Post(base+"/v1/rooms/"+room+"/messages", "application/json", bytes.NewReader(bodies[i%len(bodies)]))
				if err != nil {
					failed.Add(1)
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					failed.Add(1)
					continue
				}
				lat[w] = append(lat[w], float64(time.Since(t0).Microseconds())/1000)
				posts.Add(1)
				msgs.Add(int64(batch))
				var one struct {
					Second   int64 `json:"second"`
					Messages []struct {
						Second int64 `json:"second"`
					} `json:"messages"`
				}
				json.Unmarshal(body, &one)
				sec := one.Second
				if len(one.Messages) > 0 {
					sec = one.Messages[0].Second
				}
				for {
					old := lastSecond.Load()
					if sec <= old || lastSecond.CompareAndSwap(old, sec) {
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	postSecs := time.Since(start).Seconds()
	if f := failed.Load(); f > 0 && f > posts.Load()/100 {
		return nil, fmt.Errorf("%d of %d POSTs failed", f, f+posts.Load())
	}
	// Wait for the writer to seal everything accepted.
	want := m0 + float64(msgs.Load())
	for {
		got, err := metric(base, "danmaku_writer_messages_total")
		if err != nil {
			return nil, err
		}
		sealed, err := metric(base, "danmaku_writer_sealed_second")
		if err != nil {
			return nil, err
		}
		if got >= want && int64(sealed) >= lastSecond.Load() {
			break
		}
		if time.Since(start) > dur+2*time.Minute {
			return nil, fmt.Errorf("the writer sealed %.0f of %.0f messages within 2 minutes", got-m0, want-m0)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	var all []float64
	for _, l := range lat {
		all = append(all, l...)
	}
	r := &ingestResult{posts: float64(posts.Load()), msgs: float64(msgs.Load()), postSecs: postSecs, sealSecs: time.Since(start).Seconds(), p50: median(all), p99: percentile(all, 0.99)}
	return r, nil
}

func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sortFloats(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}
