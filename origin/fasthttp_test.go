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
	"github.com/danmaku/danmaku/internal/keys"
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
