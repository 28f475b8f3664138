// Package s3test runs a real S3-compatible server, the Versity S3 Gateway
// on a posix directory, for tests of the S3 path. It is not a mock: the
// store, serve and the CLI talk to it over HTTP with the AWS SDK.
package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/danmaku/danmaku/internal/testbin"
)

// Install is how the test scripts install the gateway.
const Install = "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0"

// Gateway is a running versitygw.
type Gateway struct {
	Endpoint  string // http://127.0.0.1:PORT
	AccessKey string
	SecretKey string
	t         testing.TB
	bin, dir  string
	addr      string
	cmd       *exec.Cmd
	exited    chan struct{}
}

// Start runs a gateway on a free loopback port over a temporary directory
// and stops it when the test ends. Without the binary the test is skipped,
// except in CI (CI set), where that is a failure.
func Start(t testing.TB) *Gateway {
	t.Helper()
	bin := testbin.Require(t, "versitygw", Install)
	g := &Gateway{
		t:         t,
		bin:       bin,
		dir:       t.TempDir(),
		AccessKey: "danmaku" + randHex(4),
		SecretKey: randHex(16),
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g.addr = l.Addr().String()
	l.Close()
	g.Endpoint = "http://" + g.addr
	g.start()
	t.Cleanup(g.Stop)
	return g
}

func (g *Gateway) start() {
	g.t.Helper()
	g.cmd = exec.Command(g.bin, "--access", g.AccessKey, "--secret", g.SecretKey, "--port", g.addr, "posix", g.dir)
	g.cmd.Env = append(os.Environ(), "VGW_QUIET=true")
	out, err := os.Create(filepath.Join(g.t.TempDir(), "versitygw.log"))
	if err != nil {
		g.t.Fatal(err)
	}
	g.cmd.Stdout, g.cmd.Stderr = out, out
	if err := g.cmd.Start(); err != nil {
		g.t.Fatalf("start versitygw: %v", err)
	}
	g.exited = make(chan struct{})
	go func() { g.cmd.Wait(); out.Close(); close(g.exited) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", g.addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-g.exited:
			log, _ := os.ReadFile(out.Name())
			g.t.Fatalf("versitygw exited at start: %s", log)
		default:
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("versitygw did not listen on %s within 20s", g.addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop ends the gateway; the directory (and so every object) stays.
func (g *Gateway) Stop() {
	if g.cmd == nil || g.cmd.Process == nil {
		return
	}
	select {
	case <-g.exited:
	default:
		g.cmd.Process.Kill()
		<-g.exited
	}
	g.cmd = nil
}

// Restart starts the gateway again on the same port and directory.
func (g *Gateway) Restart() {
	g.t.Helper()
	g.Stop()
	g.start()
}

// Env returns environment variables that point the AWS SDK's default chain
// at this gateway's credentials.
func (g *Gateway) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + g.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + g.SecretKey,
		"AWS_REGION=us-east-1",
	}
}

// SetEnv sets those variables for the rest of the test.
func (g *Gateway) SetEnv(t testing.TB) {
	for _, kv := range g.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// Client returns an SDK client for the gateway, configured the way serve
// configures one for a custom endpoint.
func (g *Gateway) Client() *awss3.Client {
	return awss3.New(awss3.Options{
		Region:                     "us-east-1",
		BaseEndpoint:               aws.String(g.Endpoint),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(g.AccessKey, g.SecretKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// Bucket creates a bucket with a fresh name and returns the name.
func (g *Gateway) Bucket(t testing.TB) string {
	t.Helper()
	name := "danmaku-" + randHex(6)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := g.Client().CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: &name}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	return name
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// String describes the gateway.
func (g *Gateway) String() string { return fmt.Sprintf("versitygw at %s", g.Endpoint) }
