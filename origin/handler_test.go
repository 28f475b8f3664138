package origin_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/danmaku/danmaku/bucketer"
	"github.com/danmaku/danmaku/internal/keys"
	"github.com/danmaku/danmaku/publisher"
)

// TestHandlerMatchesMux pins that Origin.Handler answers every path the way
// the ServeMux routes of Register do: it is only a faster way in.
func TestHandlerMatchesMux(t *testing.T) {
	f := newFixture(t)
	o := obj(keys.Bucket, "lobby", now-1, "hello")
	f.o.Announce([]bucketer.Object{o, obj(keys.Segment, "lobby", now-10, "seg")}, publisher.Watermark{Sealed: now - 1, Published: now - 1})
	mux := http.NewServeMux()
	f.o.Register(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	front := f.o.Handler(mux)
	for _, tc := range []struct{ name, method, path, inm string }{
		{"bucket", "GET", bucketPath("lobby", now-1), ""},
		{"bucket head", "HEAD", bucketPath("lobby", now-1), ""},
		{"not modified", "GET", bucketPath("lobby", now-1), o.ETag},
		{"segment", "GET", segmentPath("lobby", now-10), ""},
		{"unaligned segment", "GET", segmentPath("lobby", now-9), ""},
		{"empty sealed", "GET", bucketPath("quiet", now-1), ""},
		{"future", "GET", bucketPath("lobby", now+100), ""},
		{"bad name", "GET", "/v1/rooms/lobby/buckets/x.json", ""},
		{"leading zero", "GET", "/v1/rooms/lobby/buckets/0123.json", ""},
		{"bad room", "GET", "/v1/rooms/b%20d/buckets/1.json", ""},
		{"escaped slash", "GET", "/v1/rooms/a%2Fb/buckets/1.json", ""},
		{"dot room", "GET", "/v1/rooms/../buckets/1.json", ""},
		{"empty name", "GET", "/v1/rooms/lobby/buckets/", ""},
		{"deeper", "GET", "/v1/rooms/lobby/buckets/1/2.json", ""},
		{"post", "POST", bucketPath("lobby", now-1), ""},
		{"other", "GET", "/v1/rooms/lobby/other", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			do := func(h http.Handler) *httptest.ResponseRecorder {
				req := httptest.NewRequest(tc.method, tc.path, nil)
				req.Header.Set("Accept-Encoding", "gzip")
				if tc.inm != "" {
					req.Header.Set("If-None-Match", tc.inm)
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				return w
			}
			a, b := do(front), do(mux)
			if a.Code != b.Code || !bytes.Equal(a.Body.Bytes(), b.Body.Bytes()) {
				t.Fatalf("front %d %q, mux %d %q", a.Code, a.Body, b.Code, b.Body)
			}
			for _, k := range []string{"Content-Type", "Content-Encoding", "Cache-Control", "Etag", "Content-Length", "Vary", "Access-Control-Allow-Origin", "Location"} {
				if a.Header().Get(k) != b.Header().Get(k) {
					t.Errorf("%s: front %q, mux %q", k, a.Header().Get(k), b.Header().Get(k))
				}
			}
		})
	}
}
