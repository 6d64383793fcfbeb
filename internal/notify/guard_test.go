package notify

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestAddressKind(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1": "loopback", "::1": "loopback", "::ffff:127.0.0.1": "loopback",
		"169.254.169.254": "link-local", "fe80::1": "link-local",
		"10.1.2.3": "private", "172.16.0.1": "private", "192.168.1.1": "private", "fd00::1": "private",
		"0.0.0.0": "unspecified", "::": "unspecified", "100.64.0.1": "shared (carrier-grade NAT)",
		"224.0.0.1": "link-local", "239.1.1.1": "multicast", "255.255.255.255": "broadcast",
		"8.8.8.8": "", "2606:4700::1111": "",
	} {
		if got := addressKind(netip.MustParseAddr(addr)); got != want {
			t.Errorf("%s: %q, want %q", addr, got, want)
		}
	}
}

func TestParseAllowNets(t *testing.T) {
	got, err := ParseAllowNets([]string{"127.0.0.0/8, 10.1.2.3", "fd00::/8"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].String() != "127.0.0.0/8" || got[1].String() != "10.1.2.3/32" || got[2].String() != "fd00::/8" {
		t.Fatalf("%v", got)
	}
	if _, err := ParseAllowNets([]string{"localhost"}); err == nil || !strings.Contains(err.Error(), `"localhost" is not a network (10.0.0.0/8, fd00::/8) or an address`) {
		t.Fatalf("bad value: %v", err)
	}
}

// An untrusted endpoint (a repository's) on loopback is refused at dial
// time, also by a name that resolves there (localhost), without a request
// reaching it and without retries; the failure is reported to its owner.
// Allowed by the administrator, the same endpoint gets the event; a
// trusted one (--notify) always does.
func TestUntrustedTargetsReachPublicAddressesOnly(t *testing.T) {
	l := newListener(t, nil)
	port := l.URL[strings.LastIndex(l.URL, ":"):]
	failures := make(chan error, 4)
	untrusted := func(url string) *Target {
		tg, err := NewUntrustedTarget(Config{Type: "webhook", URL: url}, func(_ *Event, err error) { failures <- err })
		if err != nil {
			t.Fatal(err)
		}
		return tg
	}
	d := NewDispatcher(nil, Options{Backoff: time.Millisecond})
	ev := deployEvent()
	d.Send(ev, untrusted(l.URL+"/ip"), untrusted("http://localhost"+port+"/name"))
	for range 2 {
		err := <-failures
		var be *BlockedAddressError
		if !errors.As(err, &be) || be.Kind != "loopback" || !IsPermanent(err) ||
			!strings.Contains(err.Error(), "a loopback address: an endpoint from a repository's .ferry.yml may reach public addresses only, unless the server allows the network with --notify-allow-net") {
			t.Fatalf("not refused as a loopback address: %v", err)
		}
	}
	d.Send(ev, mustTarget(t, Config{Type: "webhook", URL: l.URL + "/trusted"}))
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, r := range l.requests() {
		if r.Path != "/trusted" {
			t.Fatalf("a refused endpoint got a request: %s", r.Path)
		}
	}
	if n := len(l.requests()); n != 1 {
		t.Fatalf("%d requests, want the trusted endpoint's one", n)
	}

	allowed := NewDispatcher(nil, Options{AllowNets: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}})
	allowed.Send(ev, untrusted(l.URL+"/allowed"))
	if err := allowed.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if rs := l.requests(); len(rs) != 2 || rs[1].Path != "/allowed" {
		t.Fatalf("the allowed endpoint was not reached: %+v", rs)
	}
	select {
	case err := <-failures:
		t.Fatalf("the allowed endpoint failed: %v", err)
	default:
	}
}
