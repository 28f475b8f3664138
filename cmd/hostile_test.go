package cmd

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/danmaku/danmaku/ingest"
	"github.com/danmaku/danmaku/internal/testserve"
)

// testSecret signs the tokens of the tests; never a real secret.
const testSecret = "test-only-secret-0123456789abcdef-0123456789"

// signToken returns a bearer token for user with role, expiring after ttl
// (a negative ttl makes an expired one), signed with key.
func signToken(t testing.TB, key, user, name, role string, ttl time.Duration) string {
	t.Helper()
	c := ingest.Claims{RegisteredClaims: jwt.RegisteredClaims{
		Subject:   user,
		ExpiresAt: jwt.NewNumericDate(time.Now().Add(ttl)),
		IssuedAt:  jwt.NewNumericDate(time.Now().Add(-time.Minute)),
	}, Name: name, Role: role}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rawAnswer is a response read off a raw connection.
type rawAnswer struct {
	status int
	header http.Header
	body   []byte
}

// rawRequest writes req (a whole HTTP/1.1 request, as bytes) on a new
// connection and reads the answer, for requests net/http would not send.
func rawRequest(t *testing.T, addr string, req []byte) rawAnswer {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	// Write while reading: the server may answer (413) before it has read
	// everything.
	go conn.Write(req)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return rawAnswer{status: resp.StatusCode, header: resp.Header, body: b}
}

func buildRequest(method, path string, headers []string, body string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: danmaku.test\r\nConnection: close\r\n", method, path)
	for i := 0; i+1 < len(headers); i += 2 {
		fmt.Fprintf(&b, "%s: %s\r\n", headers[i], headers[i+1])
	}
	if body != "" || method == "POST" {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n")
	b.WriteString(body)
	return []byte(b.String())
}

// TestHostileInput sends a table of bad requests through the real server
// over raw TCP: each must be answered with the right 4xx, a JSON error and
// Cache-Control: no-store; none may store anything; the server must stay
// healthy and keep taking good posts.
func TestHostileInput(t *testing.T) {
	t.Setenv("DANMAKU_AUTH_SECRET", testSecret) // the environment twin, as an operator would set it
	// Debug logs: not even they may show a secret or a token.
	s := testserve.Start(t, "--admin-token", "admin-test-token-0123456789", "--word-list-action", "block", "--log-level", "debug")
	good := signToken(t, testSecret, "tester", "测试", "", time.Hour)
	bearer := "Bearer " + good
	now := time.Now().Unix()
	claims := base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf(`{"sub":"tester","exp":%d}`, now+3600)))
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + claims + "."
	parts := strings.Split(good, ".")
	hs256Header := parts[0]

	post := func(path string, headers []string, body string) []byte {
		return buildRequest("POST", path, append([]string{"Content-Type", "application/json"}, headers...), body)
	}
	auth := []string{"Authorization", bearer}
	const room = "/v1/rooms/hostile/messages"
	cases := []struct {
		name   string
		req    []byte
		status int
		code   string
	}{
		// Bodies.
		{"oversized body", post(room, auth, `{"text":"`+strings.Repeat("a", 300<<10)+`"}`), 413, "body_too_large"},
		{"invalid UTF-8", post(room, auth, "{\"text\":\"a\xff\xfeb\"}"), 400, "invalid_utf8"},
		{"bell character", post(room, auth, `{"text":"a\u0007b"}`), 400, "control_character"},
		{"newline", post(room, auth, `{"text":"line one\nline two"}`), 400, "control_character"},
		{"bidi override", post(room, auth, `{"text":"abc\u202edef"}`), 400, "control_character"},
		{"lone surrogate", post(room, auth, `{"text":"\ud800x"}`), 400, "control_character"},
		{"only zero-width characters", post(room, auth, `{"text":"\u200b\u200b"}`), 400, "empty_text"},
		{"blank text", post(room, auth, `{"text":"   "}`), 400, "empty_text"},
		{"text too long", post(room, auth, `{"text":"`+strings.Repeat("字", 201)+`"}`), 400, "text_too_long"},
		{"array nesting bomb", post(room, auth, strings.Repeat("[", 100000)), 400, "bad_json"},
		{"object nesting bomb", post(room, auth, `{"text":`+strings.Repeat(`{"a":`, 20000)+`1`+strings.Repeat("}", 20000)+`}`), 400, "bad_json"},
		{"text is a number", post(room, auth, `{"text":42}`), 400, "bad_type"},
		{"text is an array", post(room, auth, `{"text":["a"]}`), 400, "bad_type"},
		{"color is a boolean", post(room, auth, `{"text":"a","color":true}`), 400, "bad_color"},
		{"color out of range", post(room, auth, `{"text":"a","color":16777216}`), 400, "bad_color"},
		{"bad mode", post(room, auth, `{"text":"a","mode":"sideways"}`), 400, "bad_mode"},
		{"huge array", post(room, auth, "["+strings.Repeat(`{"text":"a"},`, 600)+`{"text":"a"}]`), 400, "batch_too_large"},
		{"empty body", post(room, auth, ""), 400, "bad_json"},
		{"empty array", post(room, auth, `[]`), 400, "empty_batch"},
		{"a string body", post(room, auth, `"text"`), 400, "bad_json"},
		{"unknown field", post(room, auth, `{"text":"a","admin":true}`), 400, "unknown_field"},
		{"trailing data", post(room, auth, `{"text":"a"}{"text":"b"}`), 400, "bad_json"},
		{"mixed users in a batch", post(room, auth, `[{"text":"a","user_id":"x"},{"text":"b","user_id":"y"}]`), 400, "mixed_users"},
		{"XML content type", buildRequest("POST", room, []string{"Content-Type", "application/xml", "Authorization", bearer}, `<text>a</text>`), 415, "unsupported_media_type"},
		{"bad Idempotency-Key", post(room, append([]string{"Idempotency-Key", "has space"}, auth...), `{"text":"a"}`), 400, "bad_idempotency_key"},
		{"listed word, blocking", post(room, auth, `{"text":"what the ＦＵＣＫ"}`), 422, "blocked"},
		// Tokens.
		{"no token", post(room, nil, `{"text":"a"}`), 401, "unauthorized"},
		{"basic auth", post(room, []string{"Authorization", "Basic dXNlcjpwYXNz"}, `{"text":"a"}`), 401, "unauthorized"},
		{"garbage token", post(room, []string{"Authorization", "Bearer abc.def.ghi"}, `{"text":"a"}`), 401, "unauthorized"},
		{"expired token", post(room, []string{"Authorization", "Bearer " + signToken(t, testSecret, "tester", "x", "", -time.Hour)}, `{"text":"a"}`), 401, "unauthorized"},
		{"alg none", post(room, []string{"Authorization", "Bearer " + none}, `{"text":"a"}`), 401, "unauthorized"},
		{"signed with another key", post(room, []string{"Authorization", "Bearer " + signToken(t, "another-secret-of-at-least-32-bytes!!", "tester", "x", "moderator", time.Hour)}, `{"text":"a"}`), 401, "unauthorized"},
		{"forged claims", post(room, []string{"Authorization", "Bearer " + hs256Header + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"admin","exp":9999999999,"role":"owner"}`)) + "." + parts[2]}, `{"text":"a"}`), 401, "unauthorized"},
		{"token with a bad subject", post(room, []string{"Authorization", "Bearer " + signToken(t, testSecret, "a/../b", "x", "", time.Hour)}, `{"text":"a"}`), 401, "unauthorized"},
		// Room ids.
		{"room ..", post("/v1/rooms/../messages", auth, `{"text":"a"}`), 400, "bad_path"},
		{"room %2e%2e", post("/v1/rooms/%2e%2e/messages", auth, `{"text":"a"}`), 400, "bad_path"},
		{"room with an encoded slash", post("/v1/rooms/a%2Fb/messages", auth, `{"text":"a"}`), 400, "bad_room"},
		{"room with a Cyrillic look-alike", post("/v1/rooms/l%D0%BEbby/messages", auth, `{"text":"a"}`), 400, "bad_room"},
		{"room with a full-width look-alike", post("/v1/rooms/%EF%BD%8Cobby/messages", auth, `{"text":"a"}`), 400, "bad_room"},
		{"room of 65 characters", post("/v1/rooms/"+strings.Repeat("r", 65)+"/messages", auth, `{"text":"a"}`), 400, "bad_room"},
		{"room with a space", post("/v1/rooms/a%20b/messages", auth, `{"text":"a"}`), 400, "bad_room"},
		{"room with a NUL", buildRequest("GET", "/v1/rooms/a%00b/head", nil, ""), 400, "bad_room"},
		{"empty segment", buildRequest("GET", "//v1/rooms/lobby/head", nil, ""), 400, "bad_path"},
		{"dot segment in a read", buildRequest("GET", "/v1/rooms/lobby/./head", nil, ""), 400, "bad_path"},
		// Seconds.
		{"negative second", buildRequest("GET", "/v1/rooms/lobby/buckets/-1.json", nil, ""), 400, "bad_second"},
		{"huge second", buildRequest("GET", "/v1/rooms/lobby/buckets/999999999999999.json", nil, ""), 400, "bad_second"},
		{"hex second", buildRequest("GET", "/v1/rooms/lobby/buckets/0x6b0b0000.json", nil, ""), 400, "bad_second"},
		{"exponent second", buildRequest("GET", "/v1/rooms/lobby/buckets/1e9.json", nil, ""), 400, "bad_second"},
		{"leading zeros", buildRequest("GET", "/v1/rooms/lobby/buckets/0"+strconv.FormatInt(now, 10)+".json", nil, ""), 400, "bad_second"},
		{"plus sign", buildRequest("GET", "/v1/rooms/lobby/buckets/+"+strconv.FormatInt(now, 10)+".json", nil, ""), 400, "bad_second"},
		{"no .json", buildRequest("GET", "/v1/rooms/lobby/buckets/"+strconv.FormatInt(now, 10), nil, ""), 400, "bad_second"},
		{"unaligned segment", buildRequest("GET", "/v1/rooms/lobby/segments/"+strconv.FormatInt(now-now%10+3, 10)+".json", nil, ""), 400, "bad_segment"},
		{"far future", buildRequest("GET", "/v1/rooms/lobby/buckets/"+strconv.FormatInt(now+86400, 10)+".json", nil, ""), 404, "future"},
		// Methods and paths.
		{"DELETE messages", buildRequest("DELETE", room, auth, ""), 405, "method_not_allowed"},
		{"GET messages", buildRequest("GET", room, nil, ""), 405, "method_not_allowed"},
		{"PUT a bucket", buildRequest("PUT", "/v1/rooms/lobby/buckets/"+strconv.FormatInt(now-5, 10)+".json", nil, "x"), 405, "method_not_allowed"},
		{"unknown method", buildRequest("BREW", "/v1/rooms/lobby/head", nil, ""), 405, "method_not_allowed"},
		{"unknown path", buildRequest("GET", "/v1/rooms/lobby/secrets", nil, ""), 404, "not_found"},
		{"admin without a token", buildRequest("POST", "/admin/v1/rooms/lobby/drop", nil, `{"from":1,"to":2}`), 401, "unauthorized"},
		{"admin with a wrong token", buildRequest("POST", "/admin/v1/rooms/lobby/drop", []string{"Authorization", "Bearer " + good}, `{"from":1,"to":2}`), 401, "unauthorized"},
		{"admin with a bad body", buildRequest("POST", "/admin/v1/rooms/lobby/drop", []string{"Authorization", "Bearer admin-test-token-0123456789"}, `{"from":1,"to":`), 400, "bad_json"},
		{"admin with a bad range", buildRequest("POST", "/admin/v1/rooms/lobby/drop", []string{"Authorization", "Bearer admin-test-token-0123456789"}, `{"from":10,"to":1}`), 400, "bad_range"},
	}
	if len(cases) < 40 {
		t.Fatalf("only %d cases", len(cases))
	}
	before := metric(t, s.Base, "danmaku_ingest_messages_total")
	start := time.Now().Unix()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := rawRequest(t, s.Addr, tc.req)
			if a.status != tc.status {
				t.Errorf("status %d, want %d: %s", a.status, tc.status, a.body)
			}
			if cc := a.header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", cc)
			}
			if ct := a.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			var e struct{ Code, Message string }
			if err := json.Unmarshal(a.body, &e); err != nil || e.Code != tc.code || e.Message == "" {
				t.Errorf("body %.200s, want a JSON error with code %q", a.body, tc.code)
			}
			if tc.status == 401 && !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without a Bearer challenge: %v", a.header)
			}
		})
	}
	// Below HTTP: net/http answers these itself, in plain text; they must
	// still be 4xx and leave the server up.
	for name, tc := range map[string]struct {
		req    []byte
		status int
	}{
		"header block over 16 KiB": {buildRequest("GET", "/healthz", []string{"X-Junk", strings.Repeat("j", 40<<10)}, ""), 431},
		"malformed request line":   {[]byte("GET /healthz HTTP/9.9 extra\r\n\r\n"), 400},
		"bad header line":          {[]byte("GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n"), 400},
	} {
		if a := rawRequest(t, s.Addr, tc.req); a.status != tc.status {
			t.Errorf("%s: status %d, want %d", name, a.status, tc.status)
		}
	}

	// Nothing was stored: no message counted, and once the seconds of the
	// table are sealed and stored, the room has no object at all.
	if after := metric(t, s.Base, "danmaku_ingest_messages_total"); after != before {
		t.Errorf("%v messages accepted during the hostile table", after-before)
	}
	waitPublished(t, s.Base, time.Now().Unix()+1)
	if _, err := os.Stat(filepath.Join(s.Data, "store", "v1", "rooms", "hostile")); !os.IsNotExist(err) {
		t.Errorf("the store holds objects of the hostile room: %v", err)
	}
	for _, room := range []string{"..", "a", "lobby"} {
		if _, err := os.Stat(filepath.Join(s.Data, "store", "v1", "rooms", room)); !os.IsNotExist(err) {
			t.Errorf("the store holds objects of room %q: %v", room, err)
		}
	}
	t.Logf("%d hostile requests (%d s) refused; nothing stored", len(cases), time.Now().Unix()-start)

	// Still healthy, and still taking good posts.
	if f := get(t, s.Base+"/healthz"); f.status != http.StatusOK {
		t.Fatalf("/healthz after the table: %d", f.status)
	}
	// CORS on the read paths only, never on operations or admin.
	for path, cors := range map[string]bool{
		"/v1/rooms/lobby/head": true, "/v1/rooms/lobby/buckets/" + strconv.FormatInt(now-3, 10) + ".json": true,
		"/healthz": false, "/readyz": false, "/metrics": false, "/admin/v1/rooms/lobby/drop": false,
	} {
		f := get(t, s.Base+path, "Origin", "https://player.example")
		if got := f.header.Get("Access-Control-Allow-Origin"); (got == "*") != cors || (!cors && got != "") {
			t.Errorf("GET %s from another origin: Access-Control-Allow-Origin %q", path, got)
		}
	}
	a := rawRequest(t, s.Addr, post(room, auth, `{"text":"still here"}`))
	if a.status != http.StatusAccepted {
		t.Fatalf("a good post after the table: %d %s", a.status, a.body)
	}
	var acc Accepted
	json.Unmarshal(a.body, &acc)
	waitPublished(t, s.Base, acc.Second)
	f := get(t, bucketURL(s.Base, "hostile", acc.Second))
	if !containsID(t, f.body, acc.ID) {
		t.Errorf("the good post %s is not in its bucket", acc.ID)
	}

	// Rate limited: a signed-in user past the burst (10) gets 429 with a
	// Retry-After and a JSON error, and nothing of it is stored.
	burster := []string{"Authorization", "Bearer " + signToken(t, testSecret, "burster", "b", "", time.Hour)}
	limited := 0
	for i := 0; i < 15; i++ {
		a := rawRequest(t, s.Addr, post(room, burster, fmt.Sprintf(`{"text":"burst %d"}`, i)))
		if a.status == http.StatusTooManyRequests {
			limited++
			var e struct{ Code string }
			ra, err := strconv.Atoi(a.header.Get("Retry-After"))
			if json.Unmarshal(a.body, &e) != nil || e.Code != "rate_limited" || err != nil || ra < 1 || a.header.Get("Cache-Control") != "no-store" {
				t.Errorf("429: Retry-After %q, body %s", a.header.Get("Retry-After"), a.body)
			}
		}
	}
	if limited < 4 {
		t.Errorf("%d of 15 quick posts were rate limited, want at least 4 past a burst of 10", limited)
	}

	// Secrets never reach the logs.
	logs := s.Logs()
	if !strings.Contains(logs, "posting guarded") {
		t.Errorf("the debug log lacks the startup line; is it being captured?")
	}
	for what, secret := range map[string]string{"auth secret": testSecret, "admin token": "admin-test-token-0123456789",
		"a poster's token": parts[2], "a forged token": none[:20]} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log shows the %s", what)
		}
	}
}
