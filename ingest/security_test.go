package ingest_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/danmaku/danmaku/ingest"
	"github.com/danmaku/danmaku/ingest/moderation"
	"github.com/danmaku/danmaku/internal/httpx"
	"github.com/danmaku/danmaku/internal/logstream"
)

var secret = []byte("0123456789abcdef0123456789abcdef-test-only")

// now is the clock of the auth tests.
var now = time.Unix(1767225600, 0)

func token(t testing.TB, claims jwt.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func userClaims(sub, name, role string) ingest.Claims {
	return ingest.Claims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: sub, ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)), IssuedAt: jwt.NewNumericDate(now.Add(-time.Minute))},
		Name:             name, Role: role,
	}
}

// unsigned builds a token with the given header and claims JSON and
// signature, to send what no library would sign.
func unsigned(header, claims, sig string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(header)) + "." + enc([]byte(claims)) + "." + sig
}

func newAuth(t testing.TB, anon bool) *ingest.Auth {
	t.Helper()
	a, err := ingest.NewAuth(ingest.AuthConfig{Secret: secret, AllowAnonymous: anon, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

type hreq struct {
	room, body, remote, auth, key string
}

func send(h http.Handler, r hreq) *httptest.ResponseRecorder {
	if r.room == "" {
		r.room = "lobby"
	}
	req := httptest.NewRequest(http.MethodPost, "/v1/rooms/"+r.room+"/messages", strings.NewReader(r.body))
	req.Header.Set("Content-Type", "application/json")
	if r.remote != "" {
		req.RemoteAddr = r.remote
	}
	if r.auth != "" {
		req.Header.Set("Authorization", r.auth)
	}
	if r.key != "" {
		req.Header.Set("Idempotency-Key", r.key)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func lastPost(t *testing.T, log *fakeLog) *logstream.Post {
	t.Helper()
	calls := log.calls()
	if len(calls) == 0 {
		t.Fatal("nothing appended")
	}
	p, err := logstream.DecodePost(calls[len(calls)-1].data)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAuthTokens(t *testing.T) {
	good := token(t, userClaims("u-42", "小明", "moderator"))
	expired := userClaims("u-42", "小明", "")
	expired.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Hour))
	noExp := userClaims("u-42", "x", "")
	noExp.ExpiresAt = nil
	future := userClaims("u-42", "x", "")
	future.NotBefore = jwt.NewNumericDate(now.Add(time.Hour))
	hs512, _ := jwt.NewWithClaims(jwt.SigningMethodHS512, userClaims("u-42", "x", "")).SignedString(secret)
	otherKey, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, userClaims("u-42", "x", "")).SignedString([]byte("another secret of at least thirty-two bytes"))
	claimsJSON := fmt.Sprintf(`{"sub":"u-42","exp":%d}`, now.Add(time.Hour).Unix())
	parts := strings.Split(good, ".")

	for _, tc := range []struct {
		name, auth string
	}{
		{"no header", ""},
		{"basic scheme", "Basic dXNlcjpwYXNz"},
		{"bearer without token", "Bearer "},
		{"garbage", "Bearer not.a.jwt"},
		{"alg none", "Bearer " + unsigned(`{"alg":"none","typ":"JWT"}`, claimsJSON, "")},
		{"alg none, uppercase", "Bearer " + unsigned(`{"alg":"NONE","typ":"JWT"}`, claimsJSON, "")},
		{"HS512", "Bearer " + hs512},
		{"RS256 header on an HMAC signature", "Bearer " + unsigned(`{"alg":"RS256","typ":"JWT"}`, claimsJSON, parts[2])},
		{"signed with another key", "Bearer " + otherKey},
		{"tampered claims", "Bearer " + parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"admin","exp":9999999999}`)) + "." + parts[2]},
		{"expired", "Bearer " + token(t, expired)},
		{"no exp", "Bearer " + token(t, noExp)},
		{"not valid yet", "Bearer " + token(t, future)},
		{"no sub", "Bearer " + token(t, userClaims("", "x", ""))},
		{"bad sub", "Bearer " + token(t, userClaims("../etc", "x", ""))},
		{"name too long", "Bearer " + token(t, userClaims("u", strings.Repeat("名", 33), ""))},
		{"name with bidi override", "Bearer " + token(t, userClaims("u", "a\u202eb", ""))},
		{"bad role", "Bearer " + token(t, userClaims("u", "x", "Mod Erator"))},
		{"huge token", "Bearer " + strings.Repeat("a", 5000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := memLog(1)
			h := newIngest(t, ingest.Config{Log: log, Auth: newAuth(t, false)})
			rec := send(h, hreq{body: `{"text":"hi"}`, auth: tc.auth})
			wantRefused(t, rec, http.StatusUnauthorized, "unauthorized")
			if !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate %q", rec.Header().Get("WWW-Authenticate"))
			}
			if tc.auth != "" && len(tc.auth) > 20 && strings.Contains(rec.Body.String(), tc.auth[7:]) {
				t.Errorf("the answer repeats the token: %s", rec.Body)
			}
			if len(log.calls()) != 0 {
				t.Error("a refused post was appended")
			}
		})
	}

	t.Run("valid token names the poster", func(t *testing.T) {
		log := memLog(1)
		h := newIngest(t, ingest.Config{Log: log, Auth: newAuth(t, false)})
		rec := send(h, hreq{body: `{"text":"hi","user_id":"impostor","user_name":"Admin"}`, auth: "Bearer " + good})
		if rec.Code != http.StatusAccepted {
			t.Fatalf("status %d %s", rec.Code, rec.Body)
		}
		p := lastPost(t, log)
		if p.UserID != "u-42" || p.UserName != "小明" || !p.Priority || len(p.Badges) != 1 || p.Badges[0] != "moderator" {
			t.Errorf("post %+v: want the token's user, name, badge and priority", p)
		}
	})
	t.Run("a role outside the priority roles is a badge only", func(t *testing.T) {
		log := memLog(1)
		h := newIngest(t, ingest.Config{Log: log, Auth: newAuth(t, false)})
		send(h, hreq{body: `{"text":"hi"}`, auth: "Bearer " + token(t, userClaims("u1", "", "member"))})
		p := lastPost(t, log)
		if p.Priority || p.UserName != "u1" || p.Badges[0] != "member" {
			t.Errorf("post %+v", p)
		}
	})
	t.Run("anonymous allowed beside tokens", func(t *testing.T) {
		log := memLog(1)
		h := newIngest(t, ingest.Config{Log: log, Auth: newAuth(t, true)})
		if rec := send(h, hreq{body: `{"text":"hi","user_id":"guest"}`}); rec.Code != http.StatusAccepted {
			t.Fatalf("anonymous: %d %s", rec.Code, rec.Body)
		}
		if p := lastPost(t, log); p.UserID != "guest" || p.Priority || p.Badges != nil {
			t.Errorf("anonymous post %+v", p)
		}
		wantRefused(t, send(h, hreq{body: `{"text":"hi"}`, auth: "Bearer " + token(t, expired)}), http.StatusUnauthorized, "unauthorized")
	})
	t.Run("short secrets are refused", func(t *testing.T) {
		if _, err := ingest.NewAuth(ingest.AuthConfig{Secret: []byte("short")}); err == nil {
			t.Error("a 5-byte secret was accepted")
		}
	})
}

func TestRateLimit(t *testing.T) {
	newLimited := func(t *testing.T) (http.Handler, *fakeLog) {
		rl, err := ingest.NewRateLimiter(ingest.RateConfig{UserRate: 1, UserBurst: 3, AnonRate: 2, AnonBurst: 4})
		if err != nil {
			t.Fatal(err)
		}
		log := memLog(1)
		return newIngest(t, ingest.Config{Log: log, RateLimiter: rl, Auth: newAuth(t, true)}), log
	}
	t.Run("anonymous by address, per room", func(t *testing.T) {
		h, log := newLimited(t)
		for i := 0; i < 4; i++ {
			if rec := send(h, hreq{body: `{"text":"a"}`, remote: "198.51.100.1:1000"}); rec.Code != http.StatusAccepted {
				t.Fatalf("post %d within the burst: %d", i, rec.Code)
			}
		}
		rec := send(h, hreq{body: `{"text":"a","user_id":"someone-else"}`, remote: "198.51.100.1:2000"})
		wantRefused(t, rec, http.StatusTooManyRequests, "rate_limited")
		if ra, err := strconv.Atoi(rec.Header().Get("Retry-After")); err != nil || ra < 1 {
			t.Errorf("Retry-After %q", rec.Header().Get("Retry-After"))
		}
		if got := rec.Header().Get("Access-Control-Expose-Headers"); got != "Retry-After" {
			t.Errorf("Retry-After not exposed to pages: %q", got)
		}
		if rec := send(h, hreq{room: "other", body: `{"text":"a"}`, remote: "198.51.100.1:1000"}); rec.Code != http.StatusAccepted {
			t.Errorf("another room: %d", rec.Code)
		}
		if rec := send(h, hreq{body: `{"text":"a"}`, remote: "198.51.100.2:1000"}); rec.Code != http.StatusAccepted {
			t.Errorf("another address: %d", rec.Code)
		}
		if n := len(log.calls()); n != 6 {
			t.Errorf("%d appended, want 6", n)
		}
	})
	t.Run("an IPv6 /64 is one poster", func(t *testing.T) {
		h, _ := newLimited(t)
		for i := 0; i < 4; i++ {
			send(h, hreq{body: `{"text":"a"}`, remote: fmt.Sprintf("[2001:db8:0:1::%x]:1000", i+1)})
		}
		wantRefused(t, send(h, hreq{body: `{"text":"a"}`, remote: "[2001:db8:0:1::ff]:1000"}), http.StatusTooManyRequests, "rate_limited")
	})
	t.Run("verified users by user id", func(t *testing.T) {
		h, _ := newLimited(t)
		a := "Bearer " + token(t, userClaims("alice", "", ""))
		b := "Bearer " + token(t, userClaims("bob", "", ""))
		for i := 0; i < 3; i++ {
			if rec := send(h, hreq{body: `{"text":"a"}`, auth: a}); rec.Code != http.StatusAccepted {
				t.Fatalf("alice %d: %d", i, rec.Code)
			}
		}
		wantRefused(t, send(h, hreq{body: `{"text":"a"}`, auth: a}), http.StatusTooManyRequests, "rate_limited")
		if rec := send(h, hreq{body: `{"text":"a"}`, auth: b}); rec.Code != http.StatusAccepted {
			t.Errorf("bob from the same address: %d", rec.Code)
		}
	})
	t.Run("a batch counts each message", func(t *testing.T) {
		h, _ := newLimited(t)
		if rec := send(h, hreq{body: `[{"text":"a"},{"text":"b"},{"text":"c"}]`, remote: "192.0.2.1:1"}); rec.Code != http.StatusAccepted {
			t.Fatalf("batch of 3: %d", rec.Code)
		}
		wantRefused(t, send(h, hreq{body: `[{"text":"a"},{"text":"b"}]`, remote: "192.0.2.1:1"}), http.StatusTooManyRequests, "rate_limited")
		wantRefused(t, send(h, hreq{body: `[{"text":"a"},{"text":"b"},{"text":"c"},{"text":"d"},{"text":"e"}]`, remote: "192.0.2.2:1"}),
			http.StatusBadRequest, "batch_too_large")
	})
}

func TestRateLimiterMemoryIsBounded(t *testing.T) {
	rl, err := ingest.NewRateLimiter(ingest.RateConfig{AnonRate: 1, AnonBurst: 2, MaxKeys: 640})
	if err != nil {
		t.Fatal(err)
	}
	h := newIngest(t, ingest.Config{Log: memLog(1), RateLimiter: rl})
	for i := 0; i < 20000; i++ {
		send(h, hreq{body: `{"text":"a"}`, remote: fmt.Sprintf("10.%d.%d.%d:1", i>>16, (i>>8)&255, i&255)})
	}
	if n := rl.Keys(); n > 640 {
		t.Errorf("%d posters tracked after 20000 addresses, want at most 640", n)
	}
}

// fakeAvatars and fakeModerator are function-field fakes.
type fakeAvatars struct {
	fn func(ctx context.Context, user string) (string, error)
}

func (f fakeAvatars) Avatar(ctx context.Context, user string) (string, error) { return f.fn(ctx, user) }

type fakeModerator struct {
	fn func(ctx context.Context, room, user string, texts []string) ([]moderation.Verdict, error)
}

func (f fakeModerator) Moderate(ctx context.Context, room, user string, texts []string) ([]moderation.Verdict, error) {
	return f.fn(ctx, room, user, texts)
}

func TestEnrich(t *testing.T) {
	words, err := moderation.NewFilter([]string{"badword"})
	if err != nil {
		t.Fatal(err)
	}
	avatars := fakeAvatars{func(_ context.Context, user string) (string, error) { return "https://img.example/" + user, nil }}
	down := errors.New("remote: service unavailable")
	verdicts := func(v ...moderation.Verdict) fakeModerator {
		return fakeModerator{func(_ context.Context, _, _ string, texts []string) ([]moderation.Verdict, error) {
			return v[:len(texts)], nil
		}}
	}
	tok := "Bearer " + token(t, userClaims("u1", "Ann", ""))
	for _, tc := range []struct {
		name   string
		enrich ingest.Enrich
		body   string
		auth   string
		status int
		code   string
		texts  []string
		avatar string
	}{
		{name: "avatar for a verified poster", enrich: ingest.Enrich{Avatars: avatars}, body: `{"text":"hi"}`, auth: tok,
			status: 202, texts: []string{"hi"}, avatar: "https://img.example/u1"},
		{name: "no avatar for an anonymous one", enrich: ingest.Enrich{Avatars: avatars}, body: `{"text":"hi","user_id":"u1"}`,
			status: 202, texts: []string{"hi"}},
		{name: "avatar service down", enrich: ingest.Enrich{Avatars: fakeAvatars{func(context.Context, string) (string, error) { return "", down }}},
			body: `{"text":"hi"}`, auth: tok, status: 202, texts: []string{"hi"}},
		{name: "word list masks", enrich: ingest.Enrich{Words: words}, body: `{"text":"a ＢＡＤＷＯＲＤ b"}`,
			status: 202, texts: []string{"a ＊＊＊＊＊＊＊ b"}},
		{name: "word list blocks", enrich: ingest.Enrich{Words: words, BlockWords: true}, body: `[{"text":"ok"},{"text":"badword"}]`,
			status: 422, code: "blocked"},
		{name: "service masks and allows", enrich: ingest.Enrich{Moderator: verdicts(moderation.Mask, moderation.Allow), Words: words},
			body: `[{"text":"rude"},{"text":"fine badword"}]`, status: 202, texts: []string{"＊＊＊＊", "fine ＊＊＊＊＊＊＊"}},
		{name: "service blocks", enrich: ingest.Enrich{Moderator: verdicts(moderation.Allow, moderation.Block)},
			body: `[{"text":"a"},{"text":"b"}]`, status: 422, code: "blocked"},
		{name: "service down: the word list decides", enrich: ingest.Enrich{Words: words,
			Moderator: fakeModerator{func(context.Context, string, string, []string) ([]moderation.Verdict, error) { return nil, down }}},
			body: `{"text":"badword!"}`, status: 202, texts: []string{"＊＊＊＊＊＊＊!"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := memLog(1)
			h := newIngest(t, ingest.Config{Log: log, Auth: newAuth(t, true), Enrich: tc.enrich})
			rec := send(h, hreq{body: tc.body, auth: tc.auth})
			if tc.status != http.StatusAccepted {
				wantRefused(t, rec, tc.status, tc.code)
				if len(log.calls()) != 0 {
					t.Error("a refused post was appended")
				}
				return
			}
			if rec.Code != http.StatusAccepted {
				t.Fatalf("status %d %s", rec.Code, rec.Body)
			}
			p := lastPost(t, log)
			if p.Avatar != tc.avatar {
				t.Errorf("avatar %q, want %q", p.Avatar, tc.avatar)
			}
			for i, want := range tc.texts {
				if p.Messages[i].Text != want {
					t.Errorf("text %d = %q, want %q", i, p.Messages[i].Text, want)
				}
			}
		})
	}
}

// TestEnrichRunsServicesAtOnce: a post waits for the slower service, not
// for both one after the other.
func TestEnrichRunsServicesAtOnce(t *testing.T) {
	slow := func() { time.Sleep(300 * time.Millisecond) }
	e := ingest.Enrich{
		Avatars: fakeAvatars{func(context.Context, string) (string, error) { slow(); return "", nil }},
		Moderator: fakeModerator{func(_ context.Context, _, _ string, texts []string) ([]moderation.Verdict, error) {
			slow()
			return make([]moderation.Verdict, len(texts)), nil
		}},
	}
	h := newIngest(t, ingest.Config{Log: memLog(1), Auth: newAuth(t, false), Enrich: e})
	start := time.Now()
	rec := send(h, hreq{body: `{"text":"hi"}`, auth: "Bearer " + token(t, userClaims("u1", "", ""))})
	if d := time.Since(start); rec.Code != http.StatusAccepted || d > 550*time.Millisecond {
		t.Errorf("status %d after %v; want 202 after about 300ms", rec.Code, d)
	}
}

// TestIdempotentRetryWithDifferentEnrichment: the avatar service answered
// the second attempt but not the first; the retry is still the same post.
func TestIdempotentRetryWithDifferentEnrichment(t *testing.T) {
	var calls atomic.Int32
	e := ingest.Enrich{Avatars: fakeAvatars{func(context.Context, string) (string, error) {
		if calls.Add(1) == 1 {
			return "", errors.New("down")
		}
		return "https://img.example/a.png", nil
	}}}
	log := memLog(3)
	h := newIngest(t, ingest.Config{Log: log, Auth: newAuth(t, false), Enrich: e})
	tok := "Bearer " + token(t, userClaims("u1", "", ""))
	a := send(h, hreq{body: `{"text":"hi"}`, auth: tok, key: "k1"})
	b := send(h, hreq{body: `{"text":"hi"}`, auth: tok, key: "k1"})
	if a.Code != http.StatusAccepted || b.Code != http.StatusAccepted || a.Body.String() != b.Body.String() {
		t.Fatalf("answers %d %s and %d %s; want the same 202", a.Code, a.Body, b.Code, b.Body)
	}
	c := send(h, hreq{body: `{"text":"other"}`, auth: tok, key: "k1"})
	wantRefused(t, c, http.StatusConflict, "idempotency_conflict")
}

func TestCORSAllowList(t *testing.T) {
	cors, err := httpx.NewCORS([]string{"https://a.example", "https://b.example"})
	if err != nil {
		t.Fatal(err)
	}
	h := newIngest(t, ingest.Config{Log: memLog(1), CORS: cors})
	for origin, allowed := range map[string]bool{"https://a.example": true, "https://evil.example": false} {
		req := httptest.NewRequest(http.MethodOptions, "/v1/rooms/lobby/messages", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		got := rec.Header().Get("Access-Control-Allow-Origin")
		if (got == origin) != allowed || (!allowed && got != "") {
			t.Errorf("preflight from %s: Access-Control-Allow-Origin %q", origin, got)
		}
		if allowed && !strings.Contains(rec.Header().Get("Access-Control-Allow-Headers"), "Authorization") {
			t.Errorf("preflight does not allow Authorization: %v", rec.Header())
		}
	}
}

// FuzzVerify: token handling of outside input. Arbitrary strings as tokens,
// and arbitrary claims signed with the server's key (what a buggy token
// issuer could send): Verify never panics, and what it accepts is a
// well-formed identity.
func FuzzVerify(f *testing.F) {
	for _, s := range []string{
		`{"sub":"u1","exp":9999999999,"name":"Ann","role":"moderator"}`,
		`{"sub":"u1","exp":1}`,
		`{"sub":1,"exp":9999999999}`,
		`{"sub":"u1","exp":"soon"}`,
		`{"sub":"u1","exp":9999999999,"name":"` + strings.Repeat("x", 40) + `"}`,
		`{"sub":"u1","exp":9999999999,"role":["a"]}`,
		`{"sub":"u1","exp":9999999999,"nbf":1e300}`,
		`null`, `[]`, `{`,
	} {
		f.Add(s, "")
	}
	f.Add("", "eyJhbGciOiJub25lIn0.e30.")
	auth, err := ingest.NewAuth(ingest.AuthConfig{Secret: secret, Now: func() time.Time { return now }})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, claims, raw string) {
		check := func(tok string) {
			id, err := auth.Verify(tok)
			if err != nil {
				if strings.Contains(err.Error(), tok) && len(tok) > 8 {
					t.Fatalf("error %q repeats the token", err)
				}
				return
			}
			if !id.Verified || id.UserID == "" || len(id.UserID) > 64 || id.Name == "" || len([]rune(id.Name)) > 32 {
				t.Fatalf("Verify accepted %+v", id)
			}
		}
		check(raw)
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, rawClaims(claims)).SignedString(secret)
		if err == nil {
			check(tok)
		}
	})
}

// rawClaims signs s as the claims segment exactly as given.
type rawClaims string

func (r rawClaims) MarshalJSON() ([]byte, error)               { return []byte(r), nil }
func (rawClaims) GetExpirationTime() (*jwt.NumericDate, error) { return nil, nil }
func (rawClaims) GetIssuedAt() (*jwt.NumericDate, error)       { return nil, nil }
func (rawClaims) GetNotBefore() (*jwt.NumericDate, error)      { return nil, nil }
func (rawClaims) GetIssuer() (string, error)                   { return "", nil }
func (rawClaims) GetSubject() (string, error)                  { return "", nil }
func (rawClaims) GetAudience() (jwt.ClaimStrings, error)       { return nil, nil }
