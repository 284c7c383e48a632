package enrich

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// DNS outcomes kept in enrich_ips.dns_status. Only StatusOK is a positive answer; the others
// are cached for the negative TTL.
const (
	StatusOK       = "ok"       // a PTR name was found (confirmed or not)
	StatusNXDomain = "nxdomain" // no PTR record for the address
	StatusNoData   = "nodata"   // the name exists but has no PTR
	StatusServFail = "servfail" // the resolver failed (SERVFAIL, REFUSED, …)
	StatusTimeout  = "timeout"  // no answer within the per-query timeout
	StatusError    = "error"    // anything else (network, malformed answer)
)

// Resolver asks one DNS server (VIGIL_DNS_RESOLVER, or the first nameserver of
// /etc/resolv.conf) with miekg/dns: UDP, and TCP when the answer comes back truncated.
type Resolver struct {
	server  string
	timeout time.Duration
	udp     *dns.Client
	tcp     *dns.Client
}

// NewResolver uses server ("host:port"; "" reads /etc/resolv.conf). timeout bounds each query.
func NewResolver(server string, timeout time.Duration) (*Resolver, error) {
	if server == "" {
		cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil || len(cc.Servers) == 0 {
			return nil, fmt.Errorf("enrich: no DNS resolver: VIGIL_DNS_RESOLVER is unset and /etc/resolv.conf names none (%v)", err)
		}
		server = net.JoinHostPort(cc.Servers[0], cc.Port)
	}
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	return &Resolver{
		server:  server,
		timeout: timeout,
		udp:     &dns.Client{Net: "udp", Timeout: timeout, UDPSize: 1232},
		tcp:     &dns.Client{Net: "tcp", Timeout: timeout},
	}, nil
}

// Server is the address queries go to.
func (r *Resolver) Server() string { return r.server }

// exchange asks one question and returns the answer with its status.
func (r *Resolver) exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, string) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = true
	m.SetEdns0(1232, false)
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	in, _, err := r.udp.ExchangeContext(ctx, m, r.server)
	if err == nil && in.Truncated {
		// RFC 7766: a truncated UDP answer is asked again over TCP.
		ctx2, cancel2 := context.WithTimeout(context.WithoutCancel(ctx), r.timeout)
		defer cancel2()
		in, _, err = r.tcp.ExchangeContext(ctx2, m, r.server)
	}
	if err != nil {
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
			return nil, StatusTimeout
		}
		return nil, StatusError
	}
	switch in.Rcode {
	case dns.RcodeSuccess:
		return in, StatusOK
	case dns.RcodeNameError:
		return in, StatusNXDomain
	default:
		return in, StatusServFail
	}
}

// PTRResult is what reverse DNS and forward confirmation found for one address.
type PTRResult struct {
	Name      string // the PTR name without the final dot; "" when none
	Confirmed bool   // Name resolves (A or AAAA) back to the address (FCrDNS)
	Status    string
}

// maxPTRChecked bounds how many PTR names of one address are forward-checked: a hostile zone
// can list many.
const maxPTRChecked = 3

// Lookup finds the PTR name of ip and whether it resolves back to ip. When several names
// exist the first confirmed one is kept (else the first one).
func (r *Resolver) Lookup(ctx context.Context, ip netip.Addr) PTRResult {
	ip = ip.Unmap()
	rev, err := dns.ReverseAddr(ip.String())
	if err != nil {
		return PTRResult{Status: StatusError}
	}
	in, st := r.exchange(ctx, rev, dns.TypePTR)
	if st != StatusOK {
		return PTRResult{Status: st}
	}
	var names []string
	for _, rr := range in.Answer {
		if p, ok := rr.(*dns.PTR); ok && strings.EqualFold(p.Hdr.Name, rev) {
			names = append(names, p.Ptr)
		}
	}
	if len(names) == 0 {
		return PTRResult{Status: StatusNoData}
	}
	res := PTRResult{Name: strings.ToLower(strings.TrimSuffix(names[0], ".")), Status: StatusOK}
	for i, n := range names {
		if i == maxPTRChecked {
			break
		}
		if r.confirms(ctx, n, ip) {
			res.Name, res.Confirmed = strings.ToLower(strings.TrimSuffix(n, ".")), true
			break
		}
	}
	return res
}

// confirms asks the A (IPv4) or AAAA (IPv6) records of name and looks for ip among them,
// following a CNAME chain within the answer.
func (r *Resolver) confirms(ctx context.Context, name string, ip netip.Addr) bool {
	qt := dns.TypeA
	if ip.Is6() {
		qt = dns.TypeAAAA
	}
	in, st := r.exchange(ctx, dns.Fqdn(name), qt)
	if st != StatusOK {
		return false
	}
	for _, rr := range in.Answer {
		var a net.IP
		switch v := rr.(type) {
		case *dns.A:
			a = v.A
		case *dns.AAAA:
			a = v.AAAA
		default:
			continue
		}
		if got, ok := netip.AddrFromSlice(a); ok && got.Unmap() == ip {
			return true
		}
	}
	return false
}
