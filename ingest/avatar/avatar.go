// Package avatar looks up posters' avatar URLs from an optional HTTP
// service, with a cache, a strict timeout and a circuit breaker; when the
// service is slow or down, posts go out without an avatar.
//
// The protocol: GET {URL}?user={user id} answers 200 {"avatar":"https://…"}
// ("" for none) or 404 for a user without one. Anything else, or no answer
// within the timeout, is a failure.
package avatar

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"
	"unicode"

	"github.com/danmaku/danmaku/internal/remote"
)

// Config configures a Lookup.
type Config struct {
	// URL of the service; required, http or https.
	URL string
	// Service calls it with a timeout and a breaker; required.
	Service *remote.Service
	// CacheSize is how many users' answers are kept; if 0, 10000.
	CacheSize int
	// CacheTTL is how long an answer is kept; if 0, 5m.
	CacheTTL time.Duration
	// Now is the clock; if nil, time.Now.
	Now func() time.Time
}

// Lookup finds avatars.
type Lookup struct {
	cfg  Config
	base *url.URL

	mu    sync.Mutex // guards cache
	cache map[string]cached
}

type cached struct {
	avatar  string
	expires time.Time
}

// New checks cfg and returns a Lookup.
func New(cfg Config) (*Lookup, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("avatar: URL %q: want http(s)://host/path", cfg.URL)
	}
	if cfg.Service == nil {
		return nil, errors.New("avatar: a service is required")
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = 10000
	}
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = 5 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Lookup{cfg: cfg, base: u, cache: map[string]cached{}}, nil
}

// Avatar returns the avatar URL of user, "" for none. An error (wrapping
// remote.ErrUnavailable) means the service could not say in time.
func (l *Lookup) Avatar(ctx context.Context, user string) (string, error) {
	now := l.cfg.Now()
	l.mu.Lock()
	c, ok := l.cache[user]
	l.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.avatar, nil
	}
	u := *l.base
	q := u.Query()
	q.Set("user", user)
	u.RawQuery = q.Encode()
	var avatar string
	err := l.cfg.Service.Do(ctx, func(ctx context.Context) error {
		req, err := http.NewRequest(http.MethodGet, u.String(), nil)
		if err != nil {
			return err
		}
		req.Header.Set("Accept", "application/json")
		status, body, err := l.cfg.Service.HTTP(ctx, req)
		switch {
		case err != nil:
			return err
		case status == http.StatusNotFound:
			avatar = ""
			return nil
		case status != http.StatusOK:
			return fmt.Errorf("status %d", status)
		}
		avatar, err = ParseAnswer(body)
		return err
	})
	if err != nil {
		return "", err
	}
	l.mu.Lock()
	if len(l.cache) >= l.cfg.CacheSize {
		// Full: forget an arbitrary eighth (map order is random), which
		// keeps the cost per insert constant on average.
		n := max(l.cfg.CacheSize/8, 1)
		for k := range l.cache {
			delete(l.cache, k)
			if n--; n == 0 {
				break
			}
		}
	}
	l.cache[user] = cached{avatar: avatar, expires: now.Add(l.cfg.CacheTTL)}
	l.mu.Unlock()
	return avatar, nil
}

// MaxURL is the longest avatar URL accepted.
const MaxURL = 512

// ParseAnswer reads the service's answer, {"avatar":"https://…"}: the URL
// must be absolute http(s), at most 512 bytes, without spaces or control
// characters; "" or null means none.
func ParseAnswer(body []byte) (string, error) {
	var a struct {
		Avatar *string `json:"avatar"`
	}
	if err := json.Unmarshal(body, &a); err != nil {
		return "", fmt.Errorf("avatar: answer is not {\"avatar\":\"…\"}: %w", err)
	}
	if a.Avatar == nil || *a.Avatar == "" {
		return "", nil
	}
	s := *a.Avatar
	if len(s) > MaxURL {
		return "", fmt.Errorf("avatar: URL longer than %d bytes", MaxURL)
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '"' || r == '<' || r == '>' || r == '\\' || r == 0xFFFD {
			return "", fmt.Errorf("avatar: URL holds %U", r)
		}
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return "", fmt.Errorf("avatar: %q is not an absolute http(s) URL", s)
	}
	return s, nil
}
