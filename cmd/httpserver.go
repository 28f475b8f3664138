package cmd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/danmaku/danmaku/origin"
)

// httpServer is what serve answers HTTP with.
type httpServer interface {
	Serve(ln net.Listener) error
	// Shutdown stops taking connections and waits, until ctx ends, for
	// the requests in flight (held reads included) to finish.
	Shutdown(ctx context.Context) error
}

// httpServerConfig is everything the HTTP server is built from.
type httpServerConfig struct {
	// Handler has every route: ingest, the origin's own routes, admin,
	// operations, the web demo and the JSON fallbacks.
	Handler http.Handler
	// Origin answers bucket, segment and head reads before Handler; nil in
	// a process without the origin role.
	Origin *origin.Origin
	// Hold is the origin's longest hold; answers may take that long.
	Hold time.Duration
	// MaxBody is the largest request body read.
	MaxBody int64
	// MaxHeaderBytes bounds the request line and headers.
	MaxHeaderBytes int
	Log            *slog.Logger
}

// newHTTPServer builds the server. This is the one place that chooses the
// HTTP stack: fasthttp, with the origin's read path as native fasthttp
// handlers (the hot path: no allocation per request and about twice the
// requests per core of net/http, see BENCHMARKS.md) and every other route
// served by the net/http handler through fasthttpadaptor.
func newHTTPServer(cfg httpServerConfig) httpServer {
	handler := fasthttpadaptor.NewFastHTTPHandler(detached(cfg.Handler))
	if cfg.Origin != nil {
		handler = cfg.Origin.FastHandler(handler)
	}
	s := &fasthttp.Server{
		Handler:      handler,
		ErrorHandler: httpServerError(cfg.MaxBody),
		// Reads of the request (headers and body) end within ReadTimeout;
		// an idle keep-alive connection is closed after IdleTimeout.
		ReadTimeout: 15 * time.Second,
		IdleTimeout: 2 * time.Minute,
		// A held read waits up to the hold before its answer is written.
		WriteTimeout:          cfg.Hold + 10*time.Second,
		ReadBufferSize:        cfg.MaxHeaderBytes + 4096, // net/http allows the same slack
		MaxRequestBodySize:    int(cfg.MaxBody),
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
		CloseOnShutdown:       true,
		Logger:                slog.NewLogLogger(cfg.Log.Handler(), slog.LevelWarn),
	}
	return &fastServer{s: s}
}

// detached gives net/http handlers a context of their own instead of the
// fasthttp RequestCtx the adaptor passes: fasthttp reuses that once the
// handler returns, while a client or a goroutine the handler started may
// still read a context derived from it (a data race). The RequestCtx would
// only have been cancelled at shutdown; handlers bound their own waits.
func detached(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(context.Background()))
	})
}

type fastServer struct{ s *fasthttp.Server }

func (f *fastServer) Serve(ln net.Listener) error {
	if err := f.s.Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return http.ErrServerClosed
}

func (f *fastServer) Shutdown(ctx context.Context) error { return f.s.ShutdownWithContext(ctx) }

// httpServerError answers what fasthttp refuses before any handler runs
// (a body or header too large, a malformed request, a slow client) with
// the JSON error every other answer uses.
func httpServerError(maxBody int64) func(*fasthttp.RequestCtx, error) {
	return func(ctx *fasthttp.RequestCtx, err error) {
		ctx.Response.Header.Set("Access-Control-Allow-Origin", "*")
		var small *fasthttp.ErrSmallBuffer
		switch {
		case errors.Is(err, fasthttp.ErrBodyTooLarge):
			origin.FastError(ctx, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("the body is larger than %d bytes", maxBody))
		case errors.As(err, &small) || strings.Contains(err.Error(), "small read buffer"):
			origin.FastError(ctx, http.StatusRequestHeaderFieldsTooLarge, "headers_too_large", "the request line and headers are too large")
		case isTimeout(err):
			origin.FastError(ctx, http.StatusRequestTimeout, "timeout", "the request was not received in time")
		default:
			origin.FastError(ctx, http.StatusBadRequest, "bad_request", "malformed HTTP request")
		}
		ctx.SetConnectionClose()
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
