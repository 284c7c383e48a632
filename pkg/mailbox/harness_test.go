package mailbox

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"

	"github.com/vigilhq/vigil/pkg/corpus"
	"github.com/vigilhq/vigil/pkg/unwrap"
)

const (
	testUser = "dmarc@example.org"
	testPass = "s3cret-pass"
)

// Capability sets for the in-memory server: what the poller may rely on is only what is
// advertised, so these switch the MOVE and UIDPLUS paths.
var (
	capsFull    = imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapMove: {}, imap.CapUIDPlus: {}, imap.CapESearch: {}}
	capsUIDPlus = imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapUIDPlus: {}}
	capsBare    = imap.CapSet{imap.CapIMAP4rev1: {}}
)

// memServer is go-imap's in-memory IMAP server on a loopback listener.
type memServer struct {
	user *imapmemserver.User
	addr string
}

type memOpts struct {
	caps     imap.CapSet
	implicit *tls.Config // serve TLS from the first byte
	startTLS *tls.Config // offer STARTTLS
	token    func() string
}

func newMemServer(t testing.TB, o memOpts) *memServer {
	t.Helper()
	if o.caps == nil {
		o.caps = capsFull
	}
	mem := imapmemserver.New()
	user := imapmemserver.NewUser(testUser, testPass)
	if err := user.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	mem.AddUser(user)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			s := mem.NewSession()
			if o.token != nil {
				return &xoauth2Session{Session: s, token: o.token}, nil, nil
			}
			return s, nil, nil
		},
		Caps:         o.caps,
		TLSConfig:    o.startTLS,
		InsecureAuth: o.startTLS == nil && o.implicit == nil,
		Logger:       log.New(io.Discard, "", 0),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if o.implicit != nil {
		ln = tls.NewListener(ln, o.implicit)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return &memServer{user: user, addr: ln.Addr().String()}
}

// config is a plain-text configuration for this server (tests only: AllowPlain).
func (m *memServer) config() Config {
	return testConfig(m.addr)
}

func testConfig(addr string) Config {
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	return Config{Host: host, Port: p, Username: testUser, Password: testPass, TLS: TLSNone, AllowPlain: true,
		OpTimeout: 10 * time.Second}
}

// append seeds a message directly, without IMAP.
func (m *memServer) append(t testing.TB, folder string, data []byte, flags ...imap.Flag) uint32 {
	t.Helper()
	res, err := m.user.Append(folder, literal{bytes.NewReader(data), int64(len(data))}, &imap.AppendOptions{Flags: flags})
	if err != nil {
		t.Fatalf("append to %s: %v", folder, err)
	}
	return uint32(res.UID)
}

type literal struct {
	*bytes.Reader
	n int64
}

func (l literal) Size() int64 { return l.n }

// xoauth2Session adds SASL XOAUTH2 to the in-memory server: a token equal to token() logs the
// user in; anything else gets the JSON error challenge Gmail sends, then NO.
type xoauth2Session struct {
	imapserver.Session
	token func() string
}

func (s *xoauth2Session) AuthenticateMechanisms() []string { return []string{"XOAUTH2"} }

func (s *xoauth2Session) Authenticate(mech string) (sasl.Server, error) {
	return &xoauth2Server{s: s}, nil
}

func (s *xoauth2Session) Move(w *imapserver.MoveWriter, set imap.NumSet, dest string) error {
	return s.Session.(imapserver.SessionMove).Move(w, set, dest)
}

type xoauth2Server struct {
	s      *xoauth2Session
	failed bool
}

func (x *xoauth2Server) Next(resp []byte) ([]byte, bool, error) {
	if x.failed {
		return nil, true, imapserver.ErrAuthFailed
	}
	if resp == nil {
		return []byte{}, false, nil
	}
	f := strings.Split(string(resp), "\x01")
	if len(f) == 4 && f[0] == "user="+testUser && f[1] == "auth=Bearer "+x.s.token() {
		return nil, true, x.s.Session.Login(testUser, testPass)
	}
	x.failed = true
	return []byte(`{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}`), false, nil
}

// proxy is a loopback TCP relay in front of a server. It records what the client sends (the
// IMAP commands), counts what the server sends, and can cut the connection mid-response.
type proxy struct {
	ln       net.Listener
	upstream string
	cut      *cutRule
	delay    time.Duration // added to every chunk in both directions: a round trip costs 2×delay more

	mu       sync.Mutex
	commands bytes.Buffer
	toClient int64
	conns    []net.Conn
}

// cutRule: when marker has passed from server to client for the (skip+1)-th time, forward
// after more bytes, then close both sides (stall false) or go silent with both connections
// left open (stall true: a peer gone without a FIN).
type cutRule struct {
	marker []byte
	skip   int
	after  int
	stall  bool
}

func newProxy(t testing.TB, upstream string, cut *cutRule) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, upstream: upstream, cut: cut}
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.upstream)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		go p.up(c, p.delayed(u))
		go p.down(u, p.delayed(c))
	}
}

// delayed makes writes to c arrive delay later, in order, without slowing the reader down:
// latency, not bandwidth.
func (p *proxy) delayed(c net.Conn) net.Conn {
	if p.delay == 0 {
		return c
	}
	type chunk struct {
		at time.Time
		b  []byte
	}
	q := make(chan chunk, 4096)
	go func() {
		for ch := range q {
			time.Sleep(time.Until(ch.at))
			if _, err := c.Write(ch.b); err != nil {
				c.Close()
				for range q {
				}
				return
			}
		}
		c.Close()
	}()
	return &delayConn{Conn: c, send: func(b []byte) {
		q <- chunk{time.Now().Add(p.delay), append([]byte(nil), b...)}
	}, done: func() { close(q) }}
}

type delayConn struct {
	net.Conn
	send func([]byte)
	done func()
	once sync.Once
}

func (d *delayConn) Write(b []byte) (int, error) { d.send(b); return len(b), nil }
func (d *delayConn) Close() error                { d.once.Do(d.done); return nil }

func (p *proxy) up(c, u net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			p.mu.Lock()
			if p.commands.Len() < 8<<20 {
				p.commands.Write(buf[:n])
			}
			p.mu.Unlock()
			if _, werr := u.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			u.Close()
			return
		}
	}
}

func (p *proxy) down(u, c net.Conn) {
	buf := make([]byte, 32<<10)
	var carry []byte // the last len(marker)-1 bytes, so a marker split across reads is found
	seen := 0
	left := -1 // bytes still to forward once the cut is armed; -1: not armed
	for {
		n, err := u.Read(buf)
		chunk := buf[:n]
		if p.cut != nil && left < 0 && n > 0 {
			w := append(carry, chunk...)
			for off := 0; left < 0; {
				i := bytes.Index(w[off:], p.cut.marker)
				if i < 0 {
					break
				}
				end := off + i + len(p.cut.marker)
				if seen++; seen > p.cut.skip {
					left = end - len(carry) + p.cut.after // counted from this chunk's start
				}
				off = end
			}
			carry = append([]byte(nil), w[max(0, len(w)-len(p.cut.marker)+1):]...)
		}
		if left >= 0 && len(chunk) > left {
			chunk = chunk[:left]
		}
		if len(chunk) > 0 {
			p.mu.Lock()
			p.toClient += int64(len(chunk))
			p.mu.Unlock()
			if _, werr := c.Write(chunk); werr != nil {
				return
			}
		}
		if left >= 0 {
			if left -= len(chunk); left <= 0 {
				if !p.cut.stall {
					c.Close()
					u.Close()
				}
				return // stall: both stay open, nothing more is forwarded
			}
		}
		if err != nil {
			c.Close()
			return
		}
	}
}

func (p *proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

var commandLine = regexp.MustCompile(`(?m)^T\d+ ([A-Z]+(?: [A-Z]+)?)`)

// commandNames lists the IMAP commands the client sent, e.g. "UID MOVE", "EXPUNGE".
func (p *proxy) commandNames() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, m := range commandLine.FindAllStringSubmatch(p.commands.String(), -1) {
		out = append(out, m[1])
	}
	return out
}

func (p *proxy) commandLines() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.commands.String()
}

func (p *proxy) bytesToClient() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.toClient
}

// viaProxy points cfg at the proxy.
func viaProxy(cfg Config, p *proxy) Config {
	_, port, _ := net.SplitHostPort(p.addr())
	cfg.Port, _ = strconv.Atoi(port)
	return cfg
}

// peek is an independent IMAP client for looking at folders while or after the poller works.
type peek struct {
	t testing.TB
	c *imapclient.Client
}

func newPeek(t testing.TB, cfg Config) *peek {
	t.Helper()
	c, err := imapclient.DialInsecure(net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(cfg.Username, testPass).Wait(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &peek{t: t, c: c}
}

type peekMsg struct {
	UID   uint32
	Flags []imap.Flag
	Key   string
}

func (m peekMsg) has(f imap.Flag) bool {
	return slices.ContainsFunc(m.Flags, func(g imap.Flag) bool { return strings.EqualFold(string(g), string(f)) })
}

// folder lists a folder's messages with their flags and content keys; a missing folder is empty.
func (p *peek) folder(name string) []peekMsg {
	p.t.Helper()
	sel, err := p.c.Select(name, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		var ie *imap.Error
		if errors.As(err, &ie) && ie.Type == imap.StatusResponseTypeNo {
			return nil
		}
		p.t.Fatalf("peek: select %s: %v", name, err)
	}
	if sel.NumMessages == 0 {
		return nil
	}
	cmd := p.c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
	var out []peekMsg
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		var m peekMsg
		for it := msg.Next(); it != nil; it = msg.Next() {
			switch it := it.(type) {
			case imapclient.FetchItemDataUID:
				m.UID = uint32(it.UID)
			case imapclient.FetchItemDataFlags:
				m.Flags = it.Flags
			case imapclient.FetchItemDataBodySection:
				b, err := io.ReadAll(it.Literal)
				if err != nil {
					p.t.Fatal(err)
				}
				m.Key = key(b)
			}
		}
		out = append(out, m)
	}
	if err := cmd.Close(); err != nil {
		p.t.Fatalf("peek: fetch %s: %v", name, err)
	}
	return out
}

// flags returns one message's flags without touching them.
func (p *peek) flags(folder string, uid uint32) []imap.Flag {
	p.t.Helper()
	if _, err := p.c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		p.t.Fatalf("peek: select %s: %v", folder, err)
	}
	bufs, err := p.c.Fetch(imap.UIDSetNum(imap.UID(uid)), &imap.FetchOptions{Flags: true}).Collect()
	if err != nil || len(bufs) != 1 {
		p.t.Fatalf("peek: flags of UID %d in %s: %d answers, %v", uid, folder, len(bufs), err)
	}
	return bufs[0].Flags
}

func (p *peek) store(folder string, uid uint32, op imap.StoreFlagsOp, flags ...imap.Flag) {
	p.t.Helper()
	if _, err := p.c.Select(folder, nil).Wait(); err != nil {
		p.t.Fatal(err)
	}
	if err := p.c.Store(imap.UIDSetNum(imap.UID(uid)), &imap.StoreFlags{Op: op, Flags: flags, Silent: true}, nil).Close(); err != nil {
		p.t.Fatal(err)
	}
	if err := p.c.Unselect().Wait(); err != nil {
		p.t.Fatal(err)
	}
}

// served is what the in-memory server sends for BODY[] of a message stored as b: it parses
// and re-writes the header (CRLF line ends), and sends nothing when go-message cannot parse
// it (an mbox "From " line, a header line of one space): an empty body, as iCloud sends.
// Dovecot sends what it stored.
func served(b []byte) []byte {
	return imapserver.ExtractBodySection(bytes.NewReader(b), &imap.FetchItemBodySection{})
}

// remove deletes one message as a mail program would: \Deleted, then EXPUNGE.
func (p *peek) remove(folder string, uid uint32) {
	p.t.Helper()
	if _, err := p.c.Select(folder, nil).Wait(); err != nil {
		p.t.Fatal(err)
	}
	set := imap.UIDSetNum(imap.UID(uid))
	if err := p.c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}, Silent: true}, nil).Close(); err != nil {
		p.t.Fatal(err)
	}
	if err := p.c.Expunge().Close(); err != nil {
		p.t.Fatal(err)
	}
	if err := p.c.Unselect().Wait(); err != nil {
		p.t.Fatal(err)
	}
}

// key identifies a message by content. Line ends are normalised because a server may store or
// serve LF-only messages with CRLF (Dovecot does).
func key(b []byte) string {
	sum := sha256.Sum256(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")))
	return hex.EncodeToString(sum[:8])
}

// recSink stands in for the pipeline: it dedupes by content, as ingest does by SHA-256, files
// what Classify finds no report in as invalid, and records every call.
type recSink struct {
	t      testing.TB
	mu     sync.Mutex
	stored map[string]bool
	calls  map[string]int
	uids   []uint32
	n      int
	failAt int                // the failAt-th call returns errDBDown (0: never)
	check  func(m Message)    // runs inside the sink, e.g. to look at the server's flags
	record func(m Message)    // extra bookkeeping
	verdct func(Message) bool // decides report or not; nil: Classify
}

var errDBDown = errors.New("database is down")

func newRecSink(t testing.TB) *recSink {
	return &recSink{t: t, stored: map[string]bool{}, calls: map[string]int{}}
}

func (s *recSink) sink(ctx context.Context, m Message) (Disposition, error) {
	if s.check != nil {
		s.check(m)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	if s.failAt != 0 && s.n == s.failAt {
		return 0, errDBDown
	}
	if len(m.Data) == 0 || m.Size <= 0 {
		s.t.Errorf("UID %d: %d bytes handed over, RFC822.SIZE %d", m.UID, len(m.Data), m.Size)
	}
	k := key(m.Data)
	s.calls[k]++
	s.uids = append(s.uids, m.UID)
	if s.record != nil {
		s.record(m)
	}
	report := false
	if s.verdct != nil {
		report = s.verdct(m)
	} else {
		report, _ = Classify(m.Data, unwrap.DefaultLimits)
	}
	dup := s.stored[k]
	s.stored[k] = true
	switch {
	case !report:
		return Invalid, nil
	case dup:
		return Duplicate, nil
	}
	return Archive, nil
}

func (s *recSink) count(k string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[k]
}

// reportMail builds an e-mail like those reporters send: a gzip'd aggregate report, base64,
// as an attachment. pad adds a text part of that many bytes (to make messages big).
func reportMail(i, pad int) []byte {
	xml := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<feedback>
  <report_metadata><org_name>reporter.example</org_name><email>noreply@reporter.example</email>
    <report_id>vigil-test-%d</report_id><date_range><begin>1704067200</begin><end>1704153599</end></date_range></report_metadata>
  <policy_published><domain>example.org</domain><adkim>r</adkim><aspf>r</aspf><p>none</p><sp>none</sp><pct>100</pct></policy_published>
  <record><row><source_ip>192.0.2.%d</source_ip><count>%d</count><policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row>
    <identifiers><header_from>example.org</header_from></identifiers>
    <auth_results><dkim><domain>example.org</domain><result>pass</result></dkim><spf><domain>example.org</domain><result>pass</result></spf></auth_results></record>
</feedback>
`, i, i%250+1, i%7+1)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(xml))
	zw.Close()
	name := fmt.Sprintf("reporter.example!example.org!1704067200!1704153599!%d.xml.gz", i)
	var b strings.Builder
	fmt.Fprintf(&b, "From: noreply@reporter.example\r\nTo: %s\r\nSubject: Report Domain: example.org Submitter: reporter.example Report-ID: vigil-test-%d\r\n", testUser, i)
	fmt.Fprintf(&b, "Message-ID: <vigil-test-%d@reporter.example>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nMIME-Version: 1.0\r\n", i)
	b.WriteString("Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nDMARC aggregate report.\r\n")
	if pad > 0 {
		b.WriteString("--b1\r\nContent-Type: text/plain\r\n\r\n")
		line := strings.Repeat("x", 76) + "\r\n"
		for n := 0; n < pad; n += len(line) {
			b.WriteString(line)
		}
	}
	fmt.Fprintf(&b, "--b1\r\nContent-Type: application/gzip; name=\"%s\"\r\nContent-Disposition: attachment; filename=\"%s\"\r\nContent-Transfer-Encoding: base64\r\n\r\n", name, name)
	enc := base64.StdEncoding.EncodeToString(gz.Bytes())
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n--b1--\r\n")
	return []byte(b.String())
}

// spamMail holds no report: the pipeline files it as invalid.
func spamMail(i int) []byte {
	return []byte(fmt.Sprintf("From: promo@shop.example\r\nTo: %s\r\nSubject: Offer %d\r\nMessage-ID: <spam-%d@shop.example>\r\n\r\nBuy now.\r\n", testUser, i, i))
}

// corpusMail is one .eml of the shared corpus, read in place.
type corpusMail struct {
	rel  string
	kind string
	data []byte
}

func corpusMails(t testing.TB) []corpusMail {
	t.Helper()
	dir, entries := corpus.ForTest(t)
	var out []corpusMail
	for _, e := range entries {
		if !strings.HasSuffix(e.Path, ".eml") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.RelPath()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, corpusMail{rel: filepath.ToSlash(e.RelPath()), kind: e.Kind, data: b})
	}
	if len(out) < 30 {
		t.Fatalf("corpus lists %d .eml files; expected the shared corpus's 38 or more", len(out))
	}
	return out
}

// expectInvalid says whether the pipeline files a corpus e-mail as invalid: only those that
// are no report of any kind (INDEX kind "other").
func (c corpusMail) expectInvalid() bool { return c.kind == "other" }

// testCA makes a CA and a server certificate for 127.0.0.1 and localhost, and writes the CA
// to a PEM file.
func testCA(t testing.TB) (server *tls.Config, caFile string) {
	t.Helper()
	server, caFile, _, _ = testCAFiles(t, t.TempDir())
	return server, caFile
}

// testCAFiles writes ca.pem, server.pem and server.key into dir.
func testCAFiles(t testing.TB, dir string) (server *tls.Config, caFile, certFile, keyFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Vigil test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile, certFile, keyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key")
	writePEM(t, caFile, "CERTIFICATE", caDER)
	keyDER, _ := x509.MarshalECPrivateKey(key)
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}}, caFile, certFile, keyFile
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}

// keysOf lists the content keys of messages.
func keysOf(msgs []peekMsg) map[string]int {
	out := map[string]int{}
	for _, m := range msgs {
		out[m.Key]++
	}
	return out
}
