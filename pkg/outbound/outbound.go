// Package outbound is the one destination policy for every connection Vigil opens on a user's
// say-so: alert channels (webhooks, Teams, Slack, Discord) and IMAP mailboxes added through the
// API. It refuses loopback, link-local, cloud metadata and other special addresses, and private
// ranges unless the operator allows them, so an admin account cannot turn the worker into a
// scanner of the network it runs in (SSRF, SECURITY-CASES D.32).
//
// The check that counts is made at connect time, on the address actually dialled (a
// net.Dialer Control hook), so a name that resolves to a public address when it is saved and to
// 127.0.0.1 when it is used (DNS rebinding) is still refused. Saving checks too, for a clear
// answer early. Errors name the rule that refused, never anything the far end said.
package outbound

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// ErrRefused is wrapped by every refusal, so callers can tell policy from network failure.
var ErrRefused = errors.New("outbound policy refused the destination")

// Timeout bounds one outgoing HTTP request (connect, TLS, request and response).
const Timeout = 10 * time.Second

// MaxResponseBytes is how much of a response body is read: receivers answer briefly, and a
// hostile one must not fill memory.
const MaxResponseBytes = 64 << 10

// Policy decides which addresses may be dialled. The zero Policy refuses every special range
// and allows private ones nowhere.
type Policy struct {
	// AllowPrivate admits RFC 1918, RFC 6598 (carrier-grade NAT) and IPv6 unique-local
	// addresses: on-premise mail servers and webhook receivers are legitimate.
	AllowPrivate bool
	// Allow admits exact addresses and ranges whatever their class (VIGIL_OUTBOUND_ALLOW).
	Allow []netip.Prefix
	// AllowHosts admits exact host names (lower-case, no trailing dot) whatever they resolve
	// to: the operator vouches for them.
	AllowHosts []string
	// Resolver looks names up for the save-time check; nil: net.DefaultResolver.
	Resolver *net.Resolver
	// Timeout bounds a connection attempt and a whole HTTP request; 0: Timeout (10 s).
	Timeout time.Duration
}

func (p *Policy) timeout() time.Duration {
	if p.Timeout > 0 {
		return p.Timeout
	}
	return Timeout
}

// Parse reads a VIGIL_OUTBOUND_ALLOW value: comma-separated addresses, CIDR prefixes and host
// names. An entry that is none of them is an error naming it.
func Parse(s string) (allow []netip.Prefix, hosts []string, err error) {
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			allow = append(allow, p.Masked())
			continue
		}
		if a, err := netip.ParseAddr(f); err == nil {
			a = a.Unmap()
			allow = append(allow, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		h := normHost(f)
		if !validHostname(h) {
			return nil, nil, fmt.Errorf("%q is not an address, CIDR prefix or host name", f)
		}
		hosts = append(hosts, h)
	}
	return allow, hosts, nil
}

func normHost(h string) string { return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".") }

func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

// metadataHosts are names of cloud instance metadata services: refused by name before any
// lookup (they may resolve through a hosts file the check cannot see).
var metadataHosts = map[string]bool{
	"metadata.google.internal": true, "metadata": true, "metadata.goog": true,
	"instance-data": true, "instance-data.ec2.internal": true, "metadata.azure.internal": true,
}

// metadataAddrs are instance metadata endpoints outside the link-local range.
var metadataAddrs = []netip.Prefix{
	netip.MustParsePrefix("100.100.100.200/32"), // Alibaba Cloud
	netip.MustParsePrefix("fd00:ec2::254/128"),  // AWS IPv6
	netip.MustParsePrefix("192.0.0.192/32"),     // Oracle Cloud (legacy)
}

var (
	private = []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.16.0.0/12"),
		netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("100.64.0.0/10"),
		netip.MustParsePrefix("fc00::/7"),
	}
	reserved = []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/8"), netip.MustParsePrefix("240.0.0.0/4"),
		netip.MustParsePrefix("192.0.0.0/24"), netip.MustParsePrefix("198.18.0.0/15"),
		netip.MustParsePrefix("64:ff9b::/96"), netip.MustParsePrefix("2002::/16"), // NAT64, 6to4: could reach IPv4 loopback
	}
)

// Class names the rule an address falls under, "" for an ordinary public address.
func Class(a netip.Addr) string {
	a = a.Unmap()
	for _, p := range metadataAddrs {
		if p.Contains(a) {
			return "cloud metadata"
		}
	}
	switch {
	case a == netip.MustParseAddr("169.254.169.254"):
		return "cloud metadata"
	case a.IsLoopback():
		return "loopback"
	case a.IsUnspecified():
		return "unspecified"
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast():
		return "link-local"
	case a.IsMulticast(), a.IsInterfaceLocalMulticast():
		return "multicast"
	case a == netip.MustParseAddr("255.255.255.255"):
		return "broadcast"
	}
	for _, p := range private {
		if p.Contains(a) {
			return "private"
		}
	}
	for _, p := range reserved {
		if p.Contains(a) {
			return "reserved"
		}
	}
	return ""
}

// CheckAddr refuses an address the policy does not admit; the error names the rule.
func (p *Policy) CheckAddr(a netip.Addr) error {
	a = a.Unmap()
	for _, pr := range p.Allow {
		if pr.Contains(a) {
			return nil
		}
	}
	c := Class(a)
	if c == "" || (c == "private" && p.AllowPrivate) {
		return nil
	}
	hint := "list it in VIGIL_OUTBOUND_ALLOW to allow it"
	if c == "private" {
		hint = "set VIGIL_OUTBOUND_ALLOW_PRIVATE=true or list it in VIGIL_OUTBOUND_ALLOW to allow it"
	}
	return fmt.Errorf("%w: %s is a %s address (%s)", ErrRefused, a, c, hint)
}

func (p *Policy) hostAllowed(h string) bool {
	h = normHost(h)
	for _, x := range p.AllowHosts {
		if x == h {
			return true
		}
	}
	return false
}

// CheckHost is the save-time check of a host name or address: refused names and addresses
// are errors; a name is resolved and every address it has checked. A name that does not
// resolve now is let through: the connect-time check decides when it is used.
func (p *Policy) CheckHost(ctx context.Context, host string) error {
	h := normHost(strings.Trim(host, "[]"))
	if h == "" {
		return fmt.Errorf("%w: empty host", ErrRefused)
	}
	if p.hostAllowed(h) {
		return nil
	}
	if a, err := netip.ParseAddr(h); err == nil {
		if a.Zone() != "" {
			return fmt.Errorf("%w: %s: addresses with a zone are not allowed", ErrRefused, host)
		}
		return p.CheckAddr(a)
	}
	if metadataHosts[h] {
		return fmt.Errorf("%w: %s is a cloud metadata host", ErrRefused, h)
	}
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return fmt.Errorf("%w: %s is a loopback name", ErrRefused, h)
	}
	r := p.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := r.LookupNetIP(lctx, "ip", h)
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if err := p.CheckAddr(a); err != nil {
			return fmt.Errorf("%s resolves to a refused address: %w", h, err)
		}
	}
	return nil
}

// DialContext dials addr ("host:port") for network "tcp", "tcp4" or "tcp6", refusing at
// connect time any address the policy does not admit (whatever the name resolved to), unless
// the host is one the operator listed by name.
func (p *Policy) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("outbound: %w", err)
	}
	d := &net.Dialer{Timeout: p.timeout(), KeepAlive: 30 * time.Second}
	if p.hostAllowed(host) {
		return d.DialContext(ctx, network, addr)
	}
	h := normHost(host)
	if metadataHosts[h] {
		return nil, fmt.Errorf("%w: %s is a cloud metadata host", ErrRefused, h)
	}
	d.Control = func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: cannot read the address dialled (%s)", ErrRefused, address)
		}
		return p.CheckAddr(ap.Addr())
	}
	c, err := d.DialContext(ctx, network, addr)
	if err != nil && errors.Is(err, ErrRefused) {
		// The net.OpError around it names the address only, never anything from the far end.
		return nil, fmt.Errorf("connect %s: %w", host, unwrapRefusal(err))
	}
	return c, err
}

// unwrapRefusal returns the policy's own error from inside the dialer's wrappers.
func unwrapRefusal(err error) error {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if strings.HasPrefix(e.Error(), ErrRefused.Error()) {
			return e
		}
	}
	return err
}

// ErrRedirect: a receiver answered with a redirect, which is never followed (it could point
// anywhere, including at an address the policy refuses).
var ErrRedirect = errors.New("redirects are not followed")

// HTTPClient is a client whose every connection goes through the policy, with no proxy from
// the environment (it would dial on our behalf, unchecked), no redirects and a 10 s timeout.
func (p *Policy) HTTPClient() *http.Client {
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           p.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   p.timeout(),
		ResponseHeaderTimeout: p.timeout(),
	}
	return &http.Client{
		Transport: tr,
		Timeout:   p.timeout(),
		CheckRedirect: func(req *http.Request, _ []*http.Request) error {
			return fmt.Errorf("%w (to %s)", ErrRedirect, req.URL.Redacted())
		},
	}
}

// ReadBody reads at most MaxResponseBytes of a response body and discards the rest unread.
func ReadBody(r io.Reader) []byte {
	b, _ := io.ReadAll(io.LimitReader(r, MaxResponseBytes))
	return b
}

// CheckURL is the save-time check of a webhook URL: http or https, a host, no user info, and
// a host the policy admits (CheckHost).
func (p *Policy) CheckURL(ctx context.Context, raw string) error {
	u, err := parseURL(raw)
	if err != nil {
		return err
	}
	return p.CheckHost(ctx, u.Hostname())
}
