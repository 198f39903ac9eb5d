package ratelimit

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ClientIP finds the address of the client of a request. X-Forwarded-For is
// believed only as far as it was written by trusted proxies: walking it from
// the right, each hop added by a trusted proxy is skipped, and the first
// address not in a trusted network is the client. A client that sends its
// own X-Forwarded-For through a trusted proxy only adds entries on the left,
// which are never reached; a request from an untrusted peer is judged by its
// peer address alone.
type ClientIP struct {
	trusted []netip.Prefix
}

// ParseTrustedProxies reads a comma-separated list of addresses and CIDR
// networks, as in IDP_TRUSTED_PROXIES.
func ParseTrustedProxies(s string) (ClientIP, error) {
	var c ClientIP
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if !strings.Contains(part, "/") {
			a, err := netip.ParseAddr(part)
			if err != nil {
				return c, fmt.Errorf("%q is not an address or network", part)
			}
			part = netip.PrefixFrom(a, a.BitLen()).String()
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			return c, fmt.Errorf("%q is not an address or network", part)
		}
		c.trusted = append(c.trusted, p.Masked())
	}
	return c, nil
}

func (c ClientIP) isTrusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range c.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Of returns the client's key for rate limiting: its address, or for IPv6 its
// /64 network, since one subscriber commonly holds a whole /64.
func (c ClientIP) Of(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return sanitize(host)
	}
	client := peer.Unmap()
	if c.isTrusted(client) {
		hops := r.Header.Values("X-Forwarded-For")
		var all []string
		for _, h := range hops {
			all = append(all, strings.Split(h, ",")...)
		}
		for i := len(all) - 1; i >= 0; i-- {
			a, err := netip.ParseAddr(strings.TrimSpace(all[i]))
			if err != nil {
				break // a malformed hop: trust nothing further left
			}
			client = a.Unmap()
			if !c.isTrusted(client) {
				break
			}
		}
	}
	if client.Is6() {
		p, _ := client.Prefix(64)
		return p.String()
	}
	return client.String()
}

type clientAddrKey struct{}

// WithClientAddr returns ctx carrying the client address addr, as Of
// resolves it.
func WithClientAddr(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, clientAddrKey{}, addr)
}

// ClientAddr returns the client address ctx carries, or "" when it carries
// none.
func ClientAddr(ctx context.Context) string {
	addr, _ := ctx.Value(clientAddrKey{}).(string)
	return addr
}

// Middleware puts the client address of every request into its context,
// for code that cannot see the request (a storage callback of the token
// endpoint) yet needs the address.
func (c ClientIP) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(WithClientAddr(r.Context(), c.Of(r))))
	})
}
