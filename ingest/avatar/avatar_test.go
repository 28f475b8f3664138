package avatar_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/danmaku/danmaku/ingest/avatar"
	"github.com/danmaku/danmaku/internal/remote"
)

func TestLookup(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		switch r.URL.Query().Get("user") {
		case "u1":
			w.Write([]byte(`{"avatar":"https://img.example/u1.png"}`))
		case "slow":
			time.Sleep(300 * time.Millisecond)
			w.Write([]byte(`{"avatar":"https://img.example/slow.png"}`))
		case "bad":
			w.Write([]byte(`{"avatar":"javascript:alert(1)"}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	svc, _ := remote.New(remote.Config{Name: "avatar", Timeout: 100 * time.Millisecond, Failures: 100})
	l, err := avatar.New(avatar.Config{URL: srv.URL + "/avatar", Service: svc})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if a, err := l.Avatar(ctx, "u1"); err != nil || a != "https://img.example/u1.png" {
		t.Errorf("u1: %q, %v", a, err)
	}
	if a, err := l.Avatar(ctx, "u1"); err != nil || a == "" || calls.Load() != 1 {
		t.Errorf("u1 again: %q, %v after %d calls; want it cached", a, err, calls.Load())
	}
	if a, err := l.Avatar(ctx, "nobody"); err != nil || a != "" {
		t.Errorf("404: %q, %v", a, err)
	}
	start := time.Now()
	if _, err := l.Avatar(ctx, "slow"); !errors.Is(err, remote.ErrUnavailable) {
		t.Errorf("slow: %v", err)
	}
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Errorf("slow lookup took %v with a 100ms timeout", d)
	}
	if _, err := l.Avatar(ctx, "bad"); !errors.Is(err, remote.ErrUnavailable) {
		t.Errorf("javascript: URL accepted: %v", err)
	}
}

func TestParseAnswer(t *testing.T) {
	for body, want := range map[string]string{
		`{"avatar":"https://img.example/a.png"}`: "https://img.example/a.png",
		`{"avatar":""}`:                          "",
		`{"avatar":null}`:                        "",
		`{}`:                                     "",
	} {
		if got, err := avatar.ParseAnswer([]byte(body)); err != nil || got != want {
			t.Errorf("ParseAnswer(%s) = %q, %v", body, got, err)
		}
	}
	for _, body := range []string{`{"avatar":"data:image/png;base64,AAAA"}`, `{"avatar":"/relative.png"}`,
		`{"avatar":"https://a.example/x y.png"}`, `{"avatar":"https://a.example/\u202e.png"}`, `{"avatar":1}`, `[`, `{"avatar":"https://u:p@a.example/"}`} {
		if got, err := avatar.ParseAnswer([]byte(body)); err == nil {
			t.Errorf("ParseAnswer(%s) accepted %q", body, got)
		}
	}
}

// FuzzParseAnswer: the avatar service is outside input; what is accepted is
// a short absolute http(s) URL without spaces or control characters.
func FuzzParseAnswer(f *testing.F) {
	for _, s := range []string{`{"avatar":"https://img.example/a.png"}`, `{"avatar":"javascript:x"}`, `{"avatar":"http://[::1]/"}`, `{"avatar":"\u0000"}`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := avatar.ParseAnswer(body)
		if err != nil || got == "" {
			return
		}
		if len(got) > avatar.MaxURL {
			t.Fatalf("accepted a %d-byte URL", len(got))
		}
		for _, r := range got {
			if r <= ' ' || r == '"' || r == '<' || r == '>' {
				t.Fatalf("accepted %q", got)
			}
		}
		if !(len(got) > 7 && (got[:7] == "http://" || got[:8] == "https://")) {
			t.Fatalf("accepted %q", got)
		}
	})
}
