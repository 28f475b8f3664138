// Package testbin finds the real servers the tests run (nats-server,
// versitygw), installed with go install: on PATH or in GOPATH/bin.
package testbin

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Find returns the path of the named binary on PATH or in GOPATH/bin.
func Find(name string) (string, bool) {
	if p, err := exec.LookPath(name); err == nil {
		return p, true
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if home, err := os.UserHomeDir(); err == nil {
			gopath = filepath.Join(home, "go")
		}
	}
	p := filepath.Join(gopath, "bin", name)
	if _, err := os.Stat(p); err == nil {
		return p, true
	}
	return "", false
}

// Require returns the binary's path. Without it the test is skipped with a
// note saying how to install it, except in CI (CI set), where a missing
// binary is a failure: .ci/run must have installed it.
func Require(t testing.TB, name, install string) string {
	t.Helper()
	p, ok := Find(name)
	if ok {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed; .ci/run must install it: %s", name, install)
	}
	t.Skipf("%s not found (install it with: %s); skipping", name, install)
	return ""
}
