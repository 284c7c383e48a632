package mailbox

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// watchdog owns the deadlines of one connection. go-imap sets its own (30 s per response, then
// 5 minutes for a whole literal, however long the sink takes to read it) and never honours a
// context, so the connection is handed to it wrapped: go-imap's deadline calls are ignored and
// ours apply instead. While the poller waits on the server, every read or write must make
// progress within the timeout, so a dead peer or a connection cut in the middle of a literal
// fails after one timeout, not never (a half-open TCP connection sends no FIN, and go-imap would
// otherwise wait forever). While the sink runs the server owes nothing, so pause() lifts the
// read deadline and resume() sets a fresh one.
type watchdog struct {
	net.Conn
	timeout time.Duration

	mu      sync.Mutex
	paused  bool
	killed  bool
	expired bool  // a deadline passed: the server made no progress within timeout
	cause   error // why kill was called
}

func newWatchdog(c net.Conn, timeout time.Duration) *watchdog {
	w := &watchdog{Conn: c, timeout: timeout}
	c.SetReadDeadline(time.Now().Add(timeout))
	return w
}

func (w *watchdog) Read(b []byte) (int, error) {
	n, err := w.Conn.Read(b)
	if n > 0 || err != nil {
		w.mu.Lock()
		if n > 0 && !w.paused && !w.killed {
			w.Conn.SetReadDeadline(time.Now().Add(w.timeout))
		}
		w.expired = w.expired || errors.Is(err, os.ErrDeadlineExceeded)
		w.mu.Unlock()
	}
	return n, err
}

func (w *watchdog) Write(b []byte) (int, error) {
	w.mu.Lock()
	if !w.killed {
		w.Conn.SetWriteDeadline(time.Now().Add(w.timeout))
	}
	w.mu.Unlock()
	n, err := w.Conn.Write(b)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		w.mu.Lock()
		w.expired = true
		w.mu.Unlock()
	}
	return n, err
}

// go-imap's own deadlines are replaced by the watchdog's (see the type comment).
func (w *watchdog) SetDeadline(time.Time) error      { return nil }
func (w *watchdog) SetReadDeadline(time.Time) error  { return nil }
func (w *watchdog) SetWriteDeadline(time.Time) error { return nil }

func (w *watchdog) pause() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.paused = true
	if !w.killed {
		w.Conn.SetReadDeadline(time.Time{})
	}
}

func (w *watchdog) resume() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.paused = false
	if !w.killed {
		w.Conn.SetReadDeadline(time.Now().Add(w.timeout))
	}
}

// kill closes the connection at once; every pending read and write returns an error, which
// unblocks go-imap's reader goroutine.
func (w *watchdog) kill(cause error) {
	w.mu.Lock()
	if !w.killed {
		w.killed, w.cause = true, cause
	}
	w.mu.Unlock()
	w.Conn.Close()
}

func (w *watchdog) state() (cause error, expired bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cause, w.expired
}

// session is one authenticated IMAP connection.
type session struct {
	c    *imapclient.Client
	dog  *watchdog
	caps imap.CapSet
	stop func() bool // detaches the context watch
}

// dial connects, secures and authenticates per cfg (defaults applied). Cancelling ctx at any
// later point kills the connection.
func dial(ctx context.Context, cfg Config) (*session, error) {
	addr := net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))
	d := net.Dialer{Timeout: cfg.OpTimeout, KeepAlive: 30 * time.Second}
	dialFn := d.DialContext
	if cfg.Dial != nil {
		dialFn = cfg.Dial
	}
	raw, err := dialFn(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", addr, err)
	}
	dog := newWatchdog(raw, cfg.OpTimeout)
	s := &session{dog: dog}
	s.stop = context.AfterFunc(ctx, func() { dog.kill(context.Cause(ctx)) })
	if err := s.open(ctx, cfg); err != nil {
		s.abort()
		return nil, s.explain(fmt.Errorf("%s: %w", addr, err))
	}
	return s, nil
}

func (s *session) open(ctx context.Context, cfg Config) error {
	var conn net.Conn = s.dog
	var tc *tls.Config
	if cfg.TLS != TLSNone {
		var err error
		if tc, err = tlsConfig(cfg); err != nil {
			return err
		}
	}
	opts := &imapclient.Options{TLSConfig: tc}
	switch cfg.TLS {
	case TLSImplicit:
		tc = tc.Clone()
		tc.NextProtos = []string{"imap"} // as go-imap's own DialTLS does
		tconn := tls.Client(conn, tc)
		if err := tconn.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("TLS handshake: %w", protocolError(err))
		}
		s.c = imapclient.New(tconn, opts)
	case TLSStartTLS:
		// NewStartTLS refuses a server that does not offer STARTTLS, or that sends PREAUTH on
		// the plain connection: there is no silent fall-back to plain text.
		c, err := imapclient.NewStartTLS(conn, opts)
		if err != nil {
			return fmt.Errorf("STARTTLS: %w", protocolError(err))
		}
		s.c = c
	default:
		s.c = imapclient.New(conn, opts)
	}
	if err := s.c.WaitGreeting(); err != nil {
		return fmt.Errorf("greeting: %w", protocolError(err))
	}
	if err := s.login(ctx, cfg); err != nil {
		return err
	}
	// Servers announce more after login (MOVE, UIDPLUS...), so ask again.
	caps, err := s.c.Capability().Wait()
	if err != nil {
		return fmt.Errorf("CAPABILITY: %w", protocolError(err))
	}
	s.caps = caps
	return nil
}

func tlsConfig(cfg Config) (*tls.Config, error) {
	pool, err := cfg.caPool()
	if err != nil {
		return nil, err
	}
	return &tls.Config{ServerName: cfg.Host, MinVersion: tls.VersionTLS12, RootCAs: pool}, nil
}

func (s *session) login(ctx context.Context, cfg Config) error {
	if cfg.Password != "" {
		if err := s.c.Login(cfg.Username, cfg.Password).Wait(); err != nil {
			return fmt.Errorf("LOGIN as %s: %w", cfg.Username, protocolError(err))
		}
		return nil
	}
	token, err := oauth2Token(ctx, cfg)
	if err != nil {
		return err
	}
	if err := s.c.Authenticate(&xoauth2{user: cfg.Username, token: token}); err != nil {
		return fmt.Errorf("AUTHENTICATE XOAUTH2 as %s: %w", cfg.Username, protocolError(err))
	}
	return nil
}

// oauth2Token reads the access token afresh for this connection.
func oauth2Token(ctx context.Context, cfg Config) (string, error) {
	var b []byte
	if cfg.OAuth2TokenFile != "" {
		var err error
		if b, err = os.ReadFile(cfg.OAuth2TokenFile); err != nil {
			return "", fmt.Errorf("oauth2 token file: %w", err)
		}
	} else {
		cctx, cancel := context.WithTimeout(ctx, cfg.OpTimeout)
		defer cancel()
		cmd := exec.CommandContext(cctx, cfg.OAuth2TokenCommand[0], cfg.OAuth2TokenCommand[1:]...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		var err error
		if b, err = cmd.Output(); err != nil {
			return "", fmt.Errorf("oauth2 token command %s: %w: %s", cfg.OAuth2TokenCommand[0], err, firstLine(stderr.String()))
		}
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" || strings.ContainsAny(tok, "\x01\r\n \t") {
		return "", errors.New("oauth2 token: empty, or not a single token")
	}
	return tok, nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// xoauth2 is the SASL XOAUTH2 client (Google's and Microsoft's documented format). A rejected
// token makes the server send a JSON error as a challenge; its text becomes the error.
type xoauth2 struct{ user, token string }

func (x *xoauth2) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + x.user + "\x01auth=Bearer " + x.token + "\x01\x01"), nil
}

func (x *xoauth2) Next(challenge []byte) ([]byte, error) {
	return nil, fmt.Errorf("%w: %.200s", errTokenRejected, strings.TrimSpace(string(challenge)))
}

// errTokenRejected: the server took AUTHENTICATE XOAUTH2 (so it speaks IMAP) and answered the
// token with an error, whose text (JSON from the provider) is the reason.
var errTokenRejected = errors.New("server rejected the token")

// abort kills the connection and waits, for a bounded time, for go-imap to notice. It never
// blocks longer than a few seconds, whatever state go-imap is in.
func (s *session) abort() {
	s.stop()
	s.dog.kill(errAborted)
	if s.c == nil {
		return
	}
	done := make(chan struct{})
	go func() { s.c.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}

var errAborted = errors.New("connection aborted")

// logout ends a healthy session politely.
func (s *session) logout() {
	if s.c != nil {
		s.c.Logout().Wait()
	}
	s.abort()
}

// explain replaces the raw error of a killed connection by the reason it was killed
// (the context's cause), so a cancelled poll says so instead of "use of closed connection".
// go-imap reports I/O errors as text (%v), so the watchdog, not the error, says a deadline passed.
func (s *session) explain(err error) error {
	cause, expired := s.dog.state()
	switch {
	case cause != nil && !errors.Is(cause, errAborted) && !errors.Is(err, cause):
		return fmt.Errorf("%w (%v)", cause, err)
	case expired:
		return fmt.Errorf("%w: the server made no progress for %s: %v", ErrTimeout, s.dog.timeout, err)
	}
	return err
}

// ErrNotIMAP: what answered at the mailbox's address does not speak IMAP (an SSH or a web
// server, say). The error says only that: repeating what it sent would let whoever sets a
// mailbox's address read other services' banners through the worker (issue 18).
var ErrNotIMAP = errors.New("the server did not answer as an IMAP server")

// ErrNoTLS: the server answered, but not with TLS.
var ErrNoTLS = errors.New("the server did not answer with TLS")

// protocolError keeps an error of the connection's set-up if it tells only what went wrong:
// an IMAP server's own status response, a TLS verdict, a network failure. Anything else (a
// greeting or response that is not IMAP at all) becomes ErrNotIMAP, whose text carries none
// of the bytes the far end sent.
func protocolError(err error) error {
	var ie *imap.Error
	var rh tls.RecordHeaderError
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	var alert tls.AlertError
	var nerr net.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ie), errors.Is(err, errTokenRejected):
		return err // the server answered in IMAP: its status text is the reason
	case errors.As(err, &rh):
		return ErrNoTLS
	case errors.As(err, &unknown):
		return errors.New("the server's certificate is signed by an unknown authority")
	case errors.As(err, &host):
		return fmt.Errorf("the server's certificate is not valid for %s", host.Host)
	case errors.As(err, &invalid):
		return errors.New("the server's certificate is invalid (expired, not yet valid, or not for a server)")
	case errors.As(err, &alert):
		return err // a TLS alert: one of a fixed set of names
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: it closed the connection", ErrNotIMAP)
	case errors.As(err, &nerr), errors.Is(err, net.ErrClosed), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err // the connection failed or was cut; explain() tells why
	case strings.HasPrefix(err.Error(), "imapclient: server sent PREAUTH"):
		return err // go-imap's own words
	}
	return ErrNotIMAP
}

// ErrTimeout: the server stopped answering in the middle of an operation (a dead peer, or a
// connection cut without a FIN).
var ErrTimeout = errors.New("IMAP operation timed out")
