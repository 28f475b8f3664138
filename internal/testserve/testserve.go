// Package testserve runs the real danmaku binary as a subprocess for tests:
// it builds the binary once per test process, starts `danmaku serve` on a
// free loopback port with a temporary data directory, and can stop, kill and
// restart it.
package testserve

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Server is a running (or stopped) `danmaku serve` subprocess.
type Server struct {
	// Base is the server's URL, "http://127.0.0.1:PORT", the same across
	// restarts.
	Base string
	// Addr is the listen address, "127.0.0.1:PORT".
	Addr string
	// Data is the data directory, kept across restarts.
	Data string

	t    testing.TB
	args []string

	mu   sync.Mutex    // guards cmd, done and logs
	cmd  *exec.Cmd     // the current process; nil when stopped
	done chan struct{} // closed when cmd has exited
	logs *bytes.Buffer // stderr of every run
}

var build struct {
	once sync.Once
	path string
	err  error
}

// Binary returns the path of the danmaku binary built from this module,
// building it on first use. When the tests run with -race, so does the
// binary.
func Binary(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			build.err = err
			return
		}
		dir := filepath.Join(root, "bin", "testserve")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			build.err = err
			return
		}
		// Concurrent test processes build into their own file and rename it
		// into place, so none sees a half-written binary.
		tmp, err := os.CreateTemp(dir, "danmaku-*.tmp")
		if err != nil {
			build.err = err
			return
		}
		tmp.Close()
		args := []string{"build", "-o", tmp.Name()}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, ".")...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			os.Remove(tmp.Name())
			build.err = fmt.Errorf("testserve: go build: %v\n%s", err, out)
			return
		}
		build.path = filepath.Join(dir, "danmaku")
		if raceEnabled {
			build.path += "-race"
		}
		if err := os.Rename(tmp.Name(), build.path); err != nil {
			build.err = err
		}
	})
	if build.err != nil {
		t.Fatalf("testserve: %v", build.err)
	}
	return build.path
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("testserve: go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("testserve: not inside the danmaku module")
	}
	return filepath.Dir(mod), nil
}

// Start runs `danmaku serve` with args on a free loopback port and waits
// until /readyz answers 200. Unless args name --data, the data directory is
// a fresh t.TempDir(). The server is stopped when the test ends; its log is
// printed if the test failed.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	bin := Binary(t)
	s := &Server{t: t, logs: &bytes.Buffer{}}
	for i, a := range args {
		switch {
		case a == "--data" && i+1 < len(args):
			s.Data = args[i+1]
		case strings.HasPrefix(a, "--data="):
			s.Data = strings.TrimPrefix(a, "--data=")
		}
	}
	if s.Data == "" {
		s.Data = t.TempDir()
		args = append(args, "--data", s.Data)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testserve: find a free port: %v", err)
	}
	s.Addr = ln.Addr().String()
	ln.Close()
	s.Base = "http://" + s.Addr
	s.args = append([]string{"serve", "--listen", s.Addr, "--log-level", "warn"}, args...)
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			s.mu.Lock()
			t.Logf("danmaku serve log:\n%s", s.logs.String())
			s.mu.Unlock()
		}
	})
	s.start(bin)
	return s
}

func (s *Server) start(bin string) {
	s.t.Helper()
	cmd := exec.Command(bin, s.args...)
	cmd.Stdout = &lockedWriter{s: s}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("testserve: start %s: %v", bin, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	if err := s.waitReady(done, 30*time.Second); err != nil {
		s.Kill()
		s.mu.Lock()
		logs := s.logs.String()
		s.mu.Unlock()
		s.t.Fatalf("testserve: %v\n%s", err, logs)
	}
}

func (s *Server) waitReady(exited <-chan struct{}, within time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.Base+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return errors.New("danmaku serve exited before it was ready")
		case <-ctx.Done():
			return fmt.Errorf("%s/readyz did not answer 200 within %v", s.Base, within)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop ends the server gracefully (SIGTERM) and waits for it to exit,
// killing it after 30 s. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.signal(syscall.SIGTERM, 30*time.Second)
}

// Kill ends the server at once (SIGKILL), as a crash would, and waits for
// it to exit.
func (s *Server) Kill() {
	s.signal(syscall.SIGKILL, 0)
}

func (s *Server) signal(sig syscall.Signal, grace time.Duration) {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(sig)
	if grace > 0 {
		select {
		case <-done:
			return
		case <-time.After(grace):
			cmd.Process.Kill()
		}
	}
	<-done
}

// Restart stops the server gracefully and starts it again with the same
// arguments, address and data directory.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start(Binary(s.t))
}

// Pid is the process id of the running server, 0 when it is stopped.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Logs returns what the server wrote to stdout and stderr so far.
func (s *Server) Logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs.String()
}

// lockedWriter appends the subprocess's output to the server's log.
type lockedWriter struct{ s *Server }

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.s.logs.Write(p)
}
