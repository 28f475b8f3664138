package origin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/danmaku/danmaku/internal/httpx"
	"github.com/danmaku/danmaku/internal/keys"
)

// FastHandler is Handler for a fasthttp server: a GET or HEAD of a bucket,
// segment or head URL of a valid room is answered here, natively and with
// no allocation on a ring hit; every other request goes to next (the
// net/http routes through fasthttpadaptor). The answers are byte for byte
// those of the net/http path but for the order of the header lines.
//
// fasthttp does not tell a handler that its client went away, so a held
// request waits out its hold (at most Config.Hold, counted against
// MaxHeld) even when nobody is left to read the answer; it ends early only
// when the server shuts down.
func (o *Origin) FastHandler(next fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		// Only a path sent in canonical form takes the fast way: fasthttp
		// normalises dot and empty segments away, and percent-encoding is
		// never needed in a read path, so anything else goes to next, which
		// sees the path as sent (and refuses what is not canonical).
		if (ctx.IsGet() || ctx.IsHead()) && canonical(ctx.URI().PathOriginal()) {
			if kind, room, name, ok := readPath(b2s(ctx.Path())); ok {
				switch kind {
				case kindBucket:
					o.fastObject(ctx, keys.Bucket, room, name)
				case kindSegment:
					o.fastObject(ctx, keys.Segment, room, name)
				case kindHead:
					o.fastHead(ctx, room)
				}
				return
			}
		}
		next(ctx)
	}
}

// canonical reports whether a raw request path has no percent-encoding and
// no empty, "." or ".." segments.
func canonical(p []byte) bool {
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '%':
			return false
		case '/':
			seg := p[i+1:]
			if j := bytes.IndexByte(seg, '/'); j >= 0 {
				seg = seg[:j]
			} else if i+1 == len(p) {
				continue // a trailing slash: not a read path anyway
			}
			if len(seg) == 0 || (len(seg) == 1 && seg[0] == '.') || (len(seg) == 2 && seg[0] == '.' && seg[1] == '.') {
				return false
			}
		}
	}
	return true
}

// Header names and values as bytes, shared.
var (
	hnACAO          = []byte("Access-Control-Allow-Origin")
	hnCacheControl  = []byte("Cache-Control")
	hnContentEnc    = []byte("Content-Encoding")
	hnContentType   = []byte("Content-Type")
	hnETag          = []byte("Etag")
	hnVary          = []byte("Vary")
	hnRetryAfter    = []byte("Retry-After")
	hnAcceptEnc     = []byte("Accept-Encoding")
	hnIfNoneMatch   = []byte("If-None-Match")
	hnOrigin        = []byte("Origin")
	hbVaryOrigin    = []byte("Accept-Encoding, Origin")
	hbAny           = []byte("*")
	hbJSON          = []byte("application/json")
	hbGzip          = []byte("gzip")
	hbImmutable     = []byte("public, max-age=31536000, immutable")
	hbHeadCache     = []byte("public, max-age=1")
	hbAcceptEncList = []byte("Accept-Encoding")
	hbNoStore       = []byte("no-store")
	hbOne           = []byte("1")
)

func (o *Origin) fastObject(ctx *fasthttp.RequestCtx, kind keys.Kind, room, name string) {
	start := o.cfg.Now()
	res := o.fastObjectResult(ctx, kind, room, name)
	o.metrics.requests[kind][res].Inc()
	o.metrics.latency[kind].Observe(o.cfg.Now().Sub(start).Seconds())
}

func (o *Origin) fastObjectResult(ctx *fasthttp.RequestCtx, kind keys.Kind, room, name string) outcome {
	h := &ctx.Response.Header
	varyOrigin := o.fastCORS(ctx)
	second, err := keys.ParseJSONName(name)
	if err != nil {
		FastError(ctx, fasthttp.StatusBadRequest, "bad_second", "the last path element must be {second}.json: "+err.Error())
		return badRequest
	}
	if kind == keys.Segment && second%keys.SegmentSeconds != 0 {
		FastError(ctx, fasthttp.StatusBadRequest, "bad_segment", keys.ErrAligned.Error())
		return badRequest
	}
	// Not ctx: a fasthttp RequestCtx is reused once the handler returns,
	// and a store client may still touch a context derived from it then.
	// A hold is bounded by Config.Hold, a store read by storeTimeout.
	it, res, err := o.lookup(context.Background(), kind, room, second, func() netip.Addr { return fastClientIP(ctx, o.cfg.TrustProxyHops) })
	switch {
	case err != nil:
		o.log.Warn("store read failed", "room", room, "kind", kind, "second", second, "err", err)
		h.SetCanonical(hnRetryAfter, hbOne)
		FastError(ctx, fasthttp.StatusServiceUnavailable, "store_unavailable", "the store could not be read; try again")
		return storeError
	case res == future:
		FastError(ctx, fasthttp.StatusNotFound, "future", fmt.Sprintf("%s %d is too far in the future", kind, second))
		return res
	case res == notSealed:
		FastError(ctx, fasthttp.StatusNotFound, "not_sealed", fmt.Sprintf("%s %d is not sealed yet; ask again", kind, second))
		return res
	}
	if fastItem(ctx, it, varyOrigin) {
		return notModified
	}
	return res
}

// fastCORS sets Access-Control-Allow-Origin per the allow-list and reports
// whether the answer varies with the request's Origin.
func (o *Origin) fastCORS(ctx *fasthttp.RequestCtx) bool {
	if o.cfg.CORS == nil {
		ctx.Response.Header.SetCanonical(hnACAO, hbAny)
		return false
	}
	v, vary := o.cfg.CORS.AllowOrigin(b2s(ctx.Request.Header.PeekBytes(hnOrigin)))
	if v != "" {
		ctx.Response.Header.SetCanonical(hnACAO, []byte(v))
	}
	return vary
}

// fastClientIP is httpx.ClientIP for a fasthttp request.
func fastClientIP(ctx *fasthttp.RequestCtx, hops int) netip.Addr {
	peer, _ := netip.AddrFromSlice(ctx.RemoteIP())
	var fwd []string
	if hops > 0 {
		for _, v := range ctx.Request.Header.PeekAll("X-Forwarded-For") {
			fwd = append(fwd, string(v))
		}
	}
	return httpx.ClientIPFrom(peer, fwd, hops)
}

// fastItem writes a 200 (or 304) for it and reports whether it was a 304.
func fastItem(ctx *fasthttp.RequestCtx, it *item, varyOrigin bool) bool {
	h := &ctx.Response.Header
	h.SetCanonical(hnCacheControl, hbImmutable)
	if varyOrigin {
		h.SetCanonical(hnVary, hbVaryOrigin)
	} else {
		h.SetCanonical(hnVary, hbAcceptEncList)
	}
	gz := httpx.AcceptsGzip(b2s(ctx.Request.Header.PeekBytes(hnAcceptEnc)))
	etag, body := it.etagB(), it.gz
	if !gz {
		p := it.plainBody()
		etag, body = p.etagB(), p.body
	}
	h.SetCanonical(hnETag, etag)
	if inm := ctx.Request.Header.PeekBytes(hnIfNoneMatch); len(inm) > 0 && httpx.ETagMatch(b2s(inm), b2s(etag)) {
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		return true
	}
	if gz {
		h.SetCanonical(hnContentEnc, hbGzip)
	}
	h.SetContentTypeBytes(hbJSON)
	ctx.SetStatusCode(fasthttp.StatusOK)
	// The body is shared and never written to; fasthttp sends no body for
	// HEAD but keeps its Content-Length.
	ctx.Response.SetBodyRaw(body)
	return false
}

func (o *Origin) fastHead(ctx *fasthttp.RequestCtx, room string) {
	h := &ctx.Response.Header
	if o.fastCORS(ctx) {
		h.SetCanonical(hnVary, hbVaryOrigin) // as httpx.CORS.Apply says it
	}
	m := o.marks[keys.Partition(room)].Load()
	if m == nil {
		h.SetCanonical(hnRetryAfter, hbOne)
		FastError(ctx, fasthttp.StatusServiceUnavailable, "not_ready", "the origin has not heard from a writer yet")
		o.metrics.heads[notSealed].Inc()
		return
	}
	var buf [96]byte
	ctx.Write(o.appendHead(buf[:0], m.sealed))
	h.SetContentTypeBytes(hbJSON)
	h.SetCanonical(hnCacheControl, hbHeadCache)
	ctx.SetStatusCode(fasthttp.StatusOK)
	o.metrics.heads[fromRing].Inc()
}

// FastError is httpx.Error for fasthttp: a JSON {"code","message"} that no
// cache keeps. The server answers its own errors (a header too large, a
// body too large) with it too.
func FastError(ctx *fasthttp.RequestCtx, status int, code, message string) {
	h := &ctx.Response.Header
	h.DelBytes(hnContentEnc)
	h.DelBytes(hnETag)
	h.DelBytes(hnVary)
	h.SetContentTypeBytes(hbJSON)
	h.SetCanonical(hnCacheControl, hbNoStore)
	b, _ := json.Marshal(httpx.ErrorBody{Code: code, Message: message})
	b = append(b, '\n')
	ctx.SetStatusCode(status)
	ctx.Response.SetBodyRaw(b)
}

// b2s views b as a string without copying; the string must not outlive
// the request that owns b.
func b2s(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
