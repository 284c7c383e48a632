package outbound

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
)

func TestCheckAddrClasses(t *testing.T) {
	t.Parallel()
	cases := []struct {
		addr, rule string // rule "" = allowed
	}{
		{"127.0.0.1", "loopback"},
		{"127.255.0.9", "loopback"},
		{"::1", "loopback"},
		{"::ffff:127.0.0.1", "loopback"},
		{"0.0.0.0", "unspecified"},
		{"::", "unspecified"},
		{"169.254.169.254", "cloud metadata"},
		{"100.100.100.200", "cloud metadata"},
		{"fd00:ec2::254", "cloud metadata"},
		{"169.254.1.1", "link-local"},
		{"fe80::1", "link-local"},
		{"10.0.0.1", "private"},
		{"172.16.5.4", "private"},
		{"192.168.1.1", "private"},
		{"100.64.0.1", "private"},
		{"fd12:3456::1", "private"},
		{"239.1.1.1", "multicast"},
		{"255.255.255.255", "broadcast"},
		{"240.0.0.1", "reserved"},
		{"64:ff9b::7f00:1", "reserved"},
		{"93.184.215.14", ""},
		{"2606:4700::1111", ""},
	}
	var p Policy
	for _, c := range cases {
		err := p.CheckAddr(netip.MustParseAddr(c.addr))
		if c.rule == "" {
			if err != nil {
				t.Errorf("%s: refused: %v", c.addr, err)
			}
			continue
		}
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "a "+c.rule+" address") {
			t.Errorf("%s: got %v, want a refusal naming %q", c.addr, err, c.rule)
		}
	}
}

func TestAllowances(t *testing.T) {
	t.Parallel()
	allow, hosts, err := Parse(" 127.0.0.1/32, mail.corp.example ,10.1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	p := Policy{Allow: allow, AllowHosts: hosts}
	if err := p.CheckAddr(netip.MustParseAddr("127.0.0.1")); err != nil {
		t.Errorf("listed loopback address refused: %v", err)
	}
	if err := p.CheckAddr(netip.MustParseAddr("127.0.0.2")); err == nil {
		t.Error("127.0.0.2 allowed by 127.0.0.1/32")
	}
	if err := p.CheckAddr(netip.MustParseAddr("10.1.2.3")); err != nil {
		t.Errorf("listed private address refused: %v", err)
	}
	if err := p.CheckAddr(netip.MustParseAddr("10.1.2.4")); err == nil {
		t.Error("unlisted private address allowed")
	}
	if err := p.CheckHost(context.Background(), "MAIL.corp.example."); err != nil {
		t.Errorf("listed host refused: %v", err)
	}
	priv := Policy{AllowPrivate: true}
	if err := priv.CheckAddr(netip.MustParseAddr("192.168.7.7")); err != nil {
		t.Errorf("private refused with AllowPrivate: %v", err)
	}
	if err := priv.CheckAddr(netip.MustParseAddr("169.254.169.254")); err == nil {
		t.Error("metadata allowed by AllowPrivate")
	}
	if _, _, err := Parse("10.0.0.0/33"); err == nil {
		t.Error("bad prefix accepted")
	}
	if _, _, err := Parse("not a host!"); err == nil {
		t.Error("bad entry accepted")
	}
}

func TestCheckHostAtSave(t *testing.T) {
	t.Parallel()
	var p Policy
	for _, h := range []string{"169.254.169.254", "10.0.0.1", "localhost", "metadata.google.internal", "127.0.0.1", "[::1]", "LocalHost."} {
		if err := p.CheckHost(context.Background(), h); !errors.Is(err, ErrRefused) {
			t.Errorf("%s: got %v, want refused", h, err)
		}
	}
	if err := p.CheckURL(context.Background(), "http://169.254.169.254/latest/meta-data"); !errors.Is(err, ErrRefused) {
		t.Errorf("metadata URL: got %v", err)
	}
	for _, u := range []string{"ftp://example.com/", "https://user:pw@example.com/", "/relative", "https://"} {
		if err := p.CheckURL(context.Background(), u); err == nil {
			t.Errorf("%s accepted", u)
		}
	}
}

// TestDialRefusesAtConnectTime: a listener on loopback is never reached, whether it is named
// by address or by a name that resolves to it (the case DNS rebinding exploits).
func TestDialRefusesAtConnectTime(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	var p Policy
	for _, host := range []string{"127.0.0.1", "localhost"} {
		c, err := p.DialContext(context.Background(), "tcp", net.JoinHostPort(host, port))
		if err == nil {
			c.Close()
			t.Fatalf("%s: dialled", host)
		}
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("%s: got %v, want a loopback refusal", host, err)
		}
	}
	if _, err := p.DialContext(context.Background(), "tcp", "metadata.google.internal:80"); !errors.Is(err, ErrRefused) {
		t.Errorf("metadata name: %v", err)
	}
	// The same listener is reached once it is allowed.
	allowed := Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	c, err := allowed.DialContext(context.Background(), "tcp", net.JoinHostPort("localhost", port))
	if err != nil {
		t.Fatalf("allowed dial: %v", err)
	}
	c.Close()
	byName := Policy{AllowHosts: []string{"localhost"}}
	c, err = byName.DialContext(context.Background(), "tcp", net.JoinHostPort("localhost", port))
	if err != nil {
		t.Fatalf("host allowed by name: %v", err)
	}
	c.Close()
}

// TestHTTPClientNoRedirect: a receiver that redirects (here to another allowed server) is not
// followed; the target sees no request.
func TestHTTPClientNoRedirect(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer target.Close()
	redir := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/x", http.StatusFound)
	}))
	defer redir.Close()
	p := Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	resp, err := p.HTTPClient().Post(redir.URL, "application/json", strings.NewReader("{}"))
	if err == nil {
		resp.Body.Close()
		t.Fatal("redirect followed")
	}
	if !errors.Is(err, ErrRedirect) {
		t.Errorf("got %v, want ErrRedirect", err)
	}
	if hits.Load() != 0 {
		t.Errorf("redirect target got %d requests", hits.Load())
	}
	// Without the allowance the first server is not even reached.
	var strict Policy
	if resp, err := strict.HTTPClient().Get(target.URL); err == nil || !errors.Is(err, ErrRefused) {
		if err == nil {
			resp.Body.Close()
		}
		t.Errorf("loopback receiver: got %v, want refused", err)
	}
	if hits.Load() != 0 {
		t.Errorf("refused target got %d requests", hits.Load())
	}
}
