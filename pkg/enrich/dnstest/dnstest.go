// Package dnstest runs an authoritative-style DNS server on loopback (miekg/dns) for tests:
// PTR, A and AAAA answers, NXDOMAIN, SERVFAIL, silence (timeouts), truncated UDP answers and
// an answer delay, so no test ever asks a real resolver.
package dnstest

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Behaviour of a name other than answering.
type Behaviour int

const (
	Answer   Behaviour = iota
	ServFail           // answers SERVFAIL
	Silent             // never answers (the client times out)
	Truncate           // UDP answers are empty with TC set; TCP answers in full
)

// Server answers from its zone; unknown names get NXDOMAIN.
type Server struct {
	Addr  string // host:port, UDP and TCP
	Delay time.Duration

	mu      sync.RWMutex
	ptr     map[string][]string // reverse name → PTR targets
	addrs   map[string][]netip.Addr
	special map[string]Behaviour

	Queries atomic.Int64
	TCP     atomic.Int64

	held atomic.Pointer[chan struct{}] // set: every query waits for it to close
}

// Start runs a server on 127.0.0.1 (UDP and TCP on the same port) until the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s := &Server{ptr: map[string][]string{}, addrs: map[string][]netip.Addr{}, special: map[string]Behaviour{}}
	// The kernel picks a free UDP port; the same TCP port may be taken by another test's
	// connection, so a few ports are tried before giving up.
	var pc net.PacketConn
	var l net.Listener
	for try := 0; ; try++ {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			tb.Fatalf("dnstest: %v", err)
		}
		if l, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		if try == 20 {
			tb.Fatalf("dnstest: no port free for both UDP and TCP: %v", err)
		}
	}
	s.Addr = pc.LocalAddr().String()
	udp := &dns.Server{PacketConn: pc, Handler: s.handler(false)}
	tcp := &dns.Server{Listener: l, Handler: s.handler(true)}
	go udp.ActivateAndServe()
	go tcp.ActivateAndServe()
	tb.Cleanup(func() { udp.Shutdown(); tcp.Shutdown() })
	return s
}

// Hold makes every query wait, without an answer, until release is called (at the latest when
// the test ends): a resolver as slow as a test needs, for as long as it needs. Queries counts
// the queries held as well.
func (s *Server) Hold(tb testing.TB) (release func()) {
	ch := make(chan struct{})
	s.held.Store(&ch)
	var once sync.Once
	release = func() {
		once.Do(func() {
			s.held.Store(nil)
			close(ch)
		})
	}
	tb.Cleanup(release)
	return release
}

// PTR makes ip's reverse name answer with the names.
func (s *Server) PTR(ip string, names ...string) {
	rev, err := dns.ReverseAddr(netip.MustParseAddr(ip).String())
	if err != nil {
		panic(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range names {
		s.ptr[rev] = append(s.ptr[rev], dns.Fqdn(n))
	}
}

// Host makes name answer A/AAAA with the addresses.
func (s *Server) Host(name string, ips ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ip := range ips {
		s.addrs[strings.ToLower(dns.Fqdn(name))] = append(s.addrs[strings.ToLower(dns.Fqdn(name))], netip.MustParseAddr(ip))
	}
}

// Mail is PTR plus the matching Host: a confirmed (FCrDNS) mail server.
func (s *Server) Mail(ip, name string) {
	s.PTR(ip, name)
	s.Host(name, ip)
}

// Set gives ip's reverse name (for an address) or a host name a behaviour.
func (s *Server) Set(nameOrIP string, b Behaviour) {
	n := strings.ToLower(dns.Fqdn(nameOrIP))
	if ip, err := netip.ParseAddr(nameOrIP); err == nil {
		n, _ = dns.ReverseAddr(ip.String())
	}
	s.mu.Lock()
	s.special[n] = b
	s.mu.Unlock()
}

func (s *Server) handler(tcp bool) dns.HandlerFunc {
	return func(w dns.ResponseWriter, req *dns.Msg) {
		s.Queries.Add(1)
		if tcp {
			s.TCP.Add(1)
		}
		if h := s.held.Load(); h != nil {
			<-*h
		}
		if s.Delay > 0 {
			time.Sleep(s.Delay)
		}
		m := new(dns.Msg)
		m.SetReply(req)
		m.Authoritative = true
		if len(req.Question) != 1 {
			m.Rcode = dns.RcodeFormatError
			w.WriteMsg(m)
			return
		}
		q := req.Question[0]
		name := strings.ToLower(q.Name)
		s.mu.RLock()
		b := s.special[name]
		ptrs, addrs := s.ptr[name], s.addrs[name]
		s.mu.RUnlock()
		switch b {
		case Silent:
			return
		case ServFail:
			m.Rcode = dns.RcodeServerFailure
			w.WriteMsg(m)
			return
		case Truncate:
			if !tcp {
				m.Truncated = true
				w.WriteMsg(m)
				return
			}
		}
		hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Rrtype: q.Qtype, Ttl: 300}
		switch {
		case q.Qtype == dns.TypePTR && len(ptrs) > 0:
			for _, p := range ptrs {
				m.Answer = append(m.Answer, &dns.PTR{Hdr: hdr, Ptr: p})
			}
		case (q.Qtype == dns.TypeA || q.Qtype == dns.TypeAAAA) && len(addrs) > 0:
			for _, a := range addrs {
				if a.Is4() && q.Qtype == dns.TypeA {
					m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: a.AsSlice()})
				}
				if a.Is6() && q.Qtype == dns.TypeAAAA {
					m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
				}
			}
		case len(ptrs) > 0 || len(addrs) > 0:
			// The name exists with other types: NODATA.
		default:
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	}
}
