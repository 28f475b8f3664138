package origin_test

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/danmaku/danmaku/bucketer"
	"github.com/danmaku/danmaku/internal/httpx"
	"github.com/danmaku/danmaku/internal/keys"
	"github.com/danmaku/danmaku/origin"
	"github.com/danmaku/danmaku/publisher"
)

// serveFast runs h on a fasthttp server on a loopback port.
func serveFast(t testing.TB, h fasthttp.RequestHandler) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: h, NoDefaultServerHeader: true, NoDefaultContentType: true}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown() })
	return "http://" + ln.Addr().String()
}

// TestFastHandlerMatchesMux pins that the fasthttp read path answers every
// path as the net/http routes do: status, body and the headers a player, a
// CDN or a browser reads.
func TestFastHandlerMatchesMux(t *testing.T) {
	f := newFixture(t)
	o := obj(keys.Bucket, "lobby", now-1, "hello")
	f.o.Announce([]bucketer.Object{o, obj(keys.Segment, "lobby", now-10, "seg")}, publisher.Watermark{Sealed: now - 1, Published: now - 1})
	mux := http.NewServeMux()
	f.o.Register(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	netBase := httptest.NewServer(f.o.Handler(mux)).URL
	// As in danmaku serve: what the fasthttp path does not take goes to the
	// same mux through the adaptor.
	fastBase := serveFast(t, f.o.FastHandler(fasthttpadaptor.NewFastHTTPHandler(mux)))
	for _, tc := range []struct{ name, method, path, ae, inm string }{
		{"bucket", "GET", bucketPath("lobby", now-1), "gzip", ""},
		{"bucket head", "HEAD", bucketPath("lobby", now-1), "gzip", ""},
		{"plain", "GET", bucketPath("lobby", now-1), "identity", ""},
		{"plain head", "HEAD", bucketPath("lobby", now-1), "", ""},
		{"not modified", "GET", bucketPath("lobby", now-1), "gzip", o.ETag},
		{"not modified among others", "GET", bucketPath("lobby", now-1), "gzip", `"x", ` + o.ETag},
		{"modified", "GET", bucketPath("lobby", now-1), "gzip", `"x"`},
		{"segment", "GET", segmentPath("lobby", now-10), "gzip", ""},
		{"unaligned segment", "GET", segmentPath("lobby", now-9), "gzip", ""},
		{"empty sealed", "GET", bucketPath("quiet", now-1), "gzip", ""},
		{"future", "GET", bucketPath("lobby", now+100), "gzip", ""},
		{"bad name", "GET", "/v1/rooms/lobby/buckets/x.json", "gzip", ""},
		{"leading zero", "GET", "/v1/rooms/lobby/buckets/0123.json", "gzip", ""},
		{"head", "GET", "/v1/rooms/lobby/head", "gzip", ""},
		{"bad room", "GET", "/v1/rooms/b%20d/buckets/1.json", "gzip", ""},
		{"post", "POST", bucketPath("lobby", now-1), "gzip", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			do := func(base string) (*http.Response, []byte) {
				req, _ := http.NewRequest(tc.method, base+tc.path, nil)
				if tc.ae != "" {
					req.Header.Set("Accept-Encoding", tc.ae)
				}
				if tc.inm != "" {
					req.Header.Set("If-None-Match", tc.inm)
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp, b
			}
			a, ab := do(fastBase)
			b, bb := do(netBase)
			if a.StatusCode != b.StatusCode || !bytes.Equal(ab, bb) {
				t.Fatalf("fasthttp %d %q, net/http %d %q", a.StatusCode, ab, b.StatusCode, bb)
			}
			for _, k := range []string{"Content-Type", "Content-Encoding", "Cache-Control", "Etag", "Content-Length", "Vary", "Access-Control-Allow-Origin", "Retry-After"} {
				if a.Header.Get(k) != b.Header.Get(k) {
					t.Errorf("%s: fasthttp %q, net/http %q", k, a.Header.Get(k), b.Header.Get(k))
				}
			}
			if a.Header.Get("Date") == "" {
				t.Error("no Date header")
			}
		})
	}
}

// TestFastHandlerHolds pins the hold on the fasthttp path: a read of the
// open second waits for its seal and is answered 200, and one that is not
// sealed within the hold is a 404 not_sealed.
func TestFastHandlerHolds(t *testing.T) {
	f := newFixture(t)
	f.o.Announce(nil, publisher.Watermark{Sealed: now - 1, Published: now - 1})
	base := serveFast(t, f.o.FastHandler(func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(http.StatusTeapot) }))
	o := obj(keys.Bucket, "lobby", now, "held")
	go func() {
		time.Sleep(100 * time.Millisecond)
		f.o.Announce([]bucketer.Object{o}, publisher.Watermark{Sealed: now, Published: now})
	}()
	get := func(path string) (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Header.Set("Accept-Encoding", "gzip")
		return client.Do(req)
	}
	resp, err := get(bucketPath("lobby", now))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(b, o.Body) {
		t.Fatalf("held read: %d %q", resp.StatusCode, b)
	}
	start := time.Now()
	resp, err = get(bucketPath("lobby", now+1))
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || !bytes.Contains(b, []byte(`"not_sealed"`)) || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("unsealed read: %d %q %v", resp.StatusCode, b, resp.Header)
	}
	if took := time.Since(start); took < 250*time.Millisecond {
		t.Errorf("answered after %v, before the hold (300 ms) ended", took)
	}
}

// TestFastHandlerCORSAndClientCap pins the allow-list and the per-client
// hold cap on the fasthttp path, answer for answer as on net/http.
func TestFastHandlerCORSAndClientCap(t *testing.T) {
	cors, _ := httpx.NewCORS([]string{"https://a.example", "https://b.example"})
	f := newFixture(t, func(c *origin.Config) {
		c.CORS = cors
		c.MaxHeldPerClient = 1
		c.Hold = time.Second
		c.TrustProxyHops = 1
	})
	o := obj(keys.Bucket, "lobby", now-1, "hello")
	f.o.Announce([]bucketer.Object{o}, publisher.Watermark{Sealed: now - 1, Published: now - 1})
	mux := http.NewServeMux()
	f.o.Register(mux)
	netBase := httptest.NewServer(f.o.Handler(mux)).URL
	fastBase := serveFast(t, f.o.FastHandler(fasthttpadaptor.NewFastHTTPHandler(mux)))
	do := func(base, path string, hdr ...string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Header.Set("Accept-Encoding", "gzip")
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp
	}
	for _, path := range []string{bucketPath("lobby", now-1), "/v1/rooms/lobby/head"} {
		for _, origin := range []string{"https://b.example", "https://evil.example", ""} {
			a, b := do(fastBase, path, "Origin", origin), do(netBase, path, "Origin", origin)
			for _, k := range []string{"Access-Control-Allow-Origin", "Vary"} {
				if a.Header.Get(k) != b.Header.Get(k) {
					t.Errorf("%s from %q: %s fasthttp %q, net/http %q", path, origin, k, a.Header.Get(k), b.Header.Get(k))
				}
			}
		}
	}
	if got := do(fastBase, bucketPath("lobby", now-1), "Origin", "https://b.example").Header.Get("Access-Control-Allow-Origin"); got != "https://b.example" {
		t.Errorf("allowed origin answered %q", got)
	}

	// One held read per client: a second one from the same client is
	// refused at once; another client is still held.
	first := make(chan int, 1)
	go func() {
		first <- do(fastBase, bucketPath("lobby", now), "X-Forwarded-For", "192.0.2.1").StatusCode
	}()
	time.Sleep(150 * time.Millisecond)
	start := time.Now()
	if r := do(fastBase, bucketPath("other", now), "X-Forwarded-For", "192.0.2.1"); r.StatusCode != http.StatusNotFound || time.Since(start) > 500*time.Millisecond {
		t.Errorf("a second held read from one client: %d after %v", r.StatusCode, time.Since(start))
	}
	second := make(chan int, 1)
	go func() {
		second <- do(fastBase, bucketPath("other", now), "X-Forwarded-For", "192.0.2.2").StatusCode
	}()
	time.Sleep(150 * time.Millisecond)
	f.o.Announce([]bucketer.Object{obj(keys.Bucket, "lobby", now, "x")}, publisher.Watermark{Sealed: now, Published: now})
	if c := <-first; c != http.StatusOK {
		t.Errorf("first client's held read: %d", c)
	}
	if c := <-second; c != http.StatusOK {
		t.Errorf("another client's held read: %d", c)
	}
}
