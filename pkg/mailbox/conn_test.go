package mailbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// TestTLSModes: implicit TLS and STARTTLS verify the server against the configured CA, and
// fail (never fall back to plain text) when they cannot.
func TestTLSModes(t *testing.T) {
	t.Parallel()
	serverTLS, caFile := testCA(t)
	_, otherCA := testCA(t)
	implicit := newMemServer(t, memOpts{implicit: serverTLS})
	starttls := newMemServer(t, memOpts{startTLS: serverTLS})
	plain := newMemServer(t, memOpts{})
	for _, srv := range []*memServer{implicit, starttls} {
		srv.append(t, "INBOX", reportMail(1, 0))
	}
	secure := func(srv *memServer, mode TLSMode, ca string) Config {
		cfg := srv.config()
		cfg.TLS, cfg.AllowPlain, cfg.CAFile, cfg.OpTimeout = mode, false, ca, 3*time.Second
		return cfg
	}
	cases := []struct {
		name    string
		cfg     Config
		wantErr string // "" for success
	}{
		{"implicit with the CA", secure(implicit, TLSImplicit, caFile), ""},
		{"implicit with the CA as text", func() Config {
			c := secure(implicit, TLSImplicit, "")
			b, _ := os.ReadFile(caFile)
			c.CAPEM = string(b)
			return c
		}(), ""},
		{"starttls with the CA", secure(starttls, TLSStartTLS, caFile), ""},
		{"implicit, system roots", secure(implicit, TLSImplicit, ""), "certificate"},
		{"implicit, another CA", secure(implicit, TLSImplicit, otherCA), "certificate"},
		{"starttls, another CA", secure(starttls, TLSStartTLS, otherCA), "certificate"},
		{"starttls on a server without it", secure(plain, TLSStartTLS, caFile), "STARTTLS"},
		{"implicit on a plain server", secure(plain, TLSImplicit, caFile), "TLS handshake"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res, err := (&Poller{}).Poll(context.Background(), tc.cfg, State{}, newRecSink(t).sink)
			switch {
			case tc.wantErr == "" && (err != nil || res.State.UIDValidity == 0):
				t.Errorf("Poll: %+v, %v; want a poll of the folder", res, err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("Poll error %v, want one mentioning %q", err, tc.wantErr)
			}
		})
	}
}

// TestXOAUTH2: the token is read from a file or a command at every connect (so a refreshed
// token is picked up), and a rejected token is a clear error.
func TestXOAUTH2(t *testing.T) {
	t.Parallel()
	var valid atomic.Value
	valid.Store("token-1")
	srv := newMemServer(t, memOpts{caps: capsUIDPlus, token: func() string { return valid.Load().(string) }})
	srv.append(t, "INBOX", reportMail(1, 0))
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	write := func(tok string) {
		if err := os.WriteFile(tokenFile, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := srv.config()
	cfg.Password, cfg.OAuth2TokenFile = "", tokenFile
	poll := func(cfg Config) (Result, error) {
		return (&Poller{}).Poll(context.Background(), cfg, State{}, newRecSink(t).sink)
	}

	write("token-1")
	if res, err := poll(cfg); err != nil || res.Saved != 1 {
		t.Fatalf("token file: %+v, %v", res, err)
	}
	valid.Store("token-2") // the provider rotated it; the file is refreshed by someone else
	write("token-2")
	if _, err := poll(cfg); err != nil {
		t.Errorf("refreshed token file: %v", err)
	}
	write("token-1")
	if _, err := poll(cfg); err == nil || !strings.Contains(err.Error(), "rejected the token") {
		t.Errorf("stale token: error %v, want the server's rejection", err)
	}

	cmdCfg := cfg
	cmdCfg.OAuth2TokenFile, cmdCfg.OAuth2TokenCommand = "", []string{"sh", "-c", "printf 'token-2\n'"}
	if _, err := poll(cmdCfg); err != nil {
		t.Errorf("token command: %v", err)
	}
	cmdCfg.OAuth2TokenCommand = []string{"sh", "-c", "echo refresh failed >&2; exit 3"}
	if _, err := poll(cmdCfg); err == nil || !strings.Contains(err.Error(), "refresh failed") {
		t.Errorf("failing command: error %v, want its stderr", err)
	}
	cmdCfg.OAuth2TokenCommand = []string{"sh", "-c", "true"}
	if _, err := poll(cmdCfg); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty token: error %v", err)
	}
}

// TestAuthFailure: a wrong password is an error naming the command, and nothing is read.
func TestAuthFailure(t *testing.T) {
	t.Parallel()
	srv := newMemServer(t, memOpts{})
	srv.append(t, "INBOX", reportMail(1, 0))
	cfg := srv.config()
	cfg.Password = "wrong"
	sink := newRecSink(t)
	if _, err := (&Poller{}).Poll(context.Background(), cfg, State{}, sink.sink); err == nil || !strings.Contains(err.Error(), "LOGIN") {
		t.Errorf("error %v, want a LOGIN failure", err)
	}
	if len(sink.uids) != 0 {
		t.Errorf("sink called %d times", len(sink.uids))
	}
}

// TestUnreachable: connecting to a port nobody answers on, or one that accepts and never
// speaks, fails within the timeout.
func TestUnreachable(t *testing.T) {
	t.Parallel()
	silent := newProxy(t, "127.0.0.1:1", nil) // accepts, then its upstream dial fails and it closes
	mute := newMemServer(t, memOpts{})
	stalled := newProxy(t, mute.addr, &cutRule{marker: []byte("* "), after: 0, stall: true}) // greeting swallowed
	for name, addr := range map[string]string{"closed": silent.addr(), "silent greeting": stalled.addr()} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(addr)
			cfg.OpTimeout = time.Second
			start := time.Now()
			_, err := (&Poller{}).Poll(context.Background(), cfg, State{}, newRecSink(t).sink)
			if err == nil || time.Since(start) > 4*time.Second {
				t.Errorf("error %v after %s", err, time.Since(start))
			}
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	_, caFile := testCA(t)
	caBytes, _ := os.ReadFile(caFile)
	caPEM := string(caBytes)
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	os.WriteFile(garbage, []byte("not a certificate"), 0o600)
	ok := Config{Host: "imap.example.org", Username: "dmarc@example.org", Password: "pw"}
	cases := []struct {
		name string
		mod  func(*Config)
		want string // "" valid; else a fragment of the error
	}{
		{"defaults", func(*Config) {}, ""},
		{"starttls with CA", func(c *Config) { c.TLS, c.CAFile = TLSStartTLS, caFile }, ""},
		{"xoauth2 file", func(c *Config) { c.Password, c.OAuth2TokenFile = "", "/run/token" }, ""},
		{"plain allowed", func(c *Config) { c.TLS, c.AllowPlain = TLSNone, true }, ""},
		{"seen policy same folders", func(c *Config) { c.Policy, c.ArchiveFolder = PolicySeen, "INBOX" }, ""},
		{"no host", func(c *Config) { c.Host = " " }, "host: required"},
		{"url as host", func(c *Config) { c.Host = "imaps://imap.example.org/" }, "host"},
		{"port in host", func(c *Config) { c.Host = "imap.example.org:993" }, "no scheme, port"},
		{"IPv6 host", func(c *Config) { c.Host = "2001:db8::1" }, ""},
		{"bad port", func(c *Config) { c.Port = 70000 }, "port 70000"},
		{"no user", func(c *Config) { c.Username = "" }, "username: required"},
		{"no secret", func(c *Config) { c.Password = "" }, "password: required"},
		{"two secrets", func(c *Config) { c.OAuth2TokenFile = "/run/token" }, "exactly one"},
		{"empty command", func(c *Config) { c.Password, c.OAuth2TokenCommand = "", []string{""} }, "oauth2_token_command"},
		{"plain refused", func(c *Config) { c.TLS = TLSNone }, "allow_plain"},
		{"unknown tls", func(c *Config) { c.TLS = "ssl" }, `tls "ssl"`},
		{"missing CA", func(c *Config) { c.CAFile = "/nonexistent/ca.pem" }, "ca_file"},
		{"CA without certificate", func(c *Config) { c.CAFile = garbage }, "no PEM certificate"},
		{"CA as text", func(c *Config) { c.CAPEM = caPEM }, ""},
		{"CA text without certificate", func(c *Config) { c.CAPEM = "junk" }, "ca_pem: no PEM certificate"},
		{"CA file and text", func(c *Config) { c.CAFile, c.CAPEM = caFile, caPEM }, "at most one"},
		{"archive is the folder", func(c *Config) { c.ArchiveFolder = "inbox" }, "must differ"},
		{"unknown policy", func(c *Config) { c.Policy = "delete" }, `policy "delete"`},
		{"batch too big", func(c *Config) { c.BatchSize = 5000 }, "batch_size 5000"},
		{"negative size", func(c *Config) { c.MaxMessageBytes = -1 }, "max_message_bytes"},
		{"negative timeout", func(c *Config) { c.OpTimeout = -time.Second }, "op_timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := ok
			tc.mod(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalidConfig)):
				t.Errorf("Validate: %v; want ErrInvalidConfig mentioning %q", err, tc.want)
			}
		})
	}
	d := ok.WithDefaults()
	if d.Port != 993 || d.Folder != "INBOX" || d.ArchiveFolder != "Archive" || d.InvalidFolder != "Invalid" ||
		d.Policy != PolicyMove || d.MaxMessageBytes != 50<<20 || d.BatchSize != 100 || d.OpTimeout != time.Minute {
		t.Errorf("defaults %+v", d)
	}
	if p := (Config{TLS: TLSStartTLS}).WithDefaults().Port; p != 143 {
		t.Errorf("starttls default port %d, want 143", p)
	}
}

// TestNoSecretInLogs: a Config printed or logged by mistake shows no password.
func TestNoSecretInLogs(t *testing.T) {
	t.Parallel()
	c := Config{Host: "imap.example.org", Username: "u", Password: "hunter2-secret"}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("polling", "mailbox", c)
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%v", &c), buf.String()} {
		if strings.Contains(s, "hunter2") {
			t.Errorf("password printed: %s", s)
		}
	}
}

func TestMessageID(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"Message-ID: <a@b>\r\nSubject: x\r\n\r\nbody":                 "a@b",
		"subject: x\nmessage-id:\n <folded@host>\n\nMessage-ID: <no>": "folded@host",
		"Subject: x\r\n\r\nMessage-ID: <in-body>":                     "",
		"From nobody\nMessage-Id: plain\n\n":                          "plain",
	}
	for in, want := range cases {
		if got := messageID([]byte(in)); got != want {
			t.Errorf("messageID(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestCheck: Check reports the folder and the acknowledgement mode, and changes nothing.
func TestCheck(t *testing.T) {
	t.Parallel()
	for caps, want := range map[string]string{"move": "move", "uidplus": "uidplus", "bare": "copy+flag"} {
		srv := newMemServer(t, memOpts{caps: map[string]imap.CapSet{"move": capsFull, "uidplus": capsUIDPlus, "bare": capsBare}[caps]})
		srv.append(t, "INBOX", reportMail(1, 0))
		res, err := (&Poller{}).Check(context.Background(), srv.config())
		if err != nil || res.Messages != 1 || res.UIDValidity == 0 || res.Acknowledge != want {
			t.Errorf("%s: %+v, %v; want 1 message, acknowledge %s", caps, res, err, want)
		}
		look := newPeek(t, srv.config())
		if m := look.folder("INBOX"); len(m) != 1 || len(m[0].Flags) != 0 || look.folder("Archive") != nil {
			t.Errorf("%s: Check changed the mailbox: %v", caps, m)
		}
	}
	cfg := newMemServer(t, memOpts{}).config()
	cfg.Folder = "Missing"
	if _, err := (&Poller{}).Check(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "Missing") {
		t.Errorf("missing folder: %v", err)
	}
}
