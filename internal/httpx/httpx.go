// Package httpx holds the small HTTP helpers every handler shares: JSON
// error answers and the parsing of content-negotiation headers.
package httpx

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// ErrorBody is the JSON of every error answer.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

var hvNoStore = []string{"no-store"}

// Error answers status with {"code","message"} and Cache-Control: no-store,
// so that no cache keeps an error.
func Error(w http.ResponseWriter, status int, code, message string) {
	h := w.Header()
	h.Del("Content-Encoding")
	h.Del("Etag")
	h.Del("Vary")
	h.Set("Content-Type", "application/json")
	h["Cache-Control"] = hvNoStore
	b, _ := json.Marshal(ErrorBody{Code: code, Message: message})
	b = append(b, '\n')
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// JSON answers status with v as JSON.
func JSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		Error(w, http.StatusInternalServerError, "internal", "could not encode the answer")
		return
	}
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// AcceptsGzip reports whether an Accept-Encoding header value admits gzip:
// gzip, x-gzip or * listed with a non-zero quality.
func AcceptsGzip(h string) bool {
	star := false
	for h != "" {
		var part string
		part, h, _ = strings.Cut(h, ",")
		name, params, _ := strings.Cut(part, ";")
		name = strings.TrimSpace(name)
		q := true
		for params != "" {
			var p string
			p, params, _ = strings.Cut(params, ";")
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(strings.TrimSpace(k), "q") {
				f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				q = err == nil && f > 0
			}
		}
		switch {
		case strings.EqualFold(name, "gzip"), strings.EqualFold(name, "x-gzip"):
			return q
		case name == "*":
			star = q
		}
	}
	return star
}

// ETagMatch reports whether an If-None-Match header value matches etag,
// using the weak comparison RFC 9110 prescribes for If-None-Match. Tags are
// read as quoted strings, so a comma inside one does not split it.
func ETagMatch(header, etag string) bool {
	etag = strings.TrimPrefix(etag, "W/")
	for {
		header = strings.TrimLeft(header, " \t,")
		if header == "" {
			return false
		}
		if header[0] == '*' {
			return true
		}
		header = strings.TrimPrefix(header, "W/")
		if header == "" || header[0] != '"' {
			// Not an entity tag: skip to the next list element.
			_, rest, ok := strings.Cut(header, ",")
			if !ok {
				return false
			}
			header = rest
			continue
		}
		end := strings.IndexByte(header[1:], '"')
		if end < 0 {
			return false
		}
		if header[:end+2] == etag {
			return true
		}
		header = header[end+2:]
	}
}
