package mailbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// The Dovecot suite runs the poller against a real IMAP server: Debian's dovecot-imapd
// (apt-get install -y dovecot-imapd), started here as a foreground process with a config of
// its own in a temp dir, and killed at the end. It runs when VIGIL_TEST_DOVECOT=1; then a
// missing dovecot binary is a failure, not a skip.
//
// Dovecot's processes and users: the master runs as whoever starts it. As root (CI containers)
// it refuses to serve mail as root and drops privileges per role, so the config names the
// users the package creates: imap-login runs as dovenull (default_login_user), auth and the
// other helpers as dovecot (default_internal_user), and the test mailbox belongs to nobody
// (uid/gid in the passwd-file), which owns the maildir. The temp dir is made 0755 so those
// users can reach it, and chroot is off so nothing needs root-owned paths. As a normal user
// every role runs as that user and group (Dovecot's "rootless" mode: ports above 1023, no
// chroot, default_internal_group set to the user's group for the helpers' sockets).
// The listeners bind 127.0.0.1 on ports picked free just before start; a lost race to bind is
// retried. Nothing is installed or started system-wide (no systemd, no /etc/dovecot).

type dovecot struct {
	dir     string
	addr    string // IMAP (STARTTLS offered when TLS is on)
	tlsAddr string // IMAPS, implicit TLS ("" when TLS is off)
	caFile  string
}

type dovecotOpts struct {
	capability string // imap_capability: what is announced after login ("" keeps Dovecot's)
	tls        bool   // certificate from a test CA; plain-text LOGIN refused before STARTTLS
}

func dovecotBinary(tb testing.TB) string {
	tb.Helper()
	if os.Getenv("VIGIL_TEST_DOVECOT") != "1" {
		tb.Skip("skipping the Dovecot suite: set VIGIL_TEST_DOVECOT=1 (needs Debian's dovecot-imapd: apt-get install -y dovecot-imapd)")
	}
	for _, p := range []string{"dovecot", "/usr/sbin/dovecot"} {
		if bin, err := exec.LookPath(p); err == nil {
			return bin
		}
	}
	tb.Fatal("VIGIL_TEST_DOVECOT=1 but no dovecot binary on PATH or in /usr/sbin: apt-get install -y dovecot-imapd")
	return ""
}

func startDovecot(tb testing.TB, o dovecotOpts) *dovecot {
	tb.Helper()
	bin := dovecotBinary(tb)
	dir, err := os.MkdirTemp("", "vigil-dovecot-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	d := &dovecot{dir: dir}
	var lastErr error
	for range 3 {
		if lastErr = d.start(tb, bin, o); lastErr == nil {
			return d
		}
	}
	tb.Fatalf("dovecot did not start: %v", lastErr)
	return nil
}

func (d *dovecot) start(tb testing.TB, bin string, o dovecotOpts) error {
	mailUID, mailGID, loginUser, internalUser := dovecotUsers(tb)
	internalGroup := "dovecot"
	if os.Geteuid() != 0 {
		g, err := user.LookupGroupId(strconv.Itoa(os.Getgid()))
		if err != nil {
			tb.Fatal(err)
		}
		internalGroup = g.Name
	}
	mail := filepath.Join(d.dir, "mail")
	os.MkdirAll(mail, 0o755)
	if os.Geteuid() == 0 {
		os.Chown(mail, mailUID, mailGID)
	}
	passwd := filepath.Join(d.dir, "passwd")
	line := fmt.Sprintf("%s:{PLAIN}%s:%d:%d::%s::\n", testUser, testPass, mailUID, mailGID, filepath.Join(mail, testUser))
	if err := os.WriteFile(passwd, []byte(line), 0o644); err != nil {
		tb.Fatal(err)
	}
	port, tlsPort := freePort(tb), 0
	var conf strings.Builder
	fmt.Fprintf(&conf, `base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
protocols = imap
listen = 127.0.0.1
default_login_user = %[2]s
default_internal_user = %[3]s
default_internal_group = %[6]s
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:~/Maildir
mail_max_userip_connections = 200
mail_fsync = never
auth_mechanisms = plain login
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%u %[4]s
}
userdb {
  driver = passwd-file
  args = username_format=%%u %[4]s
}
service anvil {
  chroot =
}
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = %[5]d
  }
`, d.dir, loginUser, internalUser, passwd, port, internalGroup)
	if o.tls {
		tlsPort = freePort(tb)
		fmt.Fprintf(&conf, "  inet_listener imaps {\n    address = 127.0.0.1\n    port = %d\n    ssl = yes\n  }\n}\n", tlsPort)
		serverPEM, keyPEM, caFile := dovecotCert(tb, d.dir)
		d.caFile = caFile
		fmt.Fprintf(&conf, "ssl = required\nssl_cert = <%s\nssl_key = <%s\nssl_min_protocol = TLSv1.2\ndisable_plaintext_auth = yes\n", serverPEM, keyPEM)
		if _, err := os.Stat("/usr/share/dovecot/dh.pem"); err == nil {
			conf.WriteString("ssl_dh = </usr/share/dovecot/dh.pem\n")
		}
	} else {
		conf.WriteString("  inet_listener imaps {\n    port = 0\n  }\n}\nssl = no\ndisable_plaintext_auth = no\n")
	}
	if o.capability != "" {
		fmt.Fprintf(&conf, "protocol imap {\n  imap_capability = %s\n}\n", o.capability)
	}
	confPath := filepath.Join(d.dir, "dovecot.conf")
	if err := os.WriteFile(confPath, []byte(conf.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, "-F", "-c", confPath)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	// Its own process group, and SIGTERM (on which the master stops its children) if the test
	// binary dies without its cleanups (a test timeout), so no server outlives the run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start dovecot: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}
	d.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if o.tls {
		d.tlsAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(tlsPort))
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if greets(d.addr) {
			tb.Cleanup(stop)
			return nil
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(d.dir, "dovecot.log"))
			return fmt.Errorf("dovecot exited: %s%s", out.String(), log)
		default:
		}
		if time.Now().After(deadline) {
			stop()
			log, _ := os.ReadFile(filepath.Join(d.dir, "dovecot.log"))
			return fmt.Errorf("no greeting on %s within 15s: %s%s", d.addr, out.String(), log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func greets(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	l, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(l, "* OK")
}

// dovecotUsers: as root, the accounts dovecot-core creates and nobody for the mail; otherwise
// the current user for everything.
func dovecotUsers(tb testing.TB) (mailUID, mailGID int, login, internal string) {
	tb.Helper()
	if os.Geteuid() != 0 {
		u, err := user.Current()
		if err != nil {
			tb.Fatal(err)
		}
		return os.Getuid(), os.Getgid(), u.Username, u.Username
	}
	for _, name := range []string{"dovenull", "dovecot"} {
		if _, err := user.Lookup(name); err != nil {
			tb.Fatalf("user %s missing (created by the dovecot-core package): %v", name, err)
		}
	}
	n, err := user.Lookup("nobody")
	if err != nil {
		tb.Fatal(err)
	}
	uid, _ := strconv.Atoi(n.Uid)
	gid, _ := strconv.Atoi(n.Gid)
	return uid, gid, "dovenull", "dovecot"
}

func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// dovecotCert writes the test CA's server certificate and key where Dovecot reads them.
func dovecotCert(tb testing.TB, dir string) (certFile, keyFile, caFile string) {
	tb.Helper()
	_, caFile, certFile, keyFile = testCAFiles(tb, dir)
	return certFile, keyFile, caFile
}

func (d *dovecot) config() Config { return testConfig(d.addr) }

// deliver writes messages straight into the INBOX maildir's new/, as a local delivery agent
// does: much faster than thousands of APPENDs, and Dovecot assigns UIDs when it next looks.
func (d *dovecot) deliver(tb testing.TB, msgs [][]byte) {
	tb.Helper()
	uid, gid, _, _ := dovecotUsers(tb)
	root := filepath.Join(d.dir, "mail", testUser, "Maildir")
	for _, sub := range []string{"", "cur", "new", "tmp"} {
		p := filepath.Join(root, sub)
		if err := os.MkdirAll(p, 0o700); err != nil {
			tb.Fatal(err)
		}
		os.Chown(p, uid, gid)
	}
	os.Chown(filepath.Dir(root), uid, gid)
	for i, m := range msgs {
		p := filepath.Join(root, "new", fmt.Sprintf("%d.M%06dP%d.vigil-test,S=%d", time.Now().Unix(), i, os.Getpid(), len(m)))
		if err := os.WriteFile(p, m, 0o600); err != nil {
			tb.Fatal(err)
		}
		os.Chown(p, uid, gid)
	}
}

// appendAll seeds a folder over IMAP, pipelined (Dovecot announces LITERAL+).
func (p *peek) appendAll(folder string, msgs [][]byte, flags ...imap.Flag) {
	p.t.Helper()
	for len(msgs) > 0 {
		chunk := msgs[:min(200, len(msgs))]
		msgs = msgs[len(chunk):]
		var cmds []interface {
			Wait() (*imap.AppendData, error)
		}
		for _, m := range chunk {
			cmd := p.c.Append(folder, int64(len(m)), &imap.AppendOptions{Flags: flags})
			if _, err := cmd.Write(m); err != nil {
				p.t.Fatal(err)
			}
			if err := cmd.Close(); err != nil {
				p.t.Fatal(err)
			}
			cmds = append(cmds, cmd)
		}
		for _, c := range cmds {
			if _, err := c.Wait(); err != nil {
				p.t.Fatalf("APPEND to %s: %v", folder, err)
			}
		}
	}
}

func (p *peek) status(folder string) *imap.StatusData {
	p.t.Helper()
	s, err := p.c.Status(folder, &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true}).Wait()
	if err != nil {
		p.t.Fatalf("STATUS %s: %v", folder, err)
	}
	return s
}

// sizes lists RFC822.SIZE per message, without downloading anything.
func (p *peek) sizes(folder string) []int64 {
	p.t.Helper()
	sel, err := p.c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		p.t.Fatalf("select %s: %v", folder, err)
	}
	if sel.NumMessages == 0 {
		return nil
	}
	bufs, err := p.c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{RFC822Size: true}).Collect()
	if err != nil {
		p.t.Fatal(err)
	}
	var out []int64
	for _, b := range bufs {
		out = append(out, b.RFC822Size)
	}
	return out
}

func (p *peek) mailbox(op string, name string) {
	p.t.Helper()
	var err error
	switch op {
	case "create":
		err = p.c.Create(name, nil).Wait()
	case "delete":
		err = p.c.Delete(name).Wait()
	}
	if err != nil {
		p.t.Fatalf("%s %s: %v", op, name, err)
	}
}

// TestDovecotBacklog drains a 5,000-message backlog (every corpus e-mail plus generated
// reports and spam) until empty: every message reaches the sink exactly once, and the archive
// and invalid folders hold exactly what they should.
func TestDovecotBacklog(t *testing.T) {
	t.Parallel()
	d := startDovecot(t, dovecotOpts{})
	look := newPeek(t, d.config())
	msgs, wantArchive, wantInvalid := backlog(t, 5000)
	start := time.Now()
	d.deliver(t, msgs)
	t.Logf("delivered %d messages to the maildir in %s", len(msgs), time.Since(start).Round(time.Millisecond))

	sink := newRecSink(t)
	var state State
	var polls []Result
	for {
		res, err := (&Poller{}).Poll(context.Background(), d.config(), state, sink.sink)
		if err != nil {
			t.Fatalf("poll %d: %v", len(polls)+1, err)
		}
		polls = append(polls, res)
		state = res.State
		if res.Seen == 0 || len(polls) > 3 {
			break
		}
	}
	first := polls[0]
	t.Logf("first poll: %d messages in %s (%.0f/s)", first.Seen, first.Duration.Round(time.Millisecond), float64(first.Seen)/first.Duration.Seconds())
	if len(polls) != 2 || first.Seen != len(msgs) || first.Retry != 0 || first.Saved+first.Duplicates != total(wantArchive) || first.Invalid != total(wantInvalid) {
		t.Errorf("polls %+v; want one poll of %d (%d archive, %d invalid), then an empty one", polls, len(msgs), total(wantArchive), total(wantInvalid))
	}
	for k, n := range wantArchive {
		if got := sink.count(k); got != n {
			t.Errorf("message %s reached the sink %d times, want %d", k, got, n)
		}
	}
	if n := *look.status("INBOX").NumMessages; n != 0 {
		t.Errorf("INBOX still holds %d", n)
	}
	sameKeys(t, "Archive", keysOf(look.folder("Archive")), wantArchive)
	sameKeys(t, "Invalid", keysOf(look.folder("Invalid")), wantInvalid)
}

// backlog is n messages: every corpus e-mail, then generated reports with one spam in 50.
func backlog(t testing.TB, n int) (msgs [][]byte, archive, invalid map[string]int) {
	archive, invalid = map[string]int{}, map[string]int{}
	for _, c := range corpusMails(t) {
		msgs = append(msgs, c.data)
		if c.expectInvalid() {
			invalid[key(c.data)]++
		} else {
			archive[key(c.data)]++
		}
	}
	for i := 0; len(msgs) < n; i++ {
		if i%50 == 49 {
			b := spamMail(i)
			msgs = append(msgs, b)
			invalid[key(b)]++
			continue
		}
		b := reportMail(i, 0)
		msgs = append(msgs, b)
		archive[key(b)]++
	}
	return msgs, archive, invalid
}

// TestDovecotCut: the connection dies in the middle of a literal (closed, or silent without a
// FIN) on a real server: the poll fails within the timeout, the first batch stays archived,
// nothing else moved or flagged, and a direct poll finishes the job with no loss or copy.
func TestDovecotCut(t *testing.T) {
	t.Parallel()
	d := startDovecot(t, dovecotOpts{})
	for _, stall := range []bool{false, true} {
		name := map[bool]string{false: "closed", true: "silent"}[stall]
		t.Run(name, func(t *testing.T) {
			cfg := d.config()
			cfg.Folder = "Cut-" + name
			cfg.ArchiveFolder, cfg.InvalidFolder = cfg.Folder+"-archive", cfg.Folder+"-invalid"
			look := newPeek(t, cfg)
			look.mailbox("create", cfg.Folder)
			var msgs [][]byte
			want := map[string]int{}
			for i := range 300 {
				b := reportMail(i, 8<<10)
				msgs = append(msgs, b)
				want[key(b)] = 1
			}
			look.appendAll(cfg.Folder, msgs)
			p := newProxy(t, d.addr, &cutRule{marker: []byte("BODY[] {"), skip: 80, after: 3000, stall: stall})
			cut := viaProxy(cfg, p)
			cut.BatchSize, cut.OpTimeout = 50, 2*time.Second
			sink := newRecSink(t)
			start := time.Now()
			res, err := (&Poller{}).Poll(context.Background(), cut, State{}, sink.sink)
			took := time.Since(start)
			t.Logf("error after %s: %v", took.Round(time.Millisecond), err)
			if err == nil || took > cut.OpTimeout+3*time.Second {
				t.Fatalf("Poll through the cut: %v after %s; want an error within the %s timeout", err, took, cut.OpTimeout)
			}
			if stall && !errors.Is(err, ErrTimeout) {
				t.Errorf("error %v does not wrap ErrTimeout", err)
			}
			// The first batch's MOVE went out before the second batch's FETCH; Dovecot may
			// confirm it before or after streaming that batch, so the cut may come first.
			if (res.State.LastUID != 50 && res.State.LastUID != 0) || res.Saved != 80 {
				t.Errorf("state %+v after %d saved; want LastUID 50 (first batch confirmed) or 0, 80 handed over", res.State, res.Saved)
			}
			if n := *look.status(cfg.ArchiveFolder).NumMessages; n != 50 {
				t.Errorf("archive holds %d, want the first batch's 50", n)
			}
			for _, m := range look.folder(cfg.Folder) {
				if m.has(imap.FlagSeen) || m.has(imap.FlagDeleted) {
					t.Errorf("UID %d has flags %v after the cut", m.UID, m.Flags)
				}
			}
			cfg.BatchSize = 50
			res2, err := (&Poller{}).Poll(context.Background(), cfg, res.State, sink.sink)
			if err != nil || res2.Seen != 250 || res2.Duplicates != 30 || res2.Saved != 220 {
				t.Errorf("direct poll: %+v, %v; want 250 read, the 30 handed over before the cut as duplicates", res2, err)
			}
			sameKeys(t, "archive", keysOf(look.folder(cfg.ArchiveFolder)), want)
		})
	}
}

// TestDovecotTooLarge: a 60 MB message is filed as invalid by its size, without download.
func TestDovecotTooLarge(t *testing.T) {
	t.Parallel()
	d := startDovecot(t, dovecotOpts{})
	look := newPeek(t, d.config())
	big := reportMail(2, 60<<20)
	look.appendAll("INBOX", [][]byte{reportMail(1, 0), big, reportMail(3, 0)})
	p := newProxy(t, d.addr, nil)
	cfg := viaProxy(d.config(), p) // default MaxMessageBytes, 50 MiB
	res, err := (&Poller{}).Poll(context.Background(), cfg, State{}, newRecSink(t).sink)
	if err != nil {
		t.Fatal(err)
	}
	if res.TooLarge != 1 || res.Saved != 2 || len(res.Problems) != 1 || res.Problems[0].UID != 2 {
		t.Errorf("result %+v; want UID 2 too large, 2 saved", res)
	}
	if got := p.bytesToClient(); got > 1<<20 {
		t.Errorf("%d bytes downloaded; the 60 MB message must not be", got)
	}
	if s := look.sizes("Invalid"); len(s) != 1 || s[0] < 60<<20 {
		t.Errorf("Invalid holds sizes %v, want the 60 MB message", s)
	}
}

// TestDovecotCapabilities: with MOVE and UIDPLUS hidden by imap_capability, the poller falls
// back as documented, and mail another client flagged \Deleted survives.
func TestDovecotCapabilities(t *testing.T) {
	t.Parallel()
	base := "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ NAMESPACE UNSELECT CHILDREN"
	cases := []struct {
		name, caps string
		want       []string
		forbidden  []string
		leftFlag   bool
	}{
		{"dovecot default", "", []string{"UID MOVE"}, []string{"UID COPY", "EXPUNGE", "UID EXPUNGE"}, false},
		{"uidplus", base + " UIDPLUS", []string{"UID COPY", "UID STORE", "UID EXPUNGE"}, []string{"UID MOVE", "EXPUNGE"}, false},
		{"bare", base, []string{"UID COPY", "UID STORE"}, []string{"UID MOVE", "EXPUNGE", "UID EXPUNGE"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := startDovecot(t, dovecotOpts{capability: tc.caps})
			look := newPeek(t, d.config())
			look.appendAll("INBOX", [][]byte{spamMail(0)}, imap.FlagDeleted)
			var msgs [][]byte
			for i := range 6 {
				msgs = append(msgs, reportMail(i, 0))
			}
			msgs = append(msgs, spamMail(1))
			look.appendAll("INBOX", msgs)
			p := newProxy(t, d.addr, nil)
			cfg := viaProxy(d.config(), p)
			cfg.BatchSize = 3
			res, err := (&Poller{}).Poll(context.Background(), cfg, State{}, newRecSink(t).sink)
			if err != nil || res.Saved != 6 || res.Invalid != 1 || res.State.LastUID != 8 {
				t.Fatalf("Poll: %+v, %v", res, err)
			}
			names := p.commandNames()
			for _, w := range tc.want {
				if !containsStr(names, w) {
					t.Errorf("no %s sent; commands %v", w, names)
				}
			}
			for _, f := range tc.forbidden {
				if containsStr(names, f) {
					t.Errorf("%s sent; commands %v", f, names)
				}
			}
			inbox := look.folder("INBOX")
			survived := false
			for _, m := range inbox {
				switch {
				case m.UID == 1:
					survived = m.has(imap.FlagDeleted)
				case !tc.leftFlag || !m.has(imap.FlagSeen) || !m.has(imap.FlagDeleted):
					t.Errorf("UID %d left in INBOX with flags %v", m.UID, m.Flags)
				}
			}
			if !survived {
				t.Error("another client's \\Deleted message did not survive")
			}
			if a, i := *look.status("Archive").NumMessages, *look.status("Invalid").NumMessages; a != 6 || i != 1 {
				t.Errorf("Archive %d, Invalid %d; want 6 and 1", a, i)
			}
			again, err := (&Poller{}).Poll(context.Background(), cfg, State{UIDValidity: res.State.UIDValidity}, newRecSink(t).sink)
			if err != nil || again.Seen != 0 {
				t.Errorf("poll from LastUID 0: %+v, %v; want nothing read again", again, err)
			}
		})
	}
}

func containsStr(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// TestDovecotHighestUID: under policy seen, a handled message marked unread again is not read
// twice even when UIDNEXT has moved past it (newer mail deleted): "UID n:*" then matches the
// highest UID, which is below n (RFC 9051 6.4.4), and the poller must filter it out.
func TestDovecotHighestUID(t *testing.T) {
	t.Parallel()
	d := startDovecot(t, dovecotOpts{})
	look := newPeek(t, d.config())
	look.appendAll("INBOX", [][]byte{reportMail(1, 0), reportMail(2, 0), reportMail(3, 0)})
	cfg := d.config()
	cfg.Policy = PolicySeen
	sink := newRecSink(t)
	res, err := (&Poller{}).Poll(context.Background(), cfg, State{}, sink.sink)
	if err != nil || res.Saved != 3 {
		t.Fatalf("first poll: %+v, %v", res, err)
	}
	look.store("INBOX", 3, imap.StoreFlagsDel, imap.FlagSeen)
	look.appendAll("INBOX", [][]byte{spamMail(1)})
	look.remove("INBOX", 4)
	if s := look.status("INBOX"); s.UIDNext <= 4 {
		t.Fatalf("UIDNEXT %d, want past 4", s.UIDNext)
	}
	res2, err := (&Poller{}).Poll(context.Background(), cfg, res.State, sink.sink)
	if err != nil || res2.Seen != 0 || len(sink.uids) != 3 {
		t.Errorf("second poll: %+v, %v, sink saw %v; want nothing read again", res2, err, sink.uids)
	}
}

// TestDovecotUIDValidity: a folder deleted and re-created gets a new UIDVALIDITY and UIDs from
// 1 again; the poller reads it from the start (a non-INBOX folder, as users configure).
func TestDovecotUIDValidity(t *testing.T) {
	t.Parallel()
	d := startDovecot(t, dovecotOpts{})
	cfg := d.config()
	cfg.Folder = "DMARC"
	look := newPeek(t, cfg)
	look.mailbox("create", "DMARC")
	look.appendAll("DMARC", [][]byte{reportMail(1, 0), reportMail(2, 0), reportMail(3, 0)})
	sink := newRecSink(t)
	res, err := (&Poller{}).Poll(context.Background(), cfg, State{}, sink.sink)
	if err != nil || res.State.LastUID != 3 {
		t.Fatalf("first poll: %+v, %v", res, err)
	}
	look.mailbox("delete", "DMARC")
	time.Sleep(1100 * time.Millisecond) // Dovecot derives UIDVALIDITY from the clock
	look.mailbox("create", "DMARC")
	look.appendAll("DMARC", [][]byte{reportMail(10, 0), reportMail(1, 0)})
	res2, err := (&Poller{}).Poll(context.Background(), cfg, res.State, sink.sink)
	if err != nil || res2.State.UIDValidity == res.State.UIDValidity || res2.Seen != 2 || res2.Saved != 1 || res2.Duplicates != 1 || res2.State.LastUID != 2 {
		t.Errorf("after re-creation: %+v, %v (old %+v)", res2, err, res.State)
	}
}

// TestDovecotTLS: implicit TLS and STARTTLS against Dovecot with a certificate from a private
// CA, trusted through CAFile; without it the connection is refused. (Dovecot counts loopback
// connections as secure and allows plain LOGIN on them, so a relay checks instead that after
// STARTTLS nothing crosses in clear.)
func TestDovecotTLS(t *testing.T) {
	t.Parallel()
	d := startDovecot(t, dovecotOpts{tls: true})
	for _, tc := range []struct {
		name, addr string
		mode       TLSMode
		ca         string
		wantErr    string
	}{
		{"implicit", d.tlsAddr, TLSImplicit, d.caFile, ""},
		{"starttls", d.addr, TLSStartTLS, d.caFile, ""},
		{"implicit without the CA", d.tlsAddr, TLSImplicit, "", "certificate"},
		{"starttls without the CA", d.addr, TLSStartTLS, "", "certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(tc.addr)
			cfg.TLS, cfg.AllowPlain, cfg.CAFile = tc.mode, false, tc.ca
			_, err := (&Poller{}).Poll(context.Background(), cfg, State{}, newRecSink(t).sink)
			if (tc.wantErr == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Poll: %v; want error %q", err, tc.wantErr)
			}
		})
	}
	p := newProxy(t, d.addr, nil)
	cfg := viaProxy(testConfig(d.addr), p)
	cfg.TLS, cfg.AllowPlain, cfg.CAFile = TLSStartTLS, false, d.caFile
	if _, err := (&Poller{}).Poll(context.Background(), cfg, State{}, newRecSink(t).sink); err != nil {
		t.Fatal(err)
	}
	if names, sent := p.commandNames(), p.commandLines(); !containsStr(names, "STARTTLS") || len(names) != 1 || strings.Contains(sent, testPass) {
		t.Errorf("commands in clear %v; want STARTTLS alone, and the password never in clear", names)
	}
}

// BenchmarkDovecotBacklog drains a 5,000-message backlog from Dovecot with a sink that does
// nothing, reporting messages/s: the poller's own ceiling, to compare with the pipeline's.
// rtt adds latency through a relay, as a mail provider across the internet would: a batch
// costs about one round trip (its body FETCH; its MOVE is confirmed while the next batch
// streams, and sizes come 1,000 at a time). Between iterations the archive is moved back into
// INBOX (new UIDs; the state carries on).
func BenchmarkDovecotBacklog(b *testing.B) {
	for _, bc := range []struct {
		batch int
		rtt   time.Duration
	}{{100, 0}, {500, 0}, {100, 20 * time.Millisecond}} {
		b.Run(fmt.Sprintf("batch=%d/rtt=%s", bc.batch, bc.rtt), func(b *testing.B) {
			d := startDovecot(b, dovecotOpts{})
			look := newPeek(b, d.config())
			msgs, _, _ := backlog(b, 5000)
			d.deliver(b, msgs)
			cfg := d.config()
			if bc.rtt > 0 {
				p := newProxy(b, d.addr, nil)
				p.delay = bc.rtt / 2
				cfg = viaProxy(cfg, p)
			}
			cfg.BatchSize = bc.batch
			noop := func(context.Context, Message) (Disposition, error) { return Archive, nil }
			var state State
			var n int
			var polling time.Duration
			for b.Loop() {
				res, err := (&Poller{}).Poll(context.Background(), cfg, state, noop)
				if err != nil || res.Seen != len(msgs) {
					b.Fatalf("poll: %d of %d, %v", res.Seen, len(msgs), err)
				}
				state, n, polling = res.State, n+res.Seen, polling+res.Duration
				b.StopTimer()
				look.moveAll("Archive", "INBOX")
				b.StartTimer()
			}
			b.ReportMetric(float64(n)/polling.Seconds(), "msgs/s")
		})
	}
}

func (p *peek) moveAll(from, to string) {
	p.t.Helper()
	if _, err := p.c.Select(from, nil).Wait(); err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.c.Move(imap.SeqSet{{Start: 1, Stop: 0}}, to).Wait(); err != nil {
		p.t.Fatal(err)
	}
	if err := p.c.Unselect().Wait(); err != nil {
		p.t.Fatal(err)
	}
}
