package cmd

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "127.9.9.9:1": true, "[::1]:8080": true, "localhost:8080": true, "LOCALHOST:1": true,
		"0.0.0.0:8080": false, ":8080": false, "[::]:8080": false, "10.0.0.5:8080": false, "example.com:80": false, "nonsense": false,
	} {
		if got := loopback(addr); got != want {
			t.Errorf("loopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

// TestServeRefusesAnonymousOnTheInternet: without a secret, serve starts
// only on loopback unless told --allow-anonymous, and says so in one line.
func TestServeRefusesAnonymousOnTheInternet(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string // in the error; "" for no error
	}{
		{"public address, no secret", []string{"--listen", "0.0.0.0:8080"}, nil, "--auth-secret (DANMAKU_AUTH_SECRET)"},
		{"all interfaces, no secret", []string{"--listen", ":8080"}, nil, "--allow-anonymous"},
		{"short secret", []string{"--listen", "0.0.0.0:8080", "--auth-secret", "hunter2-but-longer"}, nil, "at least 32 bytes"},
		{"short secret from the environment", []string{"--listen", "0.0.0.0:8080"}, map[string]string{"DANMAKU_AUTH_SECRET": "hunter2"}, "at least 32 bytes"},
		{"bad CORS origin", []string{"--cors-origins", "example.com"}, nil, "--cors-origins"},
		{"bad word-list action", []string{"--word-list-action", "shout"}, nil, "--word-list-action"},
		{"negative cap", []string{"--room-cap", "-1"}, nil, "--room-cap"},
		{"aux timeout too long", []string{"--avatar-timeout", "1m"}, nil, "--avatar-timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var stderr bytes.Buffer
			code := run(context.Background(), append([]string{"serve", "--data", dir}, tc.args...), &bytes.Buffer{}, &stderr)
			msg := stderr.String()
			if code != 2 || !strings.Contains(msg, tc.want) || strings.Count(msg, "\n") != 1 {
				t.Errorf("exit %d, stderr %q; want 2 and one line naming %q", code, msg, tc.want)
			}
			if strings.Contains(msg, "hunter2") {
				t.Errorf("the error shows the secret: %q", msg)
			}
		})
	}
	// The ways it does start (validation only: nothing is listened on).
	for _, args := range [][]string{
		{"--listen", "127.0.0.1:8080"},
		{"--listen", "[::1]:8080"},
		{"--listen", "0.0.0.0:8080", "--allow-anonymous"},
		{"--listen", "0.0.0.0:8080", "--auth-secret", testSecret},
	} {
		opts := &serveOptions{}
		fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
		opts.AddFlags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		if err := opts.validate(); err != nil {
			t.Errorf("%v: %v", args, err)
		}
	}
}
