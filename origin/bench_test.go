package origin_test

import (
	"net/http"
	"testing"

	"github.com/danmaku/danmaku/bucketer"
	"github.com/danmaku/danmaku/internal/keys"
	"github.com/danmaku/danmaku/publisher"
)

// discard is a ResponseWriter that keeps nothing, so the benchmark measures
// the handler and not a recorder.
type discard struct {
	h    http.Header
	code int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(code int)        { d.code = code }

// BenchmarkRingHit is the hot path: a ring-resident bucket, gzip accepted.
func BenchmarkRingHit(b *testing.B) {
	f := newFixture(b)
	o := obj(keys.Bucket, "lobby", now-1, "hello")
	f.o.Announce([]bucketer.Object{o}, publisher.Watermark{Sealed: now - 1})
	mux := http.NewServeMux()
	f.o.Register(mux)
	req, _ := http.NewRequest(http.MethodGet, bucketPath("lobby", now-1), nil)
	req.Header.Set("Accept-Encoding", "gzip, deflate, br")
	w := &discard{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		mux.ServeHTTP(w, req)
		if w.code != http.StatusOK {
			b.Fatalf("status %d", w.code)
		}
	}
}
