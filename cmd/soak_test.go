//go:build soak

package cmd

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/danmaku/danmaku/client"
	"github.com/danmaku/danmaku/internal/testserve"
)

// go test -tags soak -run TestSoak -soak.duration 10m ./cmd
var soakDuration = flag.Duration("soak.duration", 10*time.Minute, "how long TestSoak runs")

// TestSoak runs loadgen-style traffic through the real binary: posters in
// several rooms (one of them over its rate limit), players polling every
// room with the Go client, and a trickle of hostile requests (bad bodies,
// far-future and bad-path reads). It asserts no 5xx answer at all, and that
// the server's resident memory and goroutines stay flat: the median of the
// last third of the run within 20 % (plus a small constant) of the median
// of the middle third, the first third being warm-up.
func TestSoak(t *testing.T) {
	s := testserve.Start(t)
	pid := s.Pid()
	rooms := []string{"s0", "s1", "s2", "s3", "s4", "s5"}
	ctx, cancel := context.WithTimeout(context.Background(), *soakDuration)
	defer cancel()

	var (
		posts, accepted, limited, refused, fivexx atomic.Int64
		reads, messages                           atomic.Int64
	)
	note5xx := func(what string, status int) {
		if status >= 500 {
			if fivexx.Add(1) <= 5 {
				t.Errorf("%s answered %d", what, status)
			}
		}
	}
	hc := &http.Client{Timeout: 15 * time.Second}
	do := func(method, url, body string) int {
		req, _ := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := hc.Do(req)
		if err != nil {
			if ctx.Err() == nil {
				t.Errorf("%s %s: %v", method, url, err)
			}
			return 0
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		note5xx(method+" "+url, resp.StatusCode)
		return resp.StatusCode
	}

	var wg sync.WaitGroup
	// Posters: about 4 messages a second per room, under the anonymous
	// limit; and one that floods its own room at 40 a second, over it.
	for i, room := range rooms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			for n := 0; ctx.Err() == nil; n++ {
				body := fmt.Sprintf(`{"text":"soak %s %d 弹幕 %d"}`, room, n, rng.IntN(1000))
				if n%7 == 0 {
					body = fmt.Sprintf(`[{"text":"batch %d a"},{"text":"batch %d b"}]`, n, n)
				}
				posts.Add(1)
				switch code := do(http.MethodPost, s.Base+"/v1/rooms/"+room+"/messages", body); {
				case code == http.StatusAccepted:
					accepted.Add(1)
				case code != 0 && ctx.Err() == nil:
					t.Errorf("post to %s: %d", room, code)
				}
				time.Sleep(time.Duration(200+rng.IntN(100)) * time.Millisecond)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; ctx.Err() == nil; n++ {
			posts.Add(1)
			switch code := do(http.MethodPost, s.Base+"/v1/rooms/flood/messages", fmt.Sprintf(`{"text":"flood %d"}`, n)); code {
			case http.StatusAccepted:
				accepted.Add(1)
			case http.StatusTooManyRequests:
				limited.Add(1)
			}
			time.Sleep(25 * time.Millisecond)
		}
	}()
	// Players: four per room, reading with the Go client.
	for i := 0; i < 4*len(rooms); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := client.New(client.Config{BaseURL: s.Base, Room: rooms[i%len(rooms)], OnRequest: func(r client.Request) {
				reads.Add(1)
				note5xx("player "+r.Kind+" "+r.URL, r.Status)
			}})
			if err != nil {
				t.Error(err)
				return
			}
			for _, err := range c.Messages(ctx) {
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("player: %v", err)
					}
					return
				}
				messages.Add(1)
			}
		}()
	}
	// Hostile trickle: bad bodies and paths, and reads held for the next
	// seconds that are abandoned halfway.
	wg.Add(1)
	go func() {
		defer wg.Done()
		bad := []string{`{"text":`, `{"text":"a\u0000"}`, strings.Repeat("[", 5000), `{"text":"x","colour":1}`}
		for n := 0; ctx.Err() == nil; n++ {
			if code := do(http.MethodPost, s.Base+"/v1/rooms/s1/messages", bad[n%len(bad)]); code >= 200 && code < 300 {
				t.Errorf("a bad body was accepted: %d", code)
			} else if code != 0 {
				refused.Add(1)
			}
			do(http.MethodGet, s.Base+"/v1/rooms/%2e%2e/head", "")
			hctx, hcancel := context.WithTimeout(ctx, 500*time.Millisecond)
			req, _ := http.NewRequestWithContext(hctx, http.MethodGet,
				fmt.Sprintf("%s/v1/rooms/ghost%d/buckets/%d.json", s.Base, n%50, time.Now().Unix()+2), nil)
			if resp, err := hc.Do(req); err == nil {
				resp.Body.Close()
				note5xx("held read", resp.StatusCode)
			}
			hcancel()
			time.Sleep(100 * time.Millisecond)
		}
	}()

	// Sample the server's resident memory and goroutines every second.
	var rss, goroutines []float64
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
sampling:
	for {
		select {
		case <-ctx.Done():
			break sampling
		case <-tick.C:
			rss = append(rss, vmRSS(t, pid))
			goroutines = append(goroutines, metric(t, s.Base, "go_goroutines"))
		}
	}
	wg.Wait()

	n := len(rss)
	if n < 9 {
		t.Fatalf("only %d samples", n)
	}
	median := func(x []float64) float64 {
		y := slices.Clone(x)
		slices.Sort(y)
		return y[len(y)/2]
	}
	midRSS, lastRSS := median(rss[n/3:2*n/3]), median(rss[2*n/3:])
	midG, lastG := median(goroutines[n/3:2*n/3]), median(goroutines[2*n/3:])
	t.Logf("%v: %d posts (%d accepted, %d rate limited), %d hostile refused, %d player requests, %d messages read, %d 5xx; RSS MiB: start %.1f, middle third median %.1f, last third median %.1f, peak %.1f; goroutines: middle %.0f, last %.0f",
		*soakDuration, posts.Load(), accepted.Load(), limited.Load(), refused.Load(), reads.Load(), messages.Load(), fivexx.Load(),
		rss[0]/1024, midRSS/1024, lastRSS/1024, slices.Max(rss)/1024, midG, lastG)
	if fivexx.Load() != 0 {
		t.Errorf("%d answers were 5xx", fivexx.Load())
	}
	if lastRSS > midRSS*1.2+8*1024 {
		t.Errorf("resident memory grew: median %.1f MiB in the middle third, %.1f MiB in the last", midRSS/1024, lastRSS/1024)
	}
	if lastG > midG*1.2+50 {
		t.Errorf("goroutines grew: median %.0f in the middle third, %.0f in the last", midG, lastG)
	}
	if messages.Load() == 0 || limited.Load() == 0 || accepted.Load() == 0 {
		t.Errorf("the traffic did not happen: %d messages read, %d accepted, %d limited", messages.Load(), accepted.Load(), limited.Load())
	}
}

// vmRSS reads the resident set size of pid in KiB.
func vmRSS(t *testing.T, pid int) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read RSS: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb
		}
	}
	t.Fatal("no VmRSS in /proc/pid/status")
	return 0
}
