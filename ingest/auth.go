package ingest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// AuthConfig configures how posters prove who they are.
type AuthConfig struct {
	// Secret is the HS256 key tokens are signed with; required. It must
	// never be logged.
	Secret []byte
	// AllowAnonymous also takes posts that carry no token at all; they post
	// under the user fields of their body, without badges or priority. A
	// post with a bad token is refused either way.
	AllowAnonymous bool
	// PriorityRoles are the role claims whose messages a per-room cap
	// always keeps; if nil, owner, moderator and paid.
	PriorityRoles []string
	// Leeway absorbs clock skew when checking exp, nbf and iat; if 0, 30s.
	Leeway time.Duration
	// MaxName is the longest display name in runes; if 0, 32.
	MaxName int
	// Now is the clock; if nil, time.Now.
	Now func() time.Time
}

// Auth checks bearer tokens: HS256 JWTs whose sub is the user id, with the
// display name in name and an optional role in role.
type Auth struct {
	cfg    AuthConfig
	parser *jwt.Parser
}

// MinSecretBytes is the shortest HS256 secret accepted: shorter keys can be
// found by brute force from a single token.
const MinSecretBytes = 32

// maxToken bounds a token before it is parsed.
const maxToken = 4096

// NewAuth checks cfg and returns an Auth.
func NewAuth(cfg AuthConfig) (*Auth, error) {
	if len(cfg.Secret) < MinSecretBytes {
		return nil, fmt.Errorf("ingest: the auth secret must be at least %d bytes", MinSecretBytes)
	}
	if cfg.PriorityRoles == nil {
		cfg.PriorityRoles = []string{"owner", "moderator", "paid"}
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = 30 * time.Second
	}
	if cfg.MaxName == 0 {
		cfg.MaxName = 32
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	for _, r := range cfg.PriorityRoles {
		if !validRole(r) {
			return nil, fmt.Errorf("ingest: priority role %q: roles are 1-32 of a-z, 0-9, _ and -", r)
		}
	}
	return &Auth{cfg: cfg, parser: jwt.NewParser(
		jwt.WithValidMethods([]string{"HS256"}), // never "none", never another algorithm
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(cfg.Now),
		jwt.WithStrictDecoding(),
	)}, nil
}

// Identity is who a post comes from.
type Identity struct {
	// Verified is true for a valid token; the fields below are then its
	// claims. Anonymous posters have none of them.
	Verified bool
	UserID   string
	Name     string
	Role     string
	// Priority: the role is one of the priority roles.
	Priority bool
}

// Badges are what a bucket shows next to the poster's name: the role.
func (id Identity) Badges() []string {
	if id.Role == "" {
		return nil
	}
	return []string{id.Role}
}

// Claims are the token claims a poster's token carries.
type Claims struct {
	jwt.RegisteredClaims
	// Name is the display name; if empty, the user id is shown.
	Name string `json:"name,omitempty"`
	// Role is optional: moderator, member, paid, … It becomes a badge, and
	// a priority role makes a room's cap keep the poster's messages.
	Role string `json:"role,omitempty"`
}

// AuthError is a refused token; its Message never includes the token.
type AuthError struct {
	Message string
	// Missing is set when the request carried no token at all.
	Missing bool
}

func (e *AuthError) Error() string { return "unauthorized: " + e.Message }

// Identify reads the Authorization header of a post.
func (a *Auth) Identify(header string) (Identity, *AuthError) {
	if header == "" {
		if a.cfg.AllowAnonymous {
			return Identity{}, nil
		}
		return Identity{}, &AuthError{Message: "send Authorization: Bearer <token>", Missing: true}
	}
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return Identity{}, &AuthError{Message: "the Authorization header must be Bearer <token>"}
	}
	id, err := a.Verify(strings.TrimSpace(token))
	if err != nil {
		return Identity{}, &AuthError{Message: err.Error()}
	}
	return id, nil
}

// Verify checks one token and returns the identity it proves. Its errors
// say what is wrong without repeating the token.
func (a *Auth) Verify(token string) (Identity, error) {
	if len(token) > maxToken {
		return Identity{}, fmt.Errorf("the token is longer than %d bytes", maxToken)
	}
	var c Claims
	_, err := a.parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return a.cfg.Secret, nil })
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenExpired):
		return Identity{}, errors.New("the token has expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return Identity{}, errors.New("the token is not valid yet")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return Identity{}, errors.New("the token must carry exp")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return Identity{}, errors.New("the token's signature does not verify (HS256 with this server's secret)")
	default:
		return Identity{}, errors.New("the token is not a well-formed HS256 JWT")
	}
	return a.identity(&c)
}

// identity checks the claims a valid signature vouches for.
func (a *Auth) identity(c *Claims) (Identity, error) {
	if !validUserID(c.Subject) {
		return Identity{}, errors.New("the token's sub must be a user id of 1-64 characters of A-Z, a-z, 0-9 and _ . : @ -")
	}
	name := strings.TrimSpace(c.Name)
	if name == "" {
		name = c.Subject
	}
	if n := utf8.RuneCountInString(name); n > a.cfg.MaxName || !visible(name) {
		return Identity{}, fmt.Errorf("the token's name must be 1-%d visible characters", a.cfg.MaxName)
	}
	if _, bad := forbidden(name); bad {
		return Identity{}, errors.New("the token's name holds a control or formatting character")
	}
	if c.Role != "" && !validRole(c.Role) {
		return Identity{}, errors.New("the token's role must be 1-32 of a-z, 0-9, _ and -")
	}
	return Identity{
		Verified: true,
		UserID:   c.Subject,
		Name:     name,
		Role:     c.Role,
		Priority: c.Role != "" && slices.Contains(a.cfg.PriorityRoles, c.Role),
	}, nil
}

func validRole(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
