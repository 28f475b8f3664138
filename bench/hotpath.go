package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// benchHotPath measures requests per second for one ring-resident bucket
// over keep-alive connections: danmaku serve (every role in one process),
// the origin alone on the same HTTP stack (bench origin-server, profiled),
// and nginx serving the identical bytes with gzip_static, each on one core
// with wrk on the other.
func benchHotPath(ctx context.Context, e *env) *section {
	s := &section{id: "hotpath", num: "1", title: "Origin hot path: a ring-resident bucket against nginx"}
	goBench(ctx, e, s)
	if missing := e.ensureTools(map[string]string{"wrk": "wrk", "nginx": "nginx-light"}); len(missing) > 0 {
		s.skip("the wrk comparison needs %s (apt-get install wrk nginx-light)", strings.Join(missing, " and "))
		return s
	}
	srv, err := e.startServe(ctx)
	if err != nil {
		s.err = err
		return s
	}
	defer srv.stop()
	room := "hot"
	second, gz, err := sealedBucket(ctx, srv.base, room)
	if err != nil {
		s.err = err
		return s
	}
	path := fmt.Sprintf("/v1/rooms/%s/buckets/%d.json", room, second)

	// nginx: the same bytes as a .gz file next to where the JSON would be.
	dir := filepath.Join(e.tmp, "nginx")
	file := filepath.Join(dir, "root", filepath.FromSlash(path)+".gz")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		s.err = err
		return s
	}
	if err := os.WriteFile(file, gz, 0o644); err != nil {
		s.err = err
		return s
	}
	ngAddr, _ := freeAddr()
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(nginxStaticConf(dir, ngAddr)), 0o644); err != nil {
		s.err = err
		return s
	}
	ng, err := e.start("nginx", e.pinned(serverCPU, "nginx", "-c", conf))
	if err != nil {
		s.err = err
		return s
	}
	defer ng.stop()
	if err := waitHTTP(ctx, ng, "http://"+ngAddr+path, 10*time.Second); err != nil {
		s.err = err
		return s
	}

	// The origin alone: the same handler and http.Server settings, no log
	// or writer beside it, with a CPU profile of the run.
	alone, profile, err := startOriginAlone(ctx, e, "fasthttp", room, second, gz)
	if err != nil {
		s.err = err
		return s
	}
	aloneNet, _, err := startOriginAlone(ctx, e, "nethttp", room, second, gz)
	if err != nil {
		s.err = err
		return s
	}

	runs, dur := 5, "5s"
	if e.quick {
		runs, dur = 1, "1s"
	}
	targets := []struct {
		name, url string
		rps       []float64
	}{
		{name: "danmaku serve", url: srv.base + path},
		{name: "origin alone on fasthttp (bench origin-server)", url: alone.base + path},
		{name: "origin alone on net/http (bench origin-server --stack nethttp)", url: aloneNet.base + path},
		{name: "nginx gzip_static", url: "http://" + ngAddr + path},
	}
	var ratios, aloneRatios, netRatios []float64
	for i := 0; i < runs; i++ {
		for t := range targets {
			argv := e.pinned(loadCPU, "wrk", "-t1", "-c64", "-d"+dur, "-H", "Accept-Encoding: gzip", targets[t].url)
			if i == 0 {
				s.cmd(e.show(argv))
			}
			rps, err := runWrk(ctx, argv)
			if err != nil {
				s.err = err
				return s
			}
			targets[t].rps = append(targets[t].rps, rps)
		}
		ratios = append(ratios, targets[0].rps[i]/targets[3].rps[i])
		aloneRatios = append(aloneRatios, targets[1].rps[i]/targets[3].rps[i])
		netRatios = append(netRatios, targets[2].rps[i]/targets[3].rps[i])
	}
	alone.stop()
	aloneNet.stop()
	ng.stop()

	ratio := median(ratios)
	netHTTPRatio := fmt.Sprintf("%.2f× in this run, with the same handler", median(netRatios))
	s.add("danmaku serve ÷ nginx, req/s on one core", fmt.Sprintf("%.2f× (%.0f vs %.0f req/s)", ratio, median(targets[0].rps), median(targets[3].rps)), "≥ 1.0×", yes(ratio >= 1.0))
	s.add("origin alone on fasthttp ÷ nginx", fmt.Sprintf("%.2f× (%.0f req/s)", median(aloneRatios), median(targets[1].rps)), "", nil)
	s.add("origin alone on net/http ÷ nginx", fmt.Sprintf("%.2f× (%.0f req/s)", median(netRatios), median(targets[2].rps)), "", nil)
	var tbl strings.Builder
	tbl.WriteString("| server (core 0) | req/s per run | median |\n| --- | --- | --- |\n")
	for _, t := range targets {
		var xs []string
		for _, r := range t.rps {
			xs = append(xs, fmt.Sprintf("%.0f", r))
		}
		fmt.Fprintf(&tbl, "| %s | %s | %.0f |\n", t.name, strings.Join(xs, ", "), median(t.rps))
	}
	lo, hi := slices.Min(ratios), slices.Max(ratios)
	s.detail(fmt.Sprintf("A %d-byte gzipped bucket, `Accept-Encoding: gzip`, 64 keep-alive connections from one wrk thread on core 1; the ratio is the median of the per-run ratios (the runs alternate between the servers; danmaku serve ÷ nginx ranged %.2f× to %.2f× over the runs, so a median near 1.0× is a tie within this machine's noise).\n\n%s", len(gz), lo, hi, tbl.String()))
	s.note("nginx: Debian's nginx-light, one worker on core 0, `gzip_static always`, `sendfile`, `open_file_cache`, access log off, `keepalive_requests 1000000`, and the origin's headers added (`Cache-Control`, `Access-Control-Allow-Origin`, `Vary`); it adds `Server`, `Last-Modified`, `Accept-Ranges` and its own ETag besides.")
	if top, err := profileShares(ctx, e, profile); err == nil {
		s.detail("Where the origin's CPU goes under wrk (CPU profile of `bench origin-server` on fasthttp, flat shares):\n\n" + top)
	} else {
		s.note("profile: %v", err)
	}
	s.note("The read path runs on fasthttp (cmd/httpserver.go): bucket, segment and head GETs are native fasthttp handlers (`origin.FastHandler`, no allocation on a ring hit) and every other route reaches the net/http mux through fasthttpadaptor. On Go's net/http the same handler reached about half of nginx here (%s): its per-request Request, header map, context and goroutine hand-offs cost more than the whole answer. fasthttp cannot tell a handler that its client went away, so a held read whose client left waits out its hold (at most `--hold`, 3 s, counted against `--max-held`).", netHTTPRatio)
	if ratio < 1.0 {
		s.note("What bounds it: our handler is about 0.3 µs of the roughly %.0f µs each request costs the core; the rest is the HTTP server (parsing, the response header, a read and a write system call per request) and the Go runtime, against nginx's event loop with writev.", 1e6/median(targets[0].rps))
	}
	return s
}

func nginxStaticConf(dir, addr string) string {
	return fmt.Sprintf(`worker_processes 1;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  open_file_cache max=1000 inactive=60s;
  keepalive_requests 1000000; keepalive_timeout 120s;
  types { } default_type application/json;
  client_body_temp_path %[1]s/tmp-client; proxy_temp_path %[1]s/tmp-proxy; fastcgi_temp_path %[1]s/tmp-fastcgi;
  uwsgi_temp_path %[1]s/tmp-uwsgi; scgi_temp_path %[1]s/tmp-scgi;
  server {
    listen %[2]s;
    root %[1]s/root;
    location /v1/rooms/ {
      gzip_static always;
      add_header Cache-Control "public, max-age=31536000, immutable";
      add_header Access-Control-Allow-Origin "*";
      add_header Vary "Accept-Encoding";
    }
  }
}
`, dir, addr)
}

var wrkRPS = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
var wrkNon2xx = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)

func runWrk(ctx context.Context, argv []string) (float64, error) {
	out, err := runCmd(ctx, argv)
	if err != nil {
		return 0, err
	}
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		return 0, fmt.Errorf("wrk: %s answers were not 2xx:\n%s", m[1], out)
	}
	m := wrkRPS.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("wrk: no Requests/sec in:\n%s", out)
	}
	return strconv.ParseFloat(m[1], 64)
}

// sealedBucket posts one message to room and returns the second it was
// sealed in and the stored bytes of that bucket.
func sealedBucket(ctx context.Context, base, room string) (int64, []byte, error) {
	resp, err := http.Post(base+"/v1/rooms/"+room+"/messages", "application/json",
		strings.NewReader(`{"text":"前方高能 🎉 hello","user_id":"u42","user_name":"小明","color":"#fe0302"}`))
	if err != nil {
		return 0, nil, err
	}
	var acc struct {
		Second int64 `json:"second"`
	}
	err = decodeJSON(resp, &acc)
	if err != nil {
		return 0, nil, err
	}
	url := fmt.Sprintf("%s/v1/rooms/%s/buckets/%d.json", base, room, acc.Second)
	for i := 0; i < 20 && ctx.Err() == nil; i++ {
		status, body, err := get(url) // held until sealed
		if err == nil && status == http.StatusOK {
			return acc.Second, body, nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return 0, nil, errors.New("the posted bucket did not seal")
}

// startOriginAlone runs bench origin-server on the server core, serving gz
// as room's bucket at second.
func startOriginAlone(ctx context.Context, e *env, stack, room string, second int64, gz []byte) (*proc, string, error) {
	bodyFile := filepath.Join(e.tmp, "alone-body.gz")
	if err := os.WriteFile(bodyFile, gz, 0o644); err != nil {
		return nil, "", err
	}
	profile := filepath.Join(e.tmp, "origin-alone-"+stack+".pprof")
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	argv := e.pinned(serverCPU, e.benchBin(), "origin-server", "--listen", addr, "--room", room,
		"--second", strconv.FormatInt(second, 10), "--body", bodyFile, "--cpuprofile", profile, "--stack", stack)
	p, err := e.startListening(ctx, "origin-server", argv, addr, fmt.Sprintf("/v1/rooms/%s/buckets/%d.json", room, second), 10*time.Second)
	if err != nil {
		return nil, "", err
	}
	return p, profile, nil
}

// profileShares sums a CPU profile's flat samples by where they are spent.
func profileShares(ctx context.Context, e *env, profile string) (string, error) {
	if _, err := os.Stat(profile); err != nil {
		return "", fmt.Errorf("no profile written: %w", err)
	}
	out, err := runCmd(ctx, []string{"go", "tool", "pprof", "-top", "-nodecount=100000", e.benchBin(), profile})
	if err != nil {
		return "", err
	}
	groups := []struct{ name, prefix string }{
		{"system calls (read, write, epoll)", "syscall"},
		{"the HTTP server (fasthttp)", "github.com/valyala/fasthttp"},
		{"net/http", "net/http."},
		{"bufio, net, textproto, time and the rest of std", ""},
		{"the Go runtime (scheduler, GC, memory)", "runtime."},
		{"danmaku origin (handler, ring, metrics)", "github.com/"},
	}
	share := map[string]float64{}
	var total float64
	var ours []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || !strings.HasSuffix(f[1], "%") {
			continue
		}
		pct, err := strconv.ParseFloat(strings.TrimSuffix(f[1], "%"), 64)
		if err != nil {
			continue
		}
		fn := strings.Join(f[5:], " ")
		g := "bufio, net, textproto, time and the rest of std"
		switch {
		case strings.Contains(fn, "syscall") || strings.HasPrefix(fn, "internal/runtime/syscall"):
			g = "system calls (read, write, epoll)"
		case strings.HasPrefix(fn, "github.com/valyala/fasthttp"):
			g = "the HTTP server (fasthttp)"
		case strings.HasPrefix(fn, "net/http."):
			g = "net/http"
		case strings.HasPrefix(fn, "runtime.") || strings.HasPrefix(fn, "internal/runtime") || strings.HasPrefix(fn, "sync."):
			g = "the Go runtime (scheduler, GC, memory)"
		case strings.HasPrefix(fn, "github.com/danmaku/"), strings.HasPrefix(fn, "github.com/prometheus/"):
			g = "danmaku origin (handler, ring, metrics)"
			if pct >= 0.5 {
				ours = append(ours, fmt.Sprintf("%s %.1f%%", fn, pct))
			}
		}
		share[g] += pct
		total += pct
	}
	if total == 0 {
		return "", errors.New("empty profile")
	}
	var b strings.Builder
	b.WriteString("| where | share of CPU |\n| --- | --- |\n")
	for _, g := range groups {
		fmt.Fprintf(&b, "| %s | %.0f%% |\n", g.name, share[g.name])
	}
	slices.Sort(ours)
	if len(ours) > 0 {
		fmt.Fprintf(&b, "\nLargest of ours: %s.", strings.Join(ours, ", "))
	}
	return b.String(), nil
}

func (e *env) benchBin() string { return filepath.Join(e.root, "bin", "bench", "bench") }

// goBench runs the handler's Go benchmarks: ns and allocations per request.
func goBench(ctx context.Context, e *env, s *section) {
	argv := []string{"go", "test", "-run", "^$", "-bench", "RingHit", "-benchmem", "-count", "5", "./origin"}
	if e.quick {
		argv = []string{"go", "test", "-run", "^$", "-bench", "RingHit", "-benchmem", "-count", "1", "-benchtime", "100ms", "./origin"}
	}
	s.cmd(e.show(argv))
	out, err := runCmd(ctx, argv)
	if err != nil {
		s.err = err
		return
	}
	type fig struct{ ns, allocs []float64 }
	figs := map[string]*fig{}
	var order []string
	re := regexp.MustCompile(`^(Benchmark\S+?)(-\d+)?\s+\d+\s+([0-9.]+) ns/op\s+([0-9.]+) B/op\s+([0-9.]+) allocs/op`)
	for _, line := range strings.Split(out, "\n") {
		m := re.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if figs[m[1]] == nil {
			figs[m[1]] = &fig{}
			order = append(order, m[1])
		}
		ns, _ := strconv.ParseFloat(m[3], 64)
		al, _ := strconv.ParseFloat(m[5], 64)
		figs[m[1]].ns = append(figs[m[1]].ns, ns)
		figs[m[1]].allocs = append(figs[m[1]].allocs, al)
	}
	var tbl strings.Builder
	tbl.WriteString("| Go benchmark (`testing.B`, handler only) | ns/op (median) | allocs/op |\n| --- | --- | --- |\n")
	for _, name := range order {
		f := figs[name]
		fmt.Fprintf(&tbl, "| %s | %.0f | %.0f |\n", name, median(f.ns), median(f.allocs))
	}
	if f := figs["BenchmarkFastRingHit"]; f != nil {
		s.add("allocations per ring hit (BenchmarkFastRingHit, the served path)", fmt.Sprintf("%.0f (%.0f ns/op)", median(f.allocs), median(f.ns)), "0", yes(median(f.allocs) == 0))
	} else {
		s.err = fmt.Errorf("BenchmarkFastRingHit did not run:\n%s", out)
	}
	s.detail(tbl.String() + "\n`BenchmarkFastRingHit` is the fasthttp handler `danmaku serve` answers reads with; `BenchmarkRingHit` the net/http one (`origin.Handler`, in front of the mux); `BenchmarkRingHitMux` the same request routed by `http.ServeMux`, which allocates its wildcard matches.")
}
