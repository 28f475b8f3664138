package cmd

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/danmaku/danmaku/bucketer"
	"github.com/danmaku/danmaku/internal/testserve"
)

// fakeAux is an avatar or moderation service whose behaviour the test
// switches: "ok", "hang" (never answers), "500", or "slow" (answers after
// a second, long past the timeout).
type fakeAux struct {
	mode  atomic.Value // string
	calls atomic.Int64
	srv   *httptest.Server
	done  chan struct{}
}

func newFakeAux(t *testing.T, answer func(w http.ResponseWriter, r *http.Request)) *fakeAux {
	f := &fakeAux{done: make(chan struct{})}
	f.mode.Store("ok")
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.calls.Add(1)
		switch f.mode.Load().(string) {
		case "hang":
			select {
			case <-r.Context().Done():
			case <-f.done:
			}
			return
		case "500":
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		case "slow":
			select {
			case <-time.After(time.Second):
			case <-f.done:
				return
			}
		}
		answer(w, r)
	}))
	t.Cleanup(func() { close(f.done); f.srv.Close() })
	return f
}

// metricWith sums the values of name whose labels include every pair of
// labels ("k", "v", …) on /metrics.
func metricWith(t testing.TB, base, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		ok := true
		for i := 0; i+1 < len(labels); i += 2 {
			ok = ok && strings.Contains(line, labels[i]+`="`+labels[i+1]+`"`)
		}
		if ok {
			f, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			sum += f
		}
	}
	return sum
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// TestAuxServicesDegrade runs the server with an avatar service and a
// moderation service (real HTTP servers in the test) that answer, hang,
// fail with 500 and answer too slowly, in turn. Through all of it every
// post is accepted and published, ingest's p99 stays under the timeout
// plus a margin, posts go out without the avatar and with the word list
// standing in for moderation, and metrics and logs say so; when the
// services recover, their answers are used again.
func TestAuxServicesDegrade(t *testing.T) {
	if testing.Short() {
		t.Skip("aux service test takes about 30s")
	}
	const timeout = 150 * time.Millisecond
	// A p99 margin over the timeout: the log append, and a shared, loaded
	// CI machine with the race detector on.
	const margin = 250 * time.Millisecond
	avatars := newFakeAux(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"avatar":"https://img.example/%s.png"}`, r.URL.Query().Get("user"))
	})
	moderation := newFakeAux(t, func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Texts []string }
		json.NewDecoder(r.Body).Decode(&req)
		var v []string
		for _, s := range req.Texts {
			if strings.Contains(s, "service-masks-this") {
				v = append(v, "mask")
			} else {
				v = append(v, "allow")
			}
		}
		json.NewEncoder(w).Encode(map[string][]string{"verdicts": v})
	})
	t.Setenv("DANMAKU_AUTH_SECRET", testSecret)
	s := testserve.Start(t,
		"--avatar-url", avatars.srv.URL+"/avatar", "--avatar-timeout", timeout.String(),
		"--moderation-url", moderation.srv.URL+"/moderate", "--moderation-timeout", timeout.String(),
		// 40 failures in a row open a breaker: enough that each failing
		// phase measures many posts that wait out the timeout.
		"--aux-failures", "40", "--aux-cooldown", "2s", "--user-rate", "0")

	type sent struct {
		id, text, user string
		second         int64
	}
	var mu sync.Mutex
	var all []sent
	// postPhase posts n messages from 4 workers, each from its own user (so
	// the avatar cache does not hide the service), and returns latencies.
	postPhase := func(phase string, n int) []time.Duration {
		var lat []time.Duration
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < n/4; i++ {
					user := fmt.Sprintf("%s-%d-%d", phase, w, i)
					text := fmt.Sprintf("%s %d/%d service-masks-this fuck", phase, w, i)
					tok := signToken(t, testSecret, user, user, "", time.Hour)
					req, _ := http.NewRequest(http.MethodPost, s.Base+"/v1/rooms/aux/messages", strings.NewReader(`{"text":"`+text+`"}`))
					req.Header.Set("Authorization", "Bearer "+tok)
					start := time.Now()
					resp, err := rawClient.Do(req)
					took := time.Since(start)
					if err != nil {
						t.Errorf("%s: post: %v", phase, err)
						return
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusAccepted {
						t.Errorf("%s: post answered %d %s", phase, resp.StatusCode, b)
						continue
					}
					var a Accepted
					json.Unmarshal(b, &a)
					mu.Lock()
					lat = append(lat, took)
					all = append(all, sent{id: a.ID, text: text, user: user, second: a.Second})
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return lat
	}
	// check reads the phase's messages back from their buckets.
	check := func(phase string, wantAvatar, wantServiceMask bool) {
		t.Helper()
		mu.Lock()
		var mine []sent
		for _, m := range all {
			if strings.HasPrefix(m.user, phase+"-") {
				mine = append(mine, m)
			}
		}
		mu.Unlock()
		last := int64(0)
		for _, m := range mine {
			last = max(last, m.second)
		}
		waitPublished(t, s.Base, last)
		bodies := map[int64]*bucketer.Body{}
		for _, m := range mine {
			b := bodies[m.second]
			if b == nil {
				f := get(t, bucketURL(s.Base, "aux", m.second))
				var err error
				if b, err = bucketer.DecodeGzip(f.body); err != nil {
					t.Fatalf("bucket %d: %d %v", m.second, f.status, err)
				}
				bodies[m.second] = b
			}
			i := slices.IndexFunc(b.Messages, func(x bucketer.Message) bool { return x.ID == m.id })
			if i < 0 {
				t.Errorf("%s: accepted message %s is not in bucket %d", phase, m.id, m.second)
				continue
			}
			got := b.Messages[i]
			if hasAvatar := got.Avatar != ""; hasAvatar != wantAvatar {
				t.Errorf("%s: message %s avatar %q", phase, m.id, got.Avatar)
			}
			// The word list masks "fuck" whatever the service does; the
			// service masks the whole text when it answers.
			if serviceMasked := !strings.Contains(got.Text, phase); serviceMasked != wantServiceMask || strings.Contains(got.Text, "fuck") {
				t.Errorf("%s: message %s published as %q", phase, m.id, got.Text)
			}
		}
	}

	report := []string{}
	for _, phase := range []struct {
		name, mode string
		healthy    bool
	}{
		{"healthy", "ok", true},
		{"hanging", "hang", false},
		{"failing", "500", false},
		{"slow", "slow", false},
	} {
		// Each phase begins with closed breakers: healthy services, past
		// the cooldown, and a few posts for the trial calls.
		avatars.mode.Store("ok")
		moderation.mode.Store("ok")
		time.Sleep(2500 * time.Millisecond)
		postPhase("warmup-"+phase.name, 8)
		avatars.mode.Store(phase.mode)
		moderation.mode.Store(phase.mode)
		lat := postPhase(phase.name, 120)
		if len(lat) == 0 {
			t.Fatalf("%s: nothing accepted", phase.name)
		}
		p50, p99, worst := percentile(lat, .5), percentile(lat, .99), percentile(lat, 1)
		report = append(report, fmt.Sprintf("%s: p50 %v p99 %v max %v over %d posts", phase.name,
			p50.Round(time.Millisecond), p99.Round(time.Millisecond), worst.Round(time.Millisecond), len(lat)))
		if p99 > timeout+margin {
			t.Errorf("%s services: ingest p99 %v, over the %v timeout plus %v", phase.name, p99, timeout, margin)
		}
		check(phase.name, phase.healthy, phase.healthy)
	}
	// The breakers opened, and failures were counted and logged.
	for _, svc := range []string{"avatar", "moderation"} {
		for _, result := range []string{"timeout", "error", "breaker_open"} {
			if n := metricWith(t, s.Base, "danmaku_ingest_aux_calls_total", "service", svc, "result", result); n == 0 {
				t.Errorf("no %s calls counted as %s", svc, result)
			}
		}
	}
	logs := s.Logs()
	for _, want := range []string{"breaker open", "auxiliary service call failed"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log never says %q", want)
		}
	}
	if n := strings.Count(logs, "auxiliary service call failed"); n > 20 {
		t.Errorf("%d failure lines in the log; they should be rate limited", n)
	}

	// Recovery: after the cooldown a trial call closes the breaker and the
	// services' answers are used again.
	avatars.mode.Store("ok")
	moderation.mode.Store("ok")
	time.Sleep(2500 * time.Millisecond)
	postPhase("warmup-recovered", 8) // the trial calls
	lat := postPhase("recovered", 40)
	report = append(report, fmt.Sprintf("recovered: p99 %v", percentile(lat, .99).Round(time.Millisecond)))
	check("recovered", true, true)
	t.Logf("aux timeout %v; ingest latency by phase: %s; avatar service called %d times, moderation %d",
		timeout, strings.Join(report, "; "), avatars.calls.Load(), moderation.calls.Load())
	if bytes.Contains([]byte(logs), []byte(testSecret)) {
		t.Error("the log shows the auth secret")
	}
}
