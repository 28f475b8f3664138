package httpx

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// CORS answers cross-origin requests per an allow-list of origins. A nil
// *CORS, like the list "*", lets every origin read; no credentials are ever
// allowed, so "*" exposes nothing a plain GET could not fetch.
type CORS struct {
	any     bool
	allowed map[string]bool
	single  []string // the one allowed origin, when the list has one
}

// NewCORS parses an allow-list: "*", or origins such as
// https://www.example.com and http://localhost:3000.
func NewCORS(origins []string) (*CORS, error) {
	c := &CORS{allowed: map[string]bool{}}
	for _, o := range origins {
		o = strings.TrimSpace(o)
		switch {
		case o == "":
			continue
		case o == "*":
			c.any = true
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return nil, fmt.Errorf("cors: %q is not an origin such as https://www.example.com", o)
		}
		c.allowed[strings.ToLower(u.Scheme+"://"+u.Host)] = true
	}
	if c.any && len(c.allowed) > 0 {
		return nil, fmt.Errorf("cors: give either * or a list of origins, not both")
	}
	if !c.any && len(c.allowed) == 0 {
		return nil, fmt.Errorf("cors: the list is empty; give * or at least one origin")
	}
	if len(c.allowed) == 1 {
		for o := range c.allowed {
			c.single = []string{o}
		}
	}
	return c, nil
}

// Header values shared so that setting them does not allocate.
var (
	hvAnyOrigin  = []string{"*"}
	hvVaryOrigin = []string{"Accept-Encoding, Origin"}
)

// Apply sets Access-Control-Allow-Origin on a response to r. With one
// allowed origin it is always that origin (the answer does not depend on
// the request, so caches need not vary); with several it is the request's
// Origin when allowed, and Vary names Origin so that caches keep the
// answers apart.
func (c *CORS) Apply(h http.Header, r *http.Request) {
	switch {
	case c == nil || c.any:
		h["Access-Control-Allow-Origin"] = hvAnyOrigin
	case c.single != nil:
		h["Access-Control-Allow-Origin"] = c.single
	default:
		h["Vary"] = hvVaryOrigin
		if o := r.Header.Get("Origin"); o != "" && c.allowed[strings.ToLower(o)] {
			h["Access-Control-Allow-Origin"] = []string{o}
		}
	}
}

// AllowOrigin is Apply for servers without http.Header: the value of
// Access-Control-Allow-Origin for a request from origin ("" for none), and
// whether Vary must name Origin.
func (c *CORS) AllowOrigin(origin string) (value string, varyOrigin bool) {
	switch {
	case c == nil || c.any:
		return "*", false
	case c.single != nil:
		return c.single[0], false
	case origin != "" && c.allowed[strings.ToLower(origin)]:
		return origin, true
	}
	return "", true
}

// Allows reports whether a request from origin may read the answer.
func (c *CORS) Allows(origin string) bool {
	return c == nil || c.any || c.allowed[strings.ToLower(origin)]
}

// CleanPaths answers 400 bad_path, as JSON, for a request whose path is not
// in canonical form (dot segments, empty segments, a target that is not an
// absolute path), where http.ServeMux would send a redirect. Paths are
// decoded first, so %2e%2e is a dot segment too.
func CleanPaths(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !cleanPath(r.URL.Path) {
			Error(w, http.StatusBadRequest, "bad_path", "the path is not in canonical form: no empty, . or .. segments")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func cleanPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	if p == "/" {
		return true
	}
	// Every segment between slashes must be non-empty and neither . nor ..;
	// a trailing slash makes an empty last segment.
	start := 1
	for i := 1; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			continue
		}
		switch p[start:i] {
		case "", ".", "..":
			return false
		}
		start = i + 1
	}
	return true
}
