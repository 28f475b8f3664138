package httpx_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/danmaku/danmaku/internal/httpx"
)

func TestCORS(t *testing.T) {
	for _, bad := range [][]string{{}, {"*", "https://a.example"}, {"a.example"}, {"https://a.example/path"}, {"ftp://a.example"}, {"https://u:p@a.example"}} {
		if _, err := httpx.NewCORS(bad); err == nil {
			t.Errorf("NewCORS(%q) accepted", bad)
		}
	}
	one, _ := httpx.NewCORS([]string{"https://Player.Example"})
	two, _ := httpx.NewCORS([]string{"https://a.example", "http://localhost:3000"})
	anyone, _ := httpx.NewCORS([]string{"*"})
	for _, tc := range []struct {
		name       string
		c          *httpx.CORS
		origin     string
		want, vary string
	}{
		{"nil is any", nil, "https://x.example", "*", ""},
		{"star", anyone, "", "*", ""},
		{"one origin, always named", one, "https://evil.example", "https://player.example", ""},
		{"several: allowed", two, "http://localhost:3000", "http://localhost:3000", "Accept-Encoding, Origin"},
		{"several: refused", two, "https://evil.example", "", "Accept-Encoding, Origin"},
		{"several: no origin", two, "", "", "Accept-Encoding, Origin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			if tc.origin != "" {
				r.Header.Set("Origin", tc.origin)
			}
			h := http.Header{}
			tc.c.Apply(h, r)
			if got := h.Get("Access-Control-Allow-Origin"); got != tc.want {
				t.Errorf("Access-Control-Allow-Origin %q, want %q", got, tc.want)
			}
			if got := h.Get("Vary"); got != tc.vary {
				t.Errorf("Vary %q, want %q", got, tc.vary)
			}
		})
	}
}

func TestCleanPaths(t *testing.T) {
	h := httpx.CleanPaths(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	for path, want := range map[string]int{
		"/":                               http.StatusTeapot,
		"/v1/rooms/a/head":                http.StatusTeapot,
		"/v1/rooms/a..b/head":             http.StatusTeapot,
		"/v1/rooms/../head":               http.StatusBadRequest,
		"/v1/rooms/./head":                http.StatusBadRequest,
		"/v1//rooms/a/head":               http.StatusBadRequest,
		"/v1/rooms/a/head/":               http.StatusBadRequest,
		"/v1/rooms/a/buckets/..":          http.StatusBadRequest,
		"*":                               http.StatusBadRequest,
		"/v1/rooms/%2e%2e/buckets/1.json": http.StatusBadRequest,
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.URL.Path = path
		if path == "/v1/rooms/%2e%2e/buckets/1.json" {
			r = httptest.NewRequest(http.MethodGet, path, nil) // decoded by the URL parser
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != want {
			t.Errorf("%s: %d, want %d", path, rec.Code, want)
		}
		if want == http.StatusBadRequest {
			var e httpx.ErrorBody
			if json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Code != "bad_path" || rec.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("%s: body %s", path, rec.Body)
			}
		}
	}
}
