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

// Session is one UDP socket to the resolver, reused for every query of one worker: a socket
// per query costs more system calls than the query itself. Not safe for concurrent use.
type Session struct {
	r    *Resolver
	conn *dns.Conn
}

// Session opens a session (lazily: the socket is made at the first query).
func (r *Resolver) Session() *Session { return &Session{r: r} }

// Close releases the socket.
func (s *Session) Close() {
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}

// exchange asks one question over the session's socket, and over TCP when the answer comes
// back truncated. A late answer to an earlier query on the same socket is skipped by its id.
func (s *Session) exchange(ctx context.Context, m *dns.Msg) (*dns.Msg, error) {
	if s.conn == nil {
		c, err := s.r.udp.DialContext(ctx, s.r.server)
		if err != nil {
			return nil, err
		}
		s.conn = c
	}
	in, _, err := s.r.udp.ExchangeWithConnContext(ctx, m, s.conn)
	if err != nil {
		var ne net.Error
		if !(errors.As(err, &ne) && ne.Timeout()) {
			s.Close() // a broken socket: the next query dials again
		}
	}
	return in, err
}

// Lookup is Resolver.Lookup on the session's socket.
func (s *Session) Lookup(ctx context.Context, ip netip.Addr) PTRResult { return s.r.lookup(ctx, s, ip) }

// exchange asks one question and returns the answer with its status.
func (r *Resolver) exchange(ctx context.Context, sess *Session, name string, qtype uint16) (*dns.Msg, string) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = true
	m.SetEdns0(1232, false)
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	in, err := sess.exchange(ctx, m)
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
	s := r.Session()
	defer s.Close()
	return r.lookup(ctx, s, ip)
}

func (r *Resolver) lookup(ctx context.Context, sess *Session, ip netip.Addr) PTRResult {
	ip = ip.Unmap()
	rev, err := dns.ReverseAddr(ip.String())
	if err != nil {
		return PTRResult{Status: StatusError}
	}
	in, st := r.exchange(ctx, sess, rev, dns.TypePTR)
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
		if r.confirms(ctx, sess, n, ip) {
			res.Name, res.Confirmed = strings.ToLower(strings.TrimSuffix(n, ".")), true
			break
		}
	}
	return res
}

// confirms asks the A (IPv4) or AAAA (IPv6) records of name and looks for ip among them,
// following a CNAME chain within the answer.
func (r *Resolver) confirms(ctx context.Context, sess *Session, name string, ip netip.Addr) bool {
	qt := dns.TypeA
	if ip.Is6() {
		qt = dns.TypeAAAA
	}
	in, st := r.exchange(ctx, sess, dns.Fqdn(name), qt)
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
