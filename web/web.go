// Package web serves the player SDK (danmaku.js) and the demo page, embedded
// in the binary.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"
	"time"
)

//go:embed index.html demo.js danmaku.js
var files embed.FS

// asset is one embedded file with the headers it is served with.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

func load(name, contentType string) asset {
	b, err := files.ReadFile(name)
	if err != nil {
		panic("web: " + name + " is not embedded: " + err.Error())
	}
	sum := sha256.Sum256(b)
	return asset{body: b, contentType: contentType, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
}

// pageCSP keeps the demo to its own scripts: even if a comment were ever
// parsed as HTML, an inline handler in it would not run.
const pageCSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Register adds the demo page at exactly / (and /index.html) and the
// scripts at /danmaku.js and /demo.js. Other paths are left to mux.
func Register(mux *http.ServeMux) {
	page := load("index.html", "text/html; charset=utf-8")
	mux.Handle("GET /{$}", serve(page, true))
	mux.Handle("GET /index.html", serve(page, true))
	mux.Handle("GET /danmaku.js", serve(load("danmaku.js", "text/javascript; charset=utf-8"), false))
	mux.Handle("GET /demo.js", serve(load("demo.js", "text/javascript; charset=utf-8"), false))
}

func serve(a asset, page bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", a.contentType)
		// Short: a new binary brings new files; the ETag makes the
		// revalidation cheap.
		h.Set("Cache-Control", "public, max-age=60")
		h.Set("ETag", a.etag)
		h.Set("X-Content-Type-Options", "nosniff")
		if page {
			h.Set("Content-Security-Policy", pageCSP)
			h.Set("Referrer-Policy", "no-referrer")
		} else {
			// The SDK may be imported by pages on other origins.
			h.Set("Access-Control-Allow-Origin", "*")
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
	})
}
