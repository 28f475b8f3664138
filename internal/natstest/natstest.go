// Package natstest runs a real NATS JetStream cluster of nats-server
// processes on loopback for tests of the scaled-out system: nodes can be
// killed and restarted like real ones.
package natstest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/danmaku/danmaku/internal/testbin"
)

// Install is how the test scripts install the server.
const Install = "go install github.com/nats-io/nats-server/v2@v2.15.2"

// Cluster is a running cluster.
type Cluster struct {
	t     testing.TB
	bin   string
	Nodes []*Node
}

// Node is one nats-server process.
type Node struct {
	Name        string
	ClientURL   string
	clientPort  int
	clusterPort int
	dir         string
	args        []string
	mu          sync.Mutex // guards cmd and done
	cmd         *exec.Cmd
	done        chan struct{}
	log         *os.File
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start runs an n-node JetStream cluster and waits until it has a
// JetStream leader. Without the binary the test is skipped, except in CI.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	bin := testbin.Require(t, "nats-server", Install)
	c := &Cluster{t: t, bin: bin}
	var routes []string
	for i := range n {
		nd := &Node{Name: fmt.Sprintf("n%d", i+1), clientPort: freePort(t), clusterPort: freePort(t), dir: t.TempDir()}
		nd.ClientURL = fmt.Sprintf("nats://127.0.0.1:%d", nd.clientPort)
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", nd.clusterPort))
		c.Nodes = append(c.Nodes, nd)
	}
	for _, nd := range c.Nodes {
		nd.args = []string{
			"--name", nd.Name, "--addr", "127.0.0.1", "--port", fmt.Sprint(nd.clientPort),
			"--jetstream", "--store_dir", nd.dir,
			"--cluster_name", "danmaku-test", "--cluster", fmt.Sprintf("nats://127.0.0.1:%d", nd.clusterPort),
			"--routes", strings.Join(routes, ","),
		}
		c.start(nd)
	}
	t.Cleanup(func() {
		for _, nd := range c.Nodes {
			nd.Kill()
		}
		if t.Failed() {
			for _, nd := range c.Nodes {
				b, _ := os.ReadFile(filepath.Join(nd.dir, "server.log"))
				t.Logf("nats-server %s log (tail):\n%s", nd.Name, tail(string(b), 3000))
			}
		}
	})
	c.waitJetStream()
	return c
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func (c *Cluster) start(nd *Node) {
	c.t.Helper()
	f, err := os.OpenFile(filepath.Join(nd.dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(c.bin, nd.args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start nats-server %s: %v", nd.Name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); f.Close(); close(done) }()
	nd.mu.Lock()
	nd.cmd, nd.done, nd.log = cmd, done, f
	nd.mu.Unlock()
	deadline := time.Now().Add(15 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", nd.clientPort), 200*time.Millisecond)
		if err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("nats-server %s did not listen within 15s", nd.Name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitJetStream waits until the cluster answers JetStream requests.
func (c *Cluster) waitJetStream() {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		nc, err := nats.Connect(strings.Join(c.URLs(), ","))
		if err == nil {
			js, _ := jetstream.New(nc)
			ctx, cancel := contextWithTimeout(2 * time.Second)
			_, err = js.AccountInfo(ctx)
			cancel()
			nc.Close()
			if err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("the NATS cluster has no JetStream leader after 30s: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// URLs are the client URLs of every node.
func (c *Cluster) URLs() []string {
	var out []string
	for _, nd := range c.Nodes {
		out = append(out, nd.ClientURL)
	}
	return out
}

// NATSFlag is the value for danmaku's --nats.
func (c *Cluster) NATSFlag() string { return strings.Join(c.URLs(), ",") }

// Kill ends the node at once (SIGKILL).
func (nd *Node) Kill() {
	nd.mu.Lock()
	cmd, done := nd.cmd, nd.done
	nd.cmd = nil
	nd.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-done
}

// Restart starts a killed node again on its ports and directory.
func (c *Cluster) Restart(nd *Node) {
	c.t.Helper()
	nd.Kill()
	c.start(nd)
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
