package testserve_test

import (
	"net/http"
	"testing"

	"github.com/danmaku/danmaku/internal/testserve"
)

func TestStartRestartKill(t *testing.T) {
	s := testserve.Start(t)
	for _, step := range []string{"started", "restarted"} {
		resp, err := http.Get(s.Base + "/healthz")
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: /healthz %d", step, resp.StatusCode)
		}
		if step == "started" {
			s.Restart()
		}
	}
	s.Kill()
	if _, err := http.Get(s.Base + "/healthz"); err == nil {
		t.Fatal("the server still answers after Kill")
	}
}
