package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/danmaku/danmaku/bucketer"
	"github.com/danmaku/danmaku/internal/keys"
	"github.com/danmaku/danmaku/origin"
	"github.com/danmaku/danmaku/publisher"
)

// runOriginServer is `bench origin-server`: the origin's read path alone, on
// the HTTP server danmaku serve builds, with one bucket in its ring
// and a CPU profile of its life. It isolates the HTTP stack's cost from the
// log and the writer that share a core in danmaku serve.
func runOriginServer(args []string) error {
	fs := flag.NewFlagSet("origin-server", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address")
	room := fs.String("room", "hot", "room of the bucket")
	second := fs.Int64("second", 0, "second of the bucket")
	bodyFile := fs.String("body", "", "file holding the gzipped bucket")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile here")
	stack := fs.String("stack", "fasthttp", "fasthttp (as danmaku serve runs) or nethttp (Go's net/http, for comparison)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	gz, err := os.ReadFile(*bodyFile)
	if err != nil {
		return err
	}
	o, err := origin.New(origin.Config{Store: noStore{}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	o.Announce([]bucketer.Object{{Kind: keys.Bucket, Room: *room, Second: *second, Key: keys.Key(keys.Bucket, *room, *second),
		Body: gz, ETag: bucketer.ETag(gz), Messages: 1}}, publisher.Watermark{Sealed: *second, Published: *second})
	mux := http.NewServeMux()
	o.Register(mux)
	// The same server danmaku serve builds (cmd/httpserver.go).
	srv := &fasthttp.Server{
		Handler:               o.FastHandler(fasthttpadaptor.NewFastHTTPHandler(mux)),
		ReadTimeout:           15 * time.Second,
		IdleTimeout:           2 * time.Minute,
		WriteTimeout:          13 * time.Second,
		ReadBufferSize:        20 << 10,
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
		CloseOnShutdown:       true,
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *stack == "nethttp" {
		hs := &http.Server{Addr: *listen, Handler: o.Handler(mux), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 15 * time.Second,
			WriteTimeout: 13 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10}
		go func() {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			hs.Shutdown(sctx)
		}()
		if err := hs.ListenAndServe(); err != nil && err != http.ErrServerClosed {
			return err
		}
		return nil
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.ShutdownWithContext(sctx)
	}()
	return srv.ListenAndServe(*listen)
}

type noStore struct{}

func (noStore) Get(context.Context, string) ([]byte, error) { return nil, publisher.ErrNotFound }

func decodeJSON(resp *http.Response, v any) error {
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s: %d %s", resp.Request.URL, resp.StatusCode, b)
	}
	return json.Unmarshal(b, v)
}
