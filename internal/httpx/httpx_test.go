package httpx_test

import (
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/danmaku/danmaku/internal/httpx"
)

func TestError(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		code    string
		message string
		// before sets headers a handler had set before it failed.
		before func(h http.Header)
	}{
		{name: "bad request", status: http.StatusBadRequest, code: "bad_room", message: "room id must be 1-64 characters"},
		{name: "not found", status: http.StatusNotFound, code: "not_sealed", message: "the second is not sealed yet"},
		{name: "unavailable", status: http.StatusServiceUnavailable, code: "log_unavailable", message: "retry"},
		{name: "quotes and unicode in message", status: http.StatusBadRequest, code: "bad_json",
			message: "malformed \"JSON\" at </script> \u2028 é"},
		{name: "after a bucket's headers", status: http.StatusNotFound, code: "gone", message: "purged",
			before: func(h http.Header) {
				h.Set("Content-Encoding", "gzip")
				h.Set("ETag", `"0123456789abcdef"`)
				h.Set("Vary", "Accept-Encoding")
				h.Set("Cache-Control", "public, max-age=31536000, immutable")
				h.Set("Content-Type", "application/octet-stream")
				h.Set("Content-Length", "12345")
			}},
		{name: "etag set under its canonical key", status: http.StatusInternalServerError, code: "internal", message: "x",
			before: func(h http.Header) {
				h["Etag"] = []string{`"abc"`}
				h.Add("Vary", "Origin")
				h.Add("Vary", "Accept-Encoding")
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			if tt.before != nil {
				tt.before(rec.Header())
			}
			httpx.Error(rec, tt.status, tt.code, tt.message)
			res := rec.Result()
			if res.StatusCode != tt.status {
				t.Errorf("status = %d, want %d", res.StatusCode, tt.status)
			}
			if got := res.Header.Values("Cache-Control"); len(got) != 1 || got[0] != "no-store" {
				t.Errorf("Cache-Control = %q, want [no-store]", got)
			}
			if got := res.Header.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", got)
			}
			for _, h := range []string{"Content-Encoding", "ETag", "Vary"} {
				if got := res.Header.Values(h); len(got) != 0 {
					t.Errorf("%s = %q after Error, want it removed", h, got)
				}
			}
			body := rec.Body.Bytes()
			if got := res.Header.Get("Content-Length"); got != strconv.Itoa(len(body)) {
				t.Errorf("Content-Length = %q, body is %d bytes", got, len(body))
			}
			var eb httpx.ErrorBody
			dec := json.NewDecoder(strings.NewReader(string(body)))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&eb); err != nil {
				t.Fatalf("body %q is not an error object: %v", body, err)
			}
			if eb.Code != tt.code || eb.Message != tt.message {
				t.Errorf("body = %+v, want code %q, message %q", eb, tt.code, tt.message)
			}
			var raw map[string]any
			if err := json.Unmarshal(body, &raw); err != nil || len(raw) != 2 || raw["code"] == nil || raw["message"] == nil {
				t.Errorf("body %q must hold exactly the keys code and message", body)
			}
		})
	}
}

func TestJSON(t *testing.T) {
	tests := []struct {
		name   string
		status int
		v      any
		want   string
	}{
		{"accepted", http.StatusAccepted, map[string]any{"id": "7", "second": 1767225600}, `{"id":"7","second":1767225600}`},
		{"ok list", http.StatusOK, []int{1, 2, 3}, `[1,2,3]`},
		{"struct", http.StatusOK, struct {
			A string `json:"a"`
		}{"x"}, `{"a":"x"}`},
		{"null", http.StatusOK, nil, `null`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			httpx.JSON(rec, tt.status, tt.v)
			if rec.Code != tt.status {
				t.Errorf("status = %d, want %d", rec.Code, tt.status)
			}
			if got := rec.Header().Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", got)
			}
			if got := rec.Body.String(); got != tt.want+"\n" {
				t.Errorf("body = %q, want %q", got, tt.want+"\n")
			}
			if got := rec.Header().Get("Content-Length"); got != strconv.Itoa(rec.Body.Len()) {
				t.Errorf("Content-Length = %q, body is %d bytes", got, rec.Body.Len())
			}
		})
	}
}

func TestJSONUnencodable(t *testing.T) {
	tests := []struct {
		name string
		v    any
	}{
		{"channel", make(chan int)},
		{"NaN", math.NaN()},
		{"function", func() {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			httpx.JSON(rec, http.StatusOK, tt.v)
			if rec.Code != http.StatusInternalServerError {
				t.Errorf("status = %d, want 500", rec.Code)
			}
			if got := rec.Header().Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
			}
			var eb httpx.ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || eb.Code != "internal" || eb.Message == "" {
				t.Errorf("body = %q (%v), want an internal error object", rec.Body.String(), err)
			}
		})
	}
}

// TestAcceptsGzip follows RFC 9110 §12.5.3: a coding listed with q=0 is not
// acceptable; "*" matches any coding not listed elsewhere in the field;
// "x-gzip" is gzip (§8.4.1.3); coding names are case-insensitive. An empty
// field value means no coding is wanted. (An absent field would allow any
// coding, but AcceptsGzip sees only the value and the design gives clients
// that do not ask for gzip a decompressed body, so "" is false.)
func TestAcceptsGzip(t *testing.T) {
	tests := []struct {
		name   string
		header string
		want   bool
	}{
		{"empty", "", false},
		{"gzip", "gzip", true},
		{"upper", "GZIP", true},
		{"mixed case", "GZip", true},
		{"x-gzip", "x-gzip", true},
		{"upper x-gzip", "X-GZIP", true},
		{"gzip q=0", "gzip;q=0", false},
		{"gzip spaced q=0.0", "gzip; q=0.0", false},
		{"gzip q=0.000", "gzip;q=0.000", false},
		{"gzip upper Q=0", "gzip;Q=0", false},
		{"gzip q=0.001", "gzip;q=0.001", true},
		{"gzip q=1", "gzip;q=1", true},
		{"x-gzip q=0", "x-gzip;q=0", false},
		{"deflate then gzip half", "deflate, gzip;q=0.5", true},
		{"star", "*", true},
		{"star q=0", "*;q=0", false},
		{"identity", "identity", false},
		{"identity and deflate", "identity, deflate", false},
		{"br then star", "br, *;q=0.1", true},
		{"gzip refused then star", "gzip;q=0, *", false},
		{"star then gzip refused", "*, gzip;q=0", false},
		{"star refused then gzip", "*;q=0, gzip", true},
		{"browser", "gzip, deflate, br, zstd", true},
		{"spaces around", "  gzip  ", true},
		{"spaces around semicolon", "br , gzip ; q=0.8", true},
		{"other params", "gzip;foo=bar", true},
		{"not a coding", "gzipx", false},
		{"prefix", "gz", false},
		{"empty elements", ",, gzip ,", true},
		{"only commas", ",,,", false},
		{"bad qvalue", "gzip;q=abc", false},
		{"br only", "br", false},
		{"identity star refused", "identity;q=1, *;q=0", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := httpx.AcceptsGzip(tt.header); got != tt.want {
				t.Errorf("AcceptsGzip(%q) = %v, want %v", tt.header, got, tt.want)
			}
		})
	}
}

// TestETagMatch follows RFC 9110 §13.1.2: If-None-Match uses the weak
// comparison (W/ is ignored on either side), "*" matches any current
// representation, and the value is a comma-separated list with optional
// whitespace. W/ is case-sensitive.
func TestETagMatch(t *testing.T) {
	const tag = `"0123456789abcdef0123456789abcdef"`
	tests := []struct {
		name   string
		header string
		etag   string
		want   bool
	}{
		{name: "same", header: tag, etag: tag, want: true},
		{name: "different", header: `"other"`, etag: tag, want: false},
		{name: "empty header", header: "", etag: tag, want: false},
		{name: "star", header: "*", etag: tag, want: true},
		{name: "star with spaces", header: "  *  ", etag: tag, want: true},
		{name: "weak header strong etag", header: "W/" + tag, etag: tag, want: true},
		{name: "strong header weak etag", header: tag, etag: "W/" + tag, want: true},
		{name: "both weak", header: "W/" + tag, etag: "W/" + tag, want: true},
		{name: "lower w is not weak", header: "w/" + tag, etag: tag, want: false},
		{name: "list first", header: tag + `, "b"`, etag: tag, want: true},
		{name: "list last", header: `"a", "b", ` + tag, etag: tag, want: true},
		{name: "list no spaces", header: `"a",` + tag + `,"b"`, etag: tag, want: true},
		{name: "list with tabs", header: "\"a\",\t" + tag + "\t", etag: tag, want: true},
		{name: "list of weak", header: `W/"a", W/` + tag, etag: tag, want: true},
		{name: "list without match", header: `"a", W/"b", "c"`, etag: tag, want: false},
		{name: "unquoted is not the tag", header: strings.Trim(tag, `"`), etag: tag, want: false},
		{name: "prefix of tag", header: tag[:10] + `"`, etag: tag, want: false},
		{name: "tag plus suffix", header: `"0123456789abcdef0123456789abcdef0"`, etag: tag, want: false},
		{name: "empty list elements", header: `, ,` + tag, etag: tag, want: true},
		{name: "case matters", header: strings.ToUpper(tag), etag: tag, want: false},
		{name: "comma inside the tag", header: `"a,b"`, etag: `"a,b"`, want: true},
		{name: "comma tag in a list", header: `"x", "a,b"`, etag: `"a,b"`, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := httpx.ETagMatch(tt.header, tt.etag)
			if got != tt.want {
				t.Errorf("ETagMatch(%q, %q) = %v, want %v", tt.header, tt.etag, got, tt.want)
			}
		})
	}
}
