package web_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/danmaku/danmaku/web"
)

func TestRegister(t *testing.T) {
	mux := http.NewServeMux()
	web.Register(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "fallback", http.StatusNotFound) })
	srv := httptest.NewServer(mux)
	defer srv.Close()

	tests := []struct {
		path, file, contentType string
		status                  int
	}{
		{"/", "index.html", "text/html; charset=utf-8", http.StatusOK},
		{"/index.html", "index.html", "text/html; charset=utf-8", http.StatusOK},
		{"/danmaku.js", "danmaku.js", "text/javascript; charset=utf-8", http.StatusOK},
		{"/demo.js", "demo.js", "text/javascript; charset=utf-8", http.StatusOK},
		{"/other", "", "", http.StatusNotFound},
		{"/danmaku.js/x", "", "", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, err := http.Get(srv.URL + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.file == "" {
				return
			}
			want, err := os.ReadFile(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			if string(body) != string(want) {
				t.Errorf("body differs from %s", tt.file)
			}
			if ct := resp.Header.Get("Content-Type"); ct != tt.contentType {
				t.Errorf("Content-Type %q, want %q", ct, tt.contentType)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=60" {
				t.Errorf("Cache-Control %q", cc)
			}
			if tt.file == "index.html" && !strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src 'self'") {
				t.Errorf("the page has no script-src CSP: %q", resp.Header.Get("Content-Security-Policy"))
			}
			req, _ := http.NewRequest(http.MethodGet, srv.URL+tt.path, nil)
			req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
			again, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			again.Body.Close()
			if again.StatusCode != http.StatusNotModified {
				t.Errorf("If-None-Match with the ETag: %d, want 304", again.StatusCode)
			}
		})
	}
}
