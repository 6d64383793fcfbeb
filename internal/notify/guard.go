package notify

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// Endpoints written by a repository (a deploy spec's notify: list, read
// from .ferry.yml) are untrusted: whoever can push to the repository
// chooses the URL, and the server sends the request from inside its own
// network. Their deliveries go through a client whose dialer refuses
// every address that is not public (loopback, private, link-local, which
// holds cloud metadata services at 169.254.169.254, unspecified,
// multicast, shared and reserved ranges), unless an administrator allows
// its network (Options.AllowNets, the server's --notify-allow-net). The
// check is made on the address actually dialed, after name resolution,
// so a name that resolves to a public address when the config is checked
// and to an internal one when the request is sent (DNS rebinding) is
// refused too. Untrusted deliveries use no HTTP proxy: through a proxy,
// the dialed address would be the proxy's.
//
// The server's own --notify endpoints are the administrator's and are not
// restricted.

// BlockedAddressError is a delivery refused because its endpoint resolved
// to an address that is not public and not allowed.
type BlockedAddressError struct {
	// Address is the IP address and port that would have been dialed.
	Address string
	// Kind says what the address is: loopback, private, link-local, ….
	Kind string
}

func (e *BlockedAddressError) Error() string {
	return fmt.Sprintf("refusing to connect to %s, a %s address: an endpoint from a repository's .ferry.yml may reach public addresses only, unless the server allows the network with --notify-allow-net", e.Address, e.Kind)
}

// nonPublic are the ranges an untrusted endpoint may not reach, beyond
// what netip.Addr's predicates name, with what they are.
var nonPublic = []struct {
	prefix netip.Prefix
	kind   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "\"this network\""},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared (carrier-grade NAT)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignment"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	{netip.MustParsePrefix("64:ff9b::/96"), "NAT64"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "NAT64"},
}

// addressKind returns what ip is when it is not a public unicast address,
// or "" when it is.
func addressKind(ip netip.Addr) string {
	ip = ip.Unmap()
	switch {
	case ip.IsLoopback():
		return "loopback"
	case ip.IsUnspecified():
		return "unspecified"
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		return "link-local"
	case ip.IsPrivate():
		return "private"
	case ip.IsMulticast():
		return "multicast"
	case ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "broadcast"
	}
	for _, r := range nonPublic {
		if r.prefix.Contains(ip) {
			return r.kind
		}
	}
	return ""
}

// ParseAllowNets reads --notify-allow-net values: CIDR prefixes
// (10.0.0.0/8, fd00::/8) or single addresses (127.0.0.1), each value
// possibly a comma-separated list.
func ParseAllowNets(values []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range values {
		for s := range strings.SplitSeq(v, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			if p, err := netip.ParsePrefix(s); err == nil {
				out = append(out, p.Masked())
				continue
			}
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("%q is not a network (10.0.0.0/8, fd00::/8) or an address (127.0.0.1)", s)
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return out, nil
}

// guard returns the dialer's Control hook: it refuses non-public
// addresses outside allow.
func guard(allow []netip.Prefix) func(ctx context.Context, network, address string, c syscall.RawConn) error {
	return func(_ context.Context, _, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return Permanent(fmt.Errorf("refusing to connect to %q: not an IP address", address))
		}
		kind := addressKind(ap.Addr())
		if kind == "" {
			return nil
		}
		for _, p := range allow {
			if p.Contains(ap.Addr().Unmap()) {
				return nil
			}
		}
		return Permanent(&BlockedAddressError{Address: address, Kind: kind})
	}
}

// guardedClient returns the client of untrusted deliveries: no proxy, no
// redirects, and a dialer that refuses non-public addresses outside
// allow.
func guardedClient(allow []netip.Prefix) *http.Client {
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, ControlContext: guard(allow)}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.DialContext = d.DialContext
	return &http.Client{Transport: tr, CheckRedirect: client.CheckRedirect}
}

type clientKey struct{}

// withClient makes post send through c.
func withClient(ctx context.Context, c *http.Client) context.Context {
	return context.WithValue(ctx, clientKey{}, c)
}

// clientFrom returns the client set by withClient, or the unrestricted
// one.
func clientFrom(ctx context.Context) *http.Client {
	if c, ok := ctx.Value(clientKey{}).(*http.Client); ok {
		return c
	}
	return client
}
