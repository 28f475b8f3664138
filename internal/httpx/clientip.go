package httpx

import (
	"net/http"
	"net/netip"
	"strings"
)

// ClientIP returns the address of the client that sent r. With hops == 0
// it is the TCP peer and X-Forwarded-For is ignored, since any client can
// write that header. With hops > 0, that many trusted proxies (a load
// balancer, a CDN) stand in front and each appends the address it received
// the request from: the client is the hops-th entry from the right. When
// the header has fewer entries, or that one is not an address, the request
// did not come through the whole trusted chain and the TCP peer is used.
//
// The zero Addr means the peer is not an IP connection (a Unix socket, a
// test); callers treat it as one client.
func ClientIP(r *http.Request, hops int) netip.Addr {
	return ClientIPFrom(peer(r.RemoteAddr), r.Header.Values("X-Forwarded-For"), hops)
}

// ClientIPFrom is ClientIP for a server that hands over the TCP peer's
// address and the X-Forwarded-For lines itself (fasthttp).
func ClientIPFrom(peer netip.Addr, forwarded []string, hops int) netip.Addr {
	if hops > 0 {
		if a, ok := forwardedFor(forwarded, hops); ok {
			return a
		}
	}
	return peer.Unmap()
}

func peer(remote string) netip.Addr {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		a, err := netip.ParseAddr(remote)
		if err != nil {
			return netip.Addr{}
		}
		return a.Unmap()
	}
	return ap.Addr().Unmap()
}

// forwardedFor finds the hops-th address from the right of the
// X-Forwarded-For values, which may span several header lines.
func forwardedFor(values []string, hops int) (netip.Addr, bool) {
	seen := 0
	for i := len(values) - 1; i >= 0; i-- {
		v := values[i]
		for v != "" {
			var part string
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				part, v = v[j+1:], v[:j]
			} else {
				part, v = v, ""
			}
			seen++
			if seen < hops {
				continue
			}
			return parseForwarded(strings.TrimSpace(part))
		}
	}
	return netip.Addr{}, false
}

func parseForwarded(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil && ap.Addr().Zone() == "" {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

// ClientKey is the unit per-client limits count in: an IPv4 address, or
// the /64 network of an IPv6 address, since one IPv6 subscriber holds a
// whole /64 and could otherwise rotate through 2^64 addresses.
func ClientKey(a netip.Addr) netip.Addr {
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}
