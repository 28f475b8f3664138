package ingest

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"time"

	"github.com/danmaku/danmaku/internal/httpx"
	"github.com/danmaku/danmaku/internal/logstream"
)

// identify finds who sends r: a verified token, or an anonymous poster.
func (in *Ingest) identify(r *http.Request) (Identity, *AuthError) {
	if in.cfg.Auth == nil {
		return Identity{}, nil
	}
	return in.cfg.Auth.Identify(r.Header.Get("Authorization"))
}

func (in *Ingest) unauthorized(w http.ResponseWriter, e *AuthError) {
	in.metrics.refused("unauthorized")
	challenge := `Bearer realm="danmaku"`
	if !e.Missing {
		challenge += `, error="invalid_token"`
	}
	w.Header().Set("WWW-Authenticate", challenge)
	httpx.Error(w, http.StatusUnauthorized, "unauthorized", e.Message)
}

// limitKey names the poster a rate limit counts: room and verified user,
// or room and client address (an IPv6 /64) for anonymous posts, whose user
// fields are only a claim.
func (in *Ingest) limitKey(r *http.Request, room string, id Identity) string {
	if in.cfg.RateLimiter == nil {
		return ""
	}
	if id.Verified {
		return room + "\x00u\x00" + id.UserID
	}
	return room + "\x00a\x00" + httpx.ClientKey(in.cfg.ClientIP(r)).String()
}

func (in *Ingest) rateLimited(w http.ResponseWriter, wait time.Duration) {
	in.metrics.refused("rate_limited")
	w.Header().Set("Retry-After", retryAfter(wait))
	httpx.Error(w, http.StatusTooManyRequests, "rate_limited",
		"too many messages from this poster in this room; wait "+retryAfter(wait)+" s (Retry-After) and send again")
}

// fingerprint identifies what a poster sent (before avatars and
// moderation, which may come out differently on a retry), so a retry under
// the same Idempotency-Key is recognised as the same post.
func fingerprint(p *logstream.Post) string {
	data, _ := logstream.EncodePost(p)
	sum := sha256.Sum256(data)
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}

// samePost reports whether the entry prev, found under a post's
// Idempotency-Key, holds the post whose fingerprint is key.
func samePost(prev, data []byte, key string) bool {
	if bytes.Equal(prev, data) {
		return true
	}
	p, err := logstream.DecodePost(prev)
	return err == nil && p.Key != "" && p.Key == key
}
