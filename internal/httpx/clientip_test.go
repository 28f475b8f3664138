package httpx_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/danmaku/danmaku/internal/httpx"
)

func TestClientIP(t *testing.T) {
	for _, tc := range []struct {
		name   string
		remote string
		xff    []string
		hops   int
		want   string
	}{
		{"peer", "203.0.113.7:5555", nil, 0, "203.0.113.7"},
		{"header ignored without trusted proxies", "203.0.113.7:5555", []string{"1.2.3.4"}, 0, "203.0.113.7"},
		{"one proxy: the entry it appended", "10.0.0.2:80", []string{"6.6.6.6, 198.51.100.9"}, 1, "198.51.100.9"},
		{"two proxies: the viewer the CDN saw", "10.0.0.2:80", []string{"6.6.6.6, 198.51.100.9, 130.176.1.1"}, 2, "198.51.100.9"},
		{"split over header lines", "10.0.0.2:80", []string{"6.6.6.6", "198.51.100.9", "130.176.1.1"}, 2, "198.51.100.9"},
		{"fewer entries than proxies: peer", "10.0.0.2:80", []string{"198.51.100.9"}, 2, "10.0.0.2"},
		{"garbage entry: peer", "10.0.0.2:80", []string{"1.1.1.1, not-an-ip"}, 1, "10.0.0.2"},
		{"entry with port", "10.0.0.2:80", []string{"198.51.100.9:4711"}, 1, "198.51.100.9"},
		{"ipv6 peer", "[2001:db8::1]:443", nil, 0, "2001:db8::1"},
		{"mapped ipv4", "[::ffff:192.0.2.1]:443", nil, 0, "192.0.2.1"},
		{"not an ip peer", "@", nil, 0, "invalid IP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := httpx.ClientIP(r, tc.hops).String(); got != tc.want {
				t.Errorf("ClientIP = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestClientKeyGroupsIPv6By64(t *testing.T) {
	a := httpx.ClientKey(netip.MustParseAddr("2001:db8:1:2:aaaa::1"))
	b := httpx.ClientKey(netip.MustParseAddr("2001:db8:1:2:bbbb::2"))
	c := httpx.ClientKey(netip.MustParseAddr("2001:db8:1:3::1"))
	if a != b || a == c {
		t.Errorf("keys %s %s %s: want the first two equal and the third apart", a, b, c)
	}
	if v4 := netip.MustParseAddr("192.0.2.1"); httpx.ClientKey(v4) != v4 {
		t.Errorf("an IPv4 address is its own key")
	}
}

// FuzzClientIP: X-Forwarded-For is outside input; parsing it never panics
// and yields either the peer or an address that was in the header.
func FuzzClientIP(f *testing.F) {
	for _, s := range []string{"", "1.2.3.4", "1.2.3.4, 5.6.7.8", ",,,", "[::1]:80", "fe80::1%eth0", "::ffff:1.2.3.4", " 1.2.3.4 ,", "\x00"} {
		f.Add(s, 1)
	}
	f.Fuzz(func(t *testing.T, xff string, hops int) {
		hops = hops % 4
		if hops < 0 {
			hops = -hops
		}
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = "192.0.2.99:1234"
		r.Header.Set("X-Forwarded-For", xff)
		a := httpx.ClientIP(r, hops)
		if !a.IsValid() || a.Zone() != "" {
			t.Fatalf("ClientIP(%q, %d) = %v", xff, hops, a)
		}
		_ = httpx.ClientKey(a)
	})
}
