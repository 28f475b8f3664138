package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Cores: servers under test on one, load generators on the other.
const (
	serverCPU = "0"
	loadCPU   = "1"
)

// env is what every measurement shares: the built binary, a scratch
// directory and the processes started, so that all of them are stopped.
type env struct {
	quick   bool
	root    string // module root
	bin     string // the danmaku binary under test
	tmp     string
	taskset bool

	mu    sync.Mutex // guards procs
	procs []*proc
}

func newEnv(quick bool) (*env, error) {
	root, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return nil, errors.New("run from the module root: go run ./bench")
	}
	tmp, err := os.MkdirTemp("", "danmaku-bench-")
	if err != nil {
		return nil, err
	}
	// Proxies drop root for their workers, which must read what is here.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, err
	}
	e := &env{quick: quick, root: root, tmp: tmp}
	_, err = exec.LookPath("taskset")
	e.taskset = err == nil && runtime.NumCPU() >= 2
	e.bin = filepath.Join(root, "bin", "bench", "danmaku")
	e.logf("building %s", e.bin)
	for _, b := range [][]string{{e.bin, "."}, {filepath.Join(root, "bin", "bench", "bench"), "./bench"}} {
		build := exec.Command("go", "build", "-o", b[0], b[1])
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build %s: %v\n%s", b[1], err, out)
		}
	}
	return e, nil
}

func (e *env) logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", a...)
}

func (e *env) cleanup() {
	e.mu.Lock()
	procs := e.procs
	e.procs = nil
	e.mu.Unlock()
	for _, p := range procs {
		p.stop()
	}
	os.RemoveAll(e.tmp)
}

// pinned prefixes argv with taskset to run on cpu, when it can.
func (e *env) pinned(cpu string, argv ...string) []string {
	if !e.taskset {
		return argv
	}
	return append([]string{"taskset", "-c", cpu}, argv...)
}

// show renders argv as a command line a person can paste, with the
// binary and the scratch directory named as the reader would.
func (e *env) show(argv []string, env ...string) string {
	var parts []string
	parts = append(parts, env...)
	for _, a := range argv {
		a = strings.ReplaceAll(a, e.bin, "bin/bench/danmaku")
		a = strings.ReplaceAll(a, e.tmp, "$TMP")
		if strings.ContainsAny(a, " '\"*;&|<>$") && !strings.HasPrefix(a, "$TMP") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// proc is a process started by the bench.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	logs *lockedBuffer
	base string // http://addr for servers
	addr string
	argv []string
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 1<<20 {
		return len(p), nil
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (e *env) start(name string, argv []string, extraEnv ...string) (*proc, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), extraEnv...)
	logs := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), logs: logs, argv: argv}
	go func() { cmd.Wait(); close(p.done) }()
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	return p, nil
}

// stop ends the process (and its children) with SIGTERM, then SIGKILL.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startServe runs danmaku serve on the server core with a fresh data
// directory and waits until it is ready. The bench posts from one address:
// no per-poster rate limit.
func (e *env) startServe(ctx context.Context, extra ...string) (*proc, error) {
	return e.startServeArgv(ctx, e.pinned(serverCPU, append([]string{e.bin, "serve", "--anon-rate", "0"}, extra...)...))
}

// startServeArgv starts a serve command line on a free port with a fresh
// data directory and waits until it is ready.
func (e *env) startServeArgv(ctx context.Context, argv []string) (*proc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	data, err := os.MkdirTemp(e.tmp, "serve-")
	if err != nil {
		return nil, err
	}
	argv = append(argv, "--listen", addr, "--data", data, "--log-level", "warn")
	return e.startListening(ctx, "serve", argv, addr, "/readyz", 30*time.Second)
}

// startListening starts argv, a server that will listen on addr, and waits
// until GET readyPath answers there.
func (e *env) startListening(ctx context.Context, name string, argv []string, addr, readyPath string, within time.Duration) (*proc, error) {
	p, err := e.start(name, argv)
	if err != nil {
		return nil, err
	}
	p.addr, p.base = addr, "http://"+addr
	if err := waitHTTP(ctx, p, p.base+readyPath, within); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

func waitHTTP(ctx context.Context, p *proc, url string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited: %s", p.name, tail(p.logs.String()))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s: %s did not answer 200 within %v: %s", p.name, url, within, tail(p.logs.String()))
}

func tail(s string) string {
	if len(s) > 2000 {
		s = "…" + s[len(s)-2000:]
	}
	return strings.TrimSpace(s)
}

// metric sums every sample of a Prometheus metric whose labels contain all
// of want ("kind=\"bucket\"").
func metric(base, name string, want ...string) (float64, error) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sum := 0.0
	found := false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(rest, w)
		}
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
			found = true
		}
	}
	if !found {
		return 0, fmt.Errorf("metric %s%v not found", name, want)
	}
	return sum, sc.Err()
}

// rss reads VmRSS and VmHWM of pid in bytes.
func rss(pid int) (cur, peak int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			cur = n << 10
		case "VmHWM:":
			peak = n << 10
		}
	}
	return cur, peak, nil
}

// ensureTools installs Debian packages for missing tools when it can
// (root with apt-get), and reports which tools are still missing.
func (e *env) ensureTools(tools map[string]string) (missing []string) {
	var pkgs []string
	for tool, pkg := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			pkgs = append(pkgs, pkg)
		}
	}
	if len(pkgs) > 0 && os.Geteuid() == 0 {
		if _, err := exec.LookPath("apt-get"); err == nil {
			slices.Sort(pkgs)
			pkgs = slices.Compact(pkgs)
			e.logf("installing %s from Debian", strings.Join(pkgs, " "))
			sh := "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq " + strings.Join(pkgs, " ")
			if out, err := exec.Command("sh", "-c", sh).CombinedOutput(); err != nil {
				e.logf("apt-get failed: %v\n%s", err, tail(string(out)))
			}
		}
	}
	for tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	slices.Sort(missing)
	return missing
}

// machine describes where the figures were measured.
func (e *env) machine() []string {
	var out []string
	model, cores := "", ""
	if b, err := exec.Command("lscpu").Output(); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			switch strings.TrimSpace(k) {
			case "Model name":
				model = strings.TrimSpace(v)
			case "CPU(s)":
				cores = strings.TrimSpace(v)
			}
		}
	}
	out = append(out, fmt.Sprintf("CPU: %s, %s logical CPUs (lscpu)", model, cores))
	if b, err := exec.Command("uname", "-sr").Output(); err == nil {
		out = append(out, "kernel: "+strings.TrimSpace(string(b)))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		out = append(out, "memory: "+strings.Join(strings.Fields(line)[1:], " "))
	}
	out = append(out, "Go: "+runtime.Version())
	for _, tool := range [][]string{{"wrk", "-v"}, {"nginx", "-v"}, {"varnishd", "-V"}} {
		if b, err := exec.Command(tool[0], tool[1]).CombinedOutput(); err == nil || len(b) > 0 {
			line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
			if line != "" && !strings.Contains(line, "not found") {
				out = append(out, tool[0]+": "+line)
			}
		}
	}
	if !e.taskset {
		out = append(out, "taskset: not available or fewer than 2 CPUs; processes were not pinned")
	}
	return out
}

// runCmd runs argv and returns its standard output.
func runCmd(ctx context.Context, argv []string) (string, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s: %v: %s", argv[0], err, tail(errb.String()))
	}
	return out.String(), nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// get fetches url with gzip accepted and returns the status and raw body.
func get(url string) (int, []byte, error) {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := (&http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func sortFloats(xs []float64) { slices.Sort(xs) }
