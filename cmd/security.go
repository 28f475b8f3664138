package cmd

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/danmaku/danmaku/bucketer"
	"github.com/danmaku/danmaku/ingest"
	"github.com/danmaku/danmaku/ingest/avatar"
	"github.com/danmaku/danmaku/ingest/moderation"
	"github.com/danmaku/danmaku/internal/httpx"
	"github.com/danmaku/danmaku/internal/remote"
)

// securityOptions are serve's flags for who may post and how much, the
// optional avatar and moderation services, and what one client may hold.
type securityOptions struct {
	AuthSecret        string
	AllowAnonymous    bool
	PriorityRoles     []string
	TrustProxyHops    int
	CORSOrigins       []string
	UserRate          float64
	UserBurst         int
	AnonRate          float64
	AnonBurst         int
	RatePosters       int
	MaxHeldPerClient  int
	AvatarURL         string
	AvatarTimeout     time.Duration
	ModerationURL     string
	ModerationTimeout time.Duration
	AuxFailures       int
	AuxCooldown       time.Duration
	WordList          string
	WordListAction    string
}

func (o *securityOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.AuthSecret, "auth-secret", "", fmt.Sprintf("HS256 secret (at least %d bytes) that signs posters' tokens; with it every post needs Authorization: Bearer <JWT> (set it through the environment, not the command line)", ingest.MinSecretBytes))
	fs.BoolVar(&o.AllowAnonymous, "allow-anonymous", false, "take posts without a token (their user fields are only a claim); needed to post anonymously on an address other than loopback")
	fs.StringSliceVar(&o.PriorityRoles, "priority-roles", []string{"owner", "moderator", "paid"}, "token roles whose messages --room-cap always keeps")
	fs.IntVar(&o.TrustProxyHops, "trust-proxy-hops", 0, "proxies in front that append to X-Forwarded-For (1 behind a load balancer, 2 behind a CDN and a load balancer); 0 ignores the header and uses the TCP peer")
	fs.StringSliceVar(&o.CORSOrigins, "cors-origins", []string{"*"}, "origins whose pages may read and post (e.g. https://www.example.com,https://m.example.com), or *")
	fs.Float64Var(&o.UserRate, "user-rate", 2, "messages per second a signed-in user may post to one room, sustained (0: no limit)")
	fs.IntVar(&o.UserBurst, "user-burst", 10, "messages a signed-in user may post to one room at once")
	fs.Float64Var(&o.AnonRate, "anon-rate", 10, "messages per second one client address (an IPv6 /64) may post anonymously to one room, sustained (0: no limit)")
	fs.IntVar(&o.AnonBurst, "anon-burst", 100, "messages one client address may post anonymously to one room at once")
	fs.IntVar(&o.RatePosters, "rate-posters", 100000, "most posters the rate limits track at once (bounds their memory)")
	fs.IntVar(&o.MaxHeldPerClient, "max-held-per-client", 1000, "most reads one client address may have held at once (0: no per-client limit)")
	fs.StringVar(&o.AvatarURL, "avatar-url", "", "avatar service: GET URL?user=ID answers {\"avatar\":\"https://...\"}; off when empty")
	fs.DurationVar(&o.AvatarTimeout, "avatar-timeout", 150*time.Millisecond, "longest a post waits for the avatar service; past it the post goes out without an avatar")
	fs.StringVar(&o.ModerationURL, "moderation-url", "", "moderation service: POST URL {\"room\",\"user_id\",\"texts\"} answers {\"verdicts\":[\"allow\"|\"mask\"|\"block\",...]}; off when empty")
	fs.DurationVar(&o.ModerationTimeout, "moderation-timeout", 150*time.Millisecond, "longest a post waits for the moderation service; past it the word list decides alone")
	fs.IntVar(&o.AuxFailures, "aux-failures", 5, "failures in a row after which the avatar or moderation service is not called for --aux-cooldown")
	fs.DurationVar(&o.AuxCooldown, "aux-cooldown", 10*time.Second, "how long a failing avatar or moderation service is left alone before one trial call")
	fs.StringVar(&o.WordList, "word-list", "", "file of words to mask, one per line; empty: the small built-in list; off: none")
	fs.StringVar(&o.WordListAction, "word-list-action", "mask", "what a listed word does: mask (replace it with ＊) or block (refuse the post with 422)")
}

// validate checks the flags; listen and role decide whether anonymous
// posting needs --allow-anonymous.
func (o *securityOptions) validate(listen, role string) error {
	if o.AuthSecret != "" && len(o.AuthSecret) < ingest.MinSecretBytes {
		return usagef("--auth-secret: must be at least %d bytes (it is %d); generate one with: openssl rand -base64 48", ingest.MinSecretBytes, len(o.AuthSecret))
	}
	takesPosts := role == "all" || role == "ingest"
	if takesPosts && o.AuthSecret == "" && !o.AllowAnonymous && !loopback(listen) {
		return usagef("--listen %s is reachable from other machines and posts would be anonymous: set --auth-secret (DANMAKU_AUTH_SECRET) to require signed tokens, or --allow-anonymous to accept anonymous posts", listen)
	}
	if o.TrustProxyHops < 0 || o.TrustProxyHops > 10 {
		return usagef("--trust-proxy-hops %d: must be between 0 and 10", o.TrustProxyHops)
	}
	if o.UserRate < 0 || o.AnonRate < 0 || o.UserBurst < 1 || o.AnonBurst < 1 || o.RatePosters < 1 || o.MaxHeldPerClient < 0 {
		return usagef("--user-rate and --anon-rate must be at least 0; --user-burst, --anon-burst and --rate-posters at least 1; --max-held-per-client at least 0")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"--avatar-timeout", o.AvatarTimeout}, {"--moderation-timeout", o.ModerationTimeout}} {
		if d.v <= 0 || d.v > 5*time.Second {
			return usagef("%s %v: must be above 0 and at most 5s (a post waits this long)", d.name, d.v)
		}
	}
	if o.AuxFailures < 1 || o.AuxCooldown <= 0 {
		return usagef("--aux-failures must be at least 1 and --aux-cooldown above 0")
	}
	if o.WordListAction != "mask" && o.WordListAction != "block" {
		return usagef("--word-list-action %q: use mask or block", o.WordListAction)
	}
	if _, err := httpx.NewCORS(o.CORSOrigins); err != nil {
		return usagef("--cors-origins: %v", err)
	}
	return nil
}

// loopback reports whether a listen address takes connections from this
// machine only.
func loopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// security is what the flags build: the parts ingest and origin are given.
type security struct {
	auth     *ingest.Auth
	limiter  *ingest.RateLimiter
	enrich   ingest.Enrich
	cors     *httpx.CORS
	clientIP func(*http.Request) netip.Addr
}

// build makes the parts and logs (without secrets) how posting is guarded.
func (o *securityOptions) build(log *slog.Logger, reg prometheus.Registerer) (*security, error) {
	s := &security{}
	hops := o.TrustProxyHops
	s.clientIP = func(r *http.Request) netip.Addr { return httpx.ClientIP(r, hops) }
	var err error
	if s.cors, err = httpx.NewCORS(o.CORSOrigins); err != nil {
		return nil, err
	}
	mode := "anonymous posts only (user fields are the poster's claim)"
	if o.AuthSecret != "" {
		s.auth, err = ingest.NewAuth(ingest.AuthConfig{
			Secret:         []byte(o.AuthSecret),
			AllowAnonymous: o.AllowAnonymous,
			PriorityRoles:  o.PriorityRoles,
		})
		if err != nil {
			return nil, err
		}
		mode = "signed tokens required"
		if o.AllowAnonymous {
			mode = "signed tokens, and anonymous posts without one"
		}
	}
	if o.UserRate > 0 || o.AnonRate > 0 {
		s.limiter, err = ingest.NewRateLimiter(ingest.RateConfig{
			UserRate: o.UserRate, UserBurst: o.UserBurst,
			AnonRate: o.AnonRate, AnonBurst: o.AnonBurst,
			MaxKeys: o.RatePosters,
		})
		if err != nil {
			return nil, err
		}
	}
	switch o.WordList {
	case "off":
	case "":
		s.enrich.Words, err = moderation.NewFilter(moderation.DefaultWords())
	default:
		f, ferr := os.Open(o.WordList)
		if ferr != nil {
			return nil, fmt.Errorf("--word-list: %w", ferr)
		}
		words, perr := moderation.ParseWords(f)
		f.Close()
		if perr != nil {
			return nil, fmt.Errorf("--word-list %s: %w", o.WordList, perr)
		}
		s.enrich.Words, err = moderation.NewFilter(words)
	}
	if err != nil {
		return nil, fmt.Errorf("--word-list: %w", err)
	}
	s.enrich.BlockWords = o.WordListAction == "block"

	metrics := remote.NewMetrics(reg)
	service := func(name string, timeout time.Duration) (*remote.Service, error) {
		return remote.New(remote.Config{Name: name, Timeout: timeout, Failures: o.AuxFailures, Cooldown: o.AuxCooldown,
			Logger: log.With("component", "ingest"), Metrics: metrics})
	}
	if o.AvatarURL != "" {
		svc, err := service("avatar", o.AvatarTimeout)
		if err != nil {
			return nil, err
		}
		lookup, err := avatar.New(avatar.Config{URL: o.AvatarURL, Service: svc})
		if err != nil {
			return nil, fmt.Errorf("--avatar-url: %w", err)
		}
		s.enrich.Avatars = lookup
	}
	if o.ModerationURL != "" {
		svc, err := service("moderation", o.ModerationTimeout)
		if err != nil {
			return nil, err
		}
		client, err := moderation.NewClient(o.ModerationURL, svc)
		if err != nil {
			return nil, fmt.Errorf("--moderation-url: %w", err)
		}
		s.enrich.Moderator = client
	}
	log.Info("posting guarded", "auth", mode,
		"user_rate", o.UserRate, "anon_rate", o.AnonRate, "word_list_words", s.enrich.Words.Words(),
		"avatar_service", o.AvatarURL != "", "moderation_service", o.ModerationURL != "",
		"cors", strings.Join(o.CORSOrigins, ","), "trust_proxy_hops", hops)
	return s, nil
}

// capOptions are the per-room cap, which serve and backfill must agree on.
type capOptions struct {
	RoomCap int
}

func (o *capOptions) AddFlags(fs *pflag.FlagSet) {
	fs.IntVar(&o.RoomCap, "room-cap", 0, "most messages a room's bucket keeps per second (0: no cap); above it priority posters are kept, identical texts fold and the rest are sampled and counted as dropped. Must match across every writer and backfill")
}

func (o *capOptions) validate() error {
	if o.RoomCap < 0 {
		return usagef("--room-cap %d: must be 0 (no cap) or more", o.RoomCap)
	}
	return nil
}

func (o *capOptions) cap() bucketer.Cap { return bucketer.Cap{PerSecond: o.RoomCap} }
