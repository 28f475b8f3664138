package origin_test

import (
	"net/http"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/danmaku/danmaku/bucketer"
	"github.com/danmaku/danmaku/internal/keys"
	"github.com/danmaku/danmaku/origin"
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

// BenchmarkRingHit is the hot path: a ring-resident bucket, gzip accepted,
// through Origin.Handler as danmaku serve runs it. It allocates nothing.
func BenchmarkRingHit(b *testing.B) {
	benchRingHit(b, func(o *origin.Origin, mux *http.ServeMux) http.Handler { return o.Handler(mux) }, nil)
}

// BenchmarkRingHitMux is the same request routed by the ServeMux alone,
// which allocates its wildcard matches.
func BenchmarkRingHitMux(b *testing.B) {
	benchRingHit(b, func(_ *origin.Origin, mux *http.ServeMux) http.Handler { return mux }, nil)
}

// BenchmarkRingHitNotModified is a revalidation answered 304.
func BenchmarkRingHitNotModified(b *testing.B) {
	benchRingHit(b, func(o *origin.Origin, mux *http.ServeMux) http.Handler { return o.Handler(mux) },
		func(req *http.Request, o bucketer.Object) { req.Header.Set("If-None-Match", o.ETag) })
}

func benchRingHit(b *testing.B, handler func(*origin.Origin, *http.ServeMux) http.Handler, prep func(*http.Request, bucketer.Object)) {
	f := newFixture(b)
	o := obj(keys.Bucket, "lobby", now-1, "hello")
	f.o.Announce([]bucketer.Object{o}, publisher.Watermark{Sealed: now - 1})
	mux := http.NewServeMux()
	f.o.Register(mux)
	h := handler(f.o, mux)
	req, _ := http.NewRequest(http.MethodGet, bucketPath("lobby", now-1), nil)
	req.Header.Set("Accept-Encoding", "gzip, deflate, br")
	want := http.StatusOK
	if prep != nil {
		prep(req, o)
		want = http.StatusNotModified
	}
	w := &discard{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, req)
		if w.code != want {
			b.Fatalf("status %d", w.code)
		}
	}
}

// BenchmarkFastRingHit is the hot path as danmaku serve runs it: the
// fasthttp handler answering a ring-resident bucket. It allocates nothing.
func BenchmarkFastRingHit(b *testing.B) {
	f := newFixture(b)
	o := obj(keys.Bucket, "lobby", now-1, "hello")
	f.o.Announce([]bucketer.Object{o}, publisher.Watermark{Sealed: now - 1})
	h := f.o.FastHandler(func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(http.StatusTeapot) })
	var req fasthttp.Request
	req.SetRequestURI(bucketPath("lobby", now-1))
	req.Header.Set("Accept-Encoding", "gzip, deflate, br")
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, nil, nil)
	b.ReportAllocs()
	for b.Loop() {
		ctx.Response.Reset()
		h(&ctx)
		if ctx.Response.StatusCode() != http.StatusOK {
			b.Fatalf("status %d", ctx.Response.StatusCode())
		}
	}
}
