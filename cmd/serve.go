package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/danmaku/danmaku/bucketer"
	"github.com/danmaku/danmaku/ingest"
	"github.com/danmaku/danmaku/internal/announce"
	"github.com/danmaku/danmaku/internal/httpx"
	"github.com/danmaku/danmaku/internal/keys"
	"github.com/danmaku/danmaku/internal/lease"
	"github.com/danmaku/danmaku/internal/logstream"
	"github.com/danmaku/danmaku/origin"
	"github.com/danmaku/danmaku/publisher"
	"github.com/danmaku/danmaku/web"
)

type serveOptions struct {
	storeOptions
	securityOptions // security.go: tokens, rate limits, aux services, CORS
	capOptions
	Listen          string
	Data            string
	NATS            []string
	NATSListen      string
	LogReplicas     int
	LeaseTTL        time.Duration
	Role            string
	RingSeconds     int
	Hold            time.Duration
	SealGrace       time.Duration
	PollMS          int
	MaxBody         int64
	MaxBatch        int
	MaxText         int
	MaxRooms        int
	MaxHeld         int
	LogRetention    time.Duration
	LogFsync        bool
	PublishWorkers  int
	SpoolBytes      int64
	QueueMemory     int64
	ShutdownTimeout time.Duration
	LogLevel        string
	LogFormat       string
	AdminToken      string

	// onListen, if set, is told the address the server listens on (tests
	// listen on port 0).
	onListen func(addr string)
}

func (o *serveOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Listen, "listen", "127.0.0.1:8080", "HTTP address for every role: posts, reads, /healthz, /readyz and /metrics")
	fs.StringVar(&o.Data, "data", "./data", "data directory: the embedded log, and the default store under DATA/store")
	o.storeOptions.AddFlags(fs)
	fs.StringSliceVar(&o.NATS, "nats", nil, "URL[,URL...] of an external NATS JetStream cluster (default: an embedded server storing under DATA/nats)")
	fs.StringVar(&o.NATSListen, "nats-listen", "", "also serve the embedded log at this host:port, so backfill and export can reach it while serve runs (e.g. 127.0.0.1:4222)")
	fs.StringVar(&o.Role, "role", "all", "what this process runs: all, or one of ingest, writer, origin (those need --nats)")
	fs.IntVar(&o.LogReplicas, "log-replicas", 0, "replicas of the log stream (0: 3 on a cluster of three or more servers, else 1)")
	fs.DurationVar(&o.LeaseTTL, "lease-ttl", 2*time.Second, "how long a dead writer's partitions stay unowned before another writer takes them")
	fs.IntVar(&o.RingSeconds, "ring-seconds", 60, "newest seconds of each room the origin keeps in memory")
	fs.DurationVar(&o.Hold, "hold", origin.DefaultHold, "longest a read of a second that has not sealed yet waits before a 404")
	fs.DurationVar(&o.SealGrace, "seal-grace", 100*time.Millisecond, "how far past a second's end the log must be before the second seals")
	fs.IntVar(&o.PollMS, "poll-ms", 1000, "poll interval in ms that /head asks players to keep")
	fs.Int64Var(&o.MaxBody, "max-body", 256<<10, "largest POST body in bytes")
	fs.IntVar(&o.MaxBatch, "max-batch", 500, "most messages in one POST")
	fs.IntVar(&o.MaxText, "max-text", 200, "longest message text in characters, after trimming")
	fs.IntVar(&o.MaxRooms, "max-rooms", 100000, "most rooms the origin's ring holds; others are read from the store")
	fs.IntVar(&o.MaxHeld, "max-held", 20000, "most reads held at once waiting for their second to seal")
	fs.DurationVar(&o.LogRetention, "log-retention", 72*time.Hour, "how long the message log keeps entries (backfill and export reach this far back)")
	fs.BoolVar(&o.LogFsync, "log-fsync", false, "embedded log: fsync every post before answering 202 (survives power loss, costs throughput)")
	fs.IntVar(&o.PublishWorkers, "publish-workers", 64, "store writes in flight at once")
	fs.Int64Var(&o.QueueMemory, "queue-memory-bytes", 32<<20, "bytes of sealed buckets waiting for the store kept in memory before they spill to DATA/spool")
	fs.Int64Var(&o.SpoolBytes, "spool-bytes", 1<<30, "most bytes of sealed buckets kept in DATA/spool while the store is failing; past it, sealing waits")
	fs.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", 15*time.Second, "how long a graceful stop may take")
	fs.StringVar(&o.AdminToken, "admin-token", "", "bearer token for the /admin/v1 API (ring drop and redaction); the API is off when empty")
	fs.StringVar(&o.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.LogFormat, "log-format", "text", "text or json")
	o.securityOptions.AddFlags(fs)
	o.capOptions.AddFlags(fs)
}

func newServeCommand() *cobra.Command {
	opts := &serveOptions{}
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run ingest, the writer and the origin (the whole system on one machine by default)",
		Long: `Run the whole system in one process: POST /v1/rooms/{room}/messages appends to
the log (an embedded NATS JetStream under --data unless --nats names a
cluster), the writer seals each second into an immutable gzip bucket in the
store, and the origin serves /v1/rooms/{room}/buckets/{second}.json,
/segments/{start}.json and /head from its in-memory ring.`,
		Example: `  danmaku serve
  danmaku serve --listen :8080 --data /var/lib/danmaku
  DANMAKU_NATS=nats://n1:4222,nats://n2:4222 danmaku serve`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := bindEnv(c.Flags()); err != nil {
				return err
			}
			return runServe(c.Context(), opts, c.ErrOrStderr())
		},
	}
	opts.AddFlags(c.Flags())
	addEnvHelp(c.Flags())
	return c
}

func (o *serveOptions) validate() error {
	if _, err := parseRole(o.Role); err != nil {
		return err
	}
	if o.Role != "all" && len(o.NATS) == 0 {
		return usagef("--role %s needs --nats: processes of one deployment share an external NATS JetStream cluster", o.Role)
	}
	if o.LogReplicas < 0 || o.LogReplicas > 5 {
		return usagef("--log-replicas %d: must be between 0 (automatic) and 5", o.LogReplicas)
	}
	if o.LeaseTTL < 500*time.Millisecond || o.LeaseTTL > time.Minute {
		return usagef("--lease-ttl %v: must be between 500ms and 1m", o.LeaseTTL)
	}
	if _, _, err := net.SplitHostPort(o.Listen); err != nil {
		return usagef("--listen %q: %v", o.Listen, err)
	}
	if o.Data == "" {
		return usagef("--data must name a directory")
	}
	if o.Hold <= 0 || o.Hold > 20*time.Second {
		return usagef("--hold %v: must be between 0 and 20s (CDN origin timeouts are 30s)", o.Hold)
	}
	if o.SealGrace < 0 || o.SealGrace >= time.Second {
		return usagef("--seal-grace %v: must be at least 0 and under 1s", o.SealGrace)
	}
	if o.RingSeconds < 10 || o.RingSeconds > 3600 {
		return usagef("--ring-seconds %d: must be between 10 and 3600", o.RingSeconds)
	}
	if o.PollMS < 100 || o.PollMS > 60000 {
		return usagef("--poll-ms %d: must be between 100 and 60000", o.PollMS)
	}
	if o.MaxBody < 1024 || o.MaxBatch < 1 || o.MaxText < 1 || o.MaxRooms < 1 || o.MaxHeld < 0 || o.PublishWorkers < 1 || o.SpoolBytes < 1<<20 || o.QueueMemory < 1 {
		return usagef("--max-body (≥ 1024), --max-batch, --max-text, --max-rooms, --publish-workers, --queue-memory-bytes and --spool-bytes (≥ 1 MiB) must be positive")
	}
	if o.LogRetention < time.Minute {
		return usagef("--log-retention %v: must be at least 1m", o.LogRetention)
	}
	if err := o.capOptions.validate(); err != nil {
		return err
	}
	return o.securityOptions.validate(o.Listen, o.Role)
}

// roles is what one serve process runs.
type roles struct{ ingest, writer, origin bool }

func parseRole(role string) (roles, error) {
	switch role {
	case "all":
		return roles{true, true, true}, nil
	case "ingest":
		return roles{ingest: true}, nil
	case "writer":
		return roles{writer: true}, nil
	case "origin":
		return roles{origin: true}, nil
	}
	return roles{}, usagef("--role %q: use all, ingest, writer or origin", role)
}

func runServe(ctx context.Context, opts *serveOptions, stderr io.Writer) error {
	if err := opts.validate(); err != nil {
		return err
	}
	role, _ := parseRole(opts.Role)
	external := len(opts.NATS) > 0
	log, err := newLogger(stderr, opts.LogLevel, opts.LogFormat)
	if err != nil {
		return err
	}
	log = log.With("role", opts.Role)
	if err := os.MkdirAll(opts.Data, 0o755); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	var store publisher.Store
	storeDesc := "none"
	if role.writer || role.origin {
		if store, storeDesc, err = opts.storeOptions.open(ctx, opts.Data); err != nil {
			return err
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	sec, err := opts.securityOptions.build(log.With("component", "ingest"), reg)
	if err != nil {
		return err
	}

	logDesc := "embedded NATS JetStream in " + filepath.Join(opts.Data, "nats")
	if external {
		logDesc = "NATS " + fmt.Sprint(opts.NATS)
	}
	log.Info("opening the message log", "log", logDesc)
	lg, err := logstream.Open(ctx, logstream.Config{
		URLs:        opts.NATS,
		DataDir:     opts.Data,
		MaxAge:      opts.LogRetention,
		SyncAlways:  opts.LogFsync,
		Replicas:    opts.LogReplicas,
		LeaseTTL:    opts.LeaseTTL,
		ConnectOnly: !role.ingest && !role.writer,
		Name:        "danmaku serve --role " + opts.Role,
		Logger:      log,
		Listen:      opts.NATSListen,
	})
	if err != nil {
		return err
	}
	defer lg.Close()

	mux := http.NewServeMux()
	checks := map[string]func() bool{"log": lg.Ready}
	var org *origin.Origin
	if role.origin {
		org, err = origin.New(origin.Config{
			Store:       store,
			RingSeconds: opts.RingSeconds,
			Hold:        opts.Hold,
			MaxHeld:     opts.MaxHeld,
			MaxRooms:    opts.MaxRooms,
			PollMS:      opts.PollMS,
			Logger:      log.With("component", "origin"),
			Registerer:  reg,

			MaxHeldPerClient: opts.MaxHeldPerClient,
			TrustProxyHops:   opts.TrustProxyHops,
			CORS:             sec.cors,
		})
		if err != nil {
			return err
		}
		if external {
			// Writers elsewhere (and this one) announce over NATS.
			recv, err := announce.Receive(lg.Conn(), org, log.With("component", "announce"))
			if err != nil {
				return err
			}
			defer recv.Close()
		}
		org.Register(mux)
		org.RegisterAdmin(mux, opts.AdminToken)
		web.Register(mux)
		checks["origin"] = org.Ready
	}
	if role.ingest {
		ing, err := ingest.New(ingest.Config{
			Log:        lg,
			Limits:     ingest.Limits{MaxText: opts.MaxText, MaxBatch: opts.MaxBatch},
			MaxBody:    opts.MaxBody,
			Logger:     log.With("component", "ingest"),
			Registerer: reg,

			Auth:        sec.auth,
			RateLimiter: sec.limiter,
			ClientIP:    sec.clientIP,
			Enrich:      sec.enrich,
			CORS:        sec.cors,
		})
		if err != nil {
			return err
		}
		ing.Register(mux)
	}

	// The writer: a lease per partition, a bucketer per lease, one
	// publisher for all of them.
	var pub *publisher.Publisher
	var leases *lease.Manager
	if role.writer {
		var anns announcers
		if org != nil {
			anns = append(anns, org)
		}
		if external {
			anns = append(anns, announce.NewSender(lg.Conn(), log.With("component", "announce")))
		}
		pub, err = publisher.New(publisher.Config{
			Store:       store,
			Announcer:   anns,
			Workers:     opts.PublishWorkers,
			SpoolDir:    filepath.Join(opts.Data, "spool"),
			SpoolBytes:  opts.SpoolBytes,
			MemoryBytes: opts.QueueMemory,
			Logger:      log.With("component", "publisher"),
			Registerer:  reg,
		})
		if err != nil {
			return err
		}
		group := newWriterGroup(lg, pub, bucketer.Config{
			Grace:   opts.SealGrace,
			Cap:     opts.capOptions.cap(),
			Metrics: bucketer.NewMetrics(reg),
			Logger:  log.With("component", "writer"),
		}, opts.ShutdownTimeout/3)
		leases, err = lease.New(lease.Config{
			KV:      lg.Leases(),
			ID:      instanceID(),
			Slots:   keys.Partitions,
			TTL:     opts.LeaseTTL,
			Acquire: group.acquire,
			Release: group.release,
			Logger:  log.With("component", "leases"),
		})
		if err != nil {
			return err
		}
		checks["writer"] = func() bool { return leases.Settled() && group.ready() }
	}
	registerOps(mux, reg, checks)
	registerFallbacks(mux)

	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", opts.Listen, err)
	}
	srv := newHTTPServer(httpServerConfig{
		Handler:        httpx.CleanPaths(mux), // dot and empty segments: a JSON 400, not a redirect
		Origin:         org,
		Hold:           opts.Hold,
		MaxBody:        opts.MaxBody,
		MaxHeaderBytes: 16 << 10,
		Log:            log,
	})

	// The writer and the ticker run until their own contexts end, which
	// happens only after the HTTP server stopped taking posts.
	writerCtx, stopWriter := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWriter()
	failed := make(chan error, 3)
	var writerDone sync.WaitGroup
	if role.writer {
		writerDone.Add(2)
		go func() {
			defer writerDone.Done()
			leases.Run(writerCtx) // on the way out: every partition stopped and handed over
		}()
		go func() {
			defer writerDone.Done()
			lg.RunTicker(writerCtx, opts.SealGrace)
		}()
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			failed <- fmt.Errorf("http: %w", err)
		}
	}()
	addr := ln.Addr().String()
	if u := lg.ClientURL(); u != "" {
		logDesc += ", reachable at " + u
	}
	log.Info("danmaku serving", "addr", "http://"+addr, "store", storeDesc, "log", logDesc)
	if opts.onListen != nil {
		opts.onListen(addr)
	}

	var pubFailed <-chan error
	if pub != nil {
		pubFailed = pub.Failed()
	}
	var runErr error
	select {
	case <-ctx.Done():
		log.Info("stopping: no new posts; sealing what is in flight")
	case runErr = <-failed:
		log.Error("stopping after a failure", "err", runErr)
	case err := <-pubFailed:
		runErr = fmt.Errorf("publisher: %w", err)
		log.Error("stopping after a failure; a restart rebuilds from the log", "err", runErr)
	}
	sctx, cancel := context.WithTimeout(context.Background(), opts.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("http server did not stop cleanly", "err", err)
	}
	stopWriter()
	writerDone.Wait()
	if pub != nil {
		pub.Close(sctx)
	}
	log.Info("stopped")
	return runErr
}

// registerOps adds /healthz, /readyz and /metrics.
func registerOps(mux *http.ServeMux, reg *prometheus.Registry, checks map[string]func() bool) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		httpx.JSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		res := map[string]bool{}
		ready := true
		for name, ok := range checks {
			res[name] = ok()
			ready = ready && res[name]
		}
		status := http.StatusOK
		if !ready {
			status = http.StatusServiceUnavailable
		}
		w.Header().Set("Cache-Control", "no-store")
		httpx.JSON(w, status, map[string]any{"ready": ready, "checks": res})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
}

// registerFallbacks answers unknown paths and wrong methods with JSON errors
// instead of the mux's plain text.
func registerFallbacks(mux *http.ServeMux) {
	allow := func(methods string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", methods)
			httpx.Error(w, http.StatusMethodNotAllowed, "method_not_allowed",
				fmt.Sprintf("%s is not allowed here; use %s", r.Method, methods))
		}
	}
	mux.HandleFunc("/v1/rooms/{room}/messages", allow("POST"))
	mux.HandleFunc("/v1/rooms/{room}/buckets/{name}", allow("GET, HEAD"))
	mux.HandleFunc("/v1/rooms/{room}/segments/{name}", allow("GET, HEAD"))
	mux.HandleFunc("/v1/rooms/{room}/head", allow("GET, HEAD"))
	mux.HandleFunc("/healthz", allow("GET, HEAD"))
	mux.HandleFunc("/readyz", allow("GET, HEAD"))
	mux.HandleFunc("/metrics", allow("GET, HEAD"))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		httpx.Error(w, http.StatusNotFound, "not_found", "no such path: "+r.URL.Path)
	})
}
