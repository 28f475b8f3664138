package moderation_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/danmaku/danmaku/ingest/moderation"
	"github.com/danmaku/danmaku/internal/remote"
)

func TestClient(t *testing.T) {
	var got struct {
		Room   string   `json:"room"`
		UserID string   `json:"user_id"`
		Texts  []string `json:"texts"`
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s with %q", r.Method, r.Header.Get("Content-Type"))
		}
		json.NewDecoder(r.Body).Decode(&got)
		w.Write([]byte(`{"verdicts":["allow","mask","block"]}`))
	}))
	defer srv.Close()
	svc, _ := remote.New(remote.Config{Name: "moderation", Timeout: time.Second})
	c, err := moderation.NewClient(srv.URL, svc)
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.Moderate(context.Background(), "lobby", "u1", []string{"a", "b", "c"})
	if err != nil || len(v) != 3 || v[0] != moderation.Allow || v[1] != moderation.Mask || v[2] != moderation.Block {
		t.Fatalf("Moderate = %v, %v", v, err)
	}
	if got.Room != "lobby" || got.UserID != "u1" || len(got.Texts) != 3 {
		t.Errorf("service got %+v", got)
	}
	// The wrong number of verdicts is a failure.
	if _, err := c.Moderate(context.Background(), "lobby", "u1", []string{"a"}); !errors.Is(err, remote.ErrUnavailable) {
		t.Errorf("3 verdicts for 1 text: %v", err)
	}
}

func TestParseAnswer(t *testing.T) {
	for _, tc := range []struct {
		body string
		n    int
		ok   bool
	}{
		{`{"verdicts":["allow"]}`, 1, true},
		{`{"verdicts":[]}`, 0, true},
		{`{"verdicts":["allow","nope"]}`, 2, false},
		{`{"verdicts":["allow"]}`, 2, false},
		{`{"verdicts":"allow"}`, 1, false},
		{`[]`, 0, false},
		{``, 0, false},
	} {
		_, err := moderation.ParseAnswer([]byte(tc.body), tc.n)
		if (err == nil) != tc.ok {
			t.Errorf("ParseAnswer(%s, %d): %v", tc.body, tc.n, err)
		}
	}
}

// FuzzParseAnswer: the moderation service is outside input; its answer
// parses to exactly n known verdicts or to an error.
func FuzzParseAnswer(f *testing.F) {
	for _, s := range []string{`{"verdicts":["allow","mask","block"]}`, `{"verdicts":null}`, `{"verdicts":[1]}`, `{}`, `{"verdicts":["allow"],"verdicts":["block"]}`, "\x00"} {
		f.Add([]byte(s), 3)
	}
	f.Fuzz(func(t *testing.T, body []byte, n int) {
		n = n % 600
		if n < 0 {
			n = -n
		}
		v, err := moderation.ParseAnswer(body, n)
		if err != nil {
			return
		}
		if len(v) != n {
			t.Fatalf("%d verdicts for %d texts", len(v), n)
		}
		for _, x := range v {
			if x > moderation.Block {
				t.Fatalf("verdict %d", x)
			}
		}
	})
}
