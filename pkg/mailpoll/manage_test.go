package mailpoll

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/ingest"
	"github.com/vigilhq/vigil/pkg/secretbox"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// sealed reads a mailbox's stored password column as it is on disk.
func sealed(t *testing.T, st *store.Store, id int64) []byte {
	t.Helper()
	var b []byte
	if err := st.DB().Raw("SELECT password_sealed FROM mailboxes WHERE id = ?", id).Row().Scan(&b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestManage(t *testing.T) {
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		ctx := context.Background()
		st := b.Store(t)
		keys := testKeys(t)
		tokens := t.TempDir()
		svc := newServiceWith(t, Deps{Store: st, Keys: keys, TokenDir: tokens})
		const pw = "the-mailbox-password-7341"

		created, err := svc.Create(ctx, Input{Name: ptr(" reports "), Host: ptr("imap.example.org"), Username: ptr("dmarc@example.org"),
			Password: ptr(pw), Folder: ptr("DMARC"), PollInterval: ptr("30m")})
		if err != nil {
			t.Fatal(err)
		}
		if created.Name != "reports" || created.Port != 993 || created.TLS != "tls" || created.Policy != "move" || !created.Enabled ||
			created.Auth != "password" || !created.Configured || created.PollInterval != "30m0s" || created.Folder != "DMARC" ||
			created.ArchiveFolder != "Archive" || created.Source != SourceAPI {
			t.Fatalf("created %+v", created)
		}
		// The password is sealed at rest and never answered.
		raw := sealed(t, st, created.ID)
		if len(raw) == 0 || bytes.Contains(raw, []byte(pw)) {
			t.Fatalf("stored password column %q", raw)
		}
		if got, err := keys.Open(raw, passwordPurpose); err != nil || string(got) != pw {
			t.Fatalf("open the stored password: %q %v", got, err)
		}
		js, _ := json.Marshal(created)
		if bytes.Contains(js, []byte(pw)) || bytes.Contains(js, raw) {
			t.Fatalf("status JSON carries the password: %s", js)
		}
		cfg, err := svc.config(mustRow(t, svc, created.ID))
		if err != nil || cfg.Password != pw || cfg.Folder != "DMARC" || cfg.MaxMessageBytes != 50<<20 {
			t.Fatalf("poll config %v, %v", cfg, err)
		}

		// Rejected settings name their fields; nothing is stored.
		bad := []struct {
			name string
			in   Input
			want string
		}{
			{"missing", Input{Name: ptr("x")}, "host: required"},
			{"no auth", Input{Name: ptr("x"), Host: ptr("h"), Username: ptr("u")}, "password: required"},
			{"env name", Input{Name: ptr("ENV"), Host: ptr("h"), Username: ptr("u"), Password: ptr("p")}, "name"},
			{"plain", Input{Name: ptr("x"), Host: ptr("h"), Username: ptr("u"), Password: ptr("p"), TLS: ptr("none")}, "allow_plain"},
			{"port", Input{Name: ptr("x"), Host: ptr("h"), Username: ptr("u"), Password: ptr("p"), Port: ptr(70000)}, "port"},
			{"host url", Input{Name: ptr("x"), Host: ptr("imaps://h:993"), Username: ptr("u"), Password: ptr("p")}, "host"},
			{"two auths", Input{Name: ptr("x"), Host: ptr("h"), Username: ptr("u"), Password: ptr("p"), OAuth2TokenFile: ptr("t")}, "exactly one"},
			{"token path", Input{Name: ptr("x"), Host: ptr("h"), Username: ptr("u"), OAuth2TokenFile: ptr("../../etc/shadow")}, "not a path"},
			{"interval", Input{Name: ptr("x"), Host: ptr("h"), Username: ptr("u"), Password: ptr("p"), PollInterval: ptr("10s")}, "poll_interval"},
			{"ca", Input{Name: ptr("x"), Host: ptr("h"), Username: ptr("u"), Password: ptr("p"), CAPEM: ptr("not pem")}, "ca_pem"},
			{"same folder", Input{Name: ptr("x"), Host: ptr("h"), Username: ptr("u"), Password: ptr("p"), ArchiveFolder: ptr("INBOX")}, "archive_folder"},
			{"newline", Input{Name: ptr("x\ny"), Host: ptr("h"), Username: ptr("u"), Password: ptr("p")}, "name"},
		}
		for _, c := range bad {
			if _, err := svc.Create(ctx, c.in); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: %v, want ErrInvalid naming %q", c.name, err, c.want)
			}
		}
		if _, err := svc.Create(ctx, Input{Name: ptr("reports"), Host: ptr("h"), Username: ptr("u"), Password: ptr("p")}); !errors.Is(err, ErrNameTaken) {
			t.Fatalf("same name again: %v", err)
		}
		if list, total, err := svc.List(ctx, store.Page{Number: 1, Size: 50}); err != nil || total != 1 || len(list) != 1 || list[0].ID != created.ID {
			t.Fatalf("list %+v %d %v", list, total, err)
		}

		// A PATCH changes only what it names; a new folder forgets the UIDs.
		if err := st.DB().Exec("UPDATE mailboxes SET uid_validity = 9, last_uid = 7 WHERE id = ?", created.ID).Error; err != nil {
			t.Fatal(err)
		}
		up, err := svc.Update(ctx, created.ID, Input{Enabled: ptr(false), BatchSize: ptr(50)})
		if err != nil || up.Enabled || up.BatchSize != 50 || up.LastUID != 7 || !bytes.Equal(sealed(t, st, created.ID), raw) {
			t.Fatalf("patch enabled: %+v %v", up, err)
		}
		up, err = svc.Update(ctx, created.ID, Input{Folder: ptr("Reports")})
		if err != nil || up.Folder != "Reports" || up.LastUID != 0 || up.UIDValidity != 0 || up.BatchSize != 50 {
			t.Fatalf("patch folder: %+v %v", up, err)
		}
		if _, err := svc.Update(ctx, created.ID, Input{TLS: ptr("bogus")}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("patch tls bogus: %v", err)
		}
		// A token file replaces the password, and the other way round.
		if err := os.WriteFile(filepath.Join(tokens, "m365.token"), []byte("tok"), 0o600); err != nil {
			t.Fatal(err)
		}
		up, err = svc.Update(ctx, created.ID, Input{OAuth2TokenFile: ptr("m365.token")})
		if err != nil || up.Auth != "xoauth2" || sealed(t, st, created.ID) != nil {
			t.Fatalf("patch token: %+v %v", up, err)
		}
		cfg, _ = svc.config(mustRow(t, svc, created.ID))
		if cfg.OAuth2TokenFile != filepath.Join(tokens, "m365.token") || cfg.Password != "" {
			t.Fatalf("token config %v", cfg)
		}
		up, err = svc.Update(ctx, created.ID, Input{Password: ptr("new-password")})
		if err != nil || up.Auth != "password" || up.OAuth2TokenFile != "" {
			t.Fatalf("patch password: %+v %v", up, err)
		}

		// Another process without the key, or with another one, can say why it cannot poll.
		for name, other := range map[string]*Service{
			"no key":    newServiceWith(t, Deps{Store: st}),
			"other key": newServiceWith(t, Deps{Store: st, Keys: testKeys(t)}),
		} {
			s, err := other.Status(ctx, created.ID)
			if err != nil || s.Configured || !strings.Contains(s.ConfigError, "VIGIL_ENCRYPTION_KEY") {
				t.Errorf("%s: status %+v, %v", name, s, err)
			}
		}
		if _, err := newServiceWith(t, Deps{Store: st}).Create(ctx, Input{Name: ptr("y"), Host: ptr("h"), Username: ptr("u"), Password: ptr("p")}); !errors.Is(err, ErrNoKey) {
			t.Fatalf("create without a key: %v", err)
		}

		// Delete removes the row; the env mailbox is the environment's.
		if err := svc.Delete(ctx, created.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Status(ctx, created.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("status after delete: %v", err)
		}
		if err := svc.Delete(ctx, created.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("delete again: %v", err)
		}
		if _, err := svc.Update(ctx, created.ID, Input{Enabled: ptr(true)}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("patch deleted: %v", err)
		}
		envCfg := newMemServer(t).cfg
		envSvc := newService(t, st, nil, &envCfg, nil)
		envID, _ := envSvc.EnvMailboxID(ctx)
		if _, err := envSvc.Update(ctx, envID, Input{Folder: ptr("x")}); !errors.Is(err, ErrEnvMailbox) {
			t.Fatalf("patch env: %v", err)
		}
		if err := envSvc.Delete(ctx, envID); !errors.Is(err, ErrEnvMailbox) {
			t.Fatalf("delete env: %v", err)
		}
		if s, err := envSvc.Status(ctx, envID); err != nil || s.TLS != "none" || !s.AllowPlain || s.Auth != "password" {
			t.Fatalf("env status %+v %v", s, err)
		}
	})
}

func mustRow(t *testing.T, s *Service, id int64) row {
	t.Helper()
	r, err := s.get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// An API mailbox polls like the env one, with its password opened from the database (its
// three messages stored together); the running poll shows its progress; after a key
// rotation the password is sealed again with the new key at the next poll.
func TestAPIMailboxPoll(t *testing.T) {
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		ctx := context.Background()
		srv := newMemServer(t)
		reports := reportMails(t, 3)
		for _, r := range reports {
			srv.append(t, r)
		}
		st := b.Store(t)
		oldRaw, newRaw := rawKey(t), rawKey(t)
		oldKeys, _ := secretbox.New(oldRaw)
		// The test server listens on loopback, which the outbound policy refuses unless allowed.
		svc := newServiceWith(t, Deps{Store: st, Ingest: newIngest(st), Keys: oldKeys, Outbound: loopbackAllowed})
		c := srv.cfg
		m, err := svc.Create(ctx, Input{Name: ptr("mem"), Host: ptr(c.Host), Port: ptr(c.Port), Username: ptr(c.Username),
			Password: ptr(c.Password), TLS: ptr("none"), AllowPlain: ptr(true)})
		if err != nil {
			t.Fatal(err)
		}

		rotated, _ := secretbox.New(newRaw, oldRaw)
		svc2 := newServiceWith(t, Deps{Store: st, Ingest: newIngest(st), Keys: rotated, Outbound: loopbackAllowed})
		var during []MailboxStatus
		accept := svc2.accept
		svc2.accept = func(ctx context.Context, f []ingest.File) ([]ingest.Result, error) {
			s, err := svc2.Status(ctx, m.ID)
			if err != nil {
				return nil, err
			}
			during = append(during, s)
			return accept(ctx, f)
		}
		res, err := svc2.Poll(ctx, m.ID)
		if err != nil || res.Saved != 3 {
			t.Fatalf("poll %+v %v", res, err)
		}
		if len(during) != 1 || !during[0].Polling || during[0].Progress == nil || during[0].Progress.Total != 3 {
			t.Fatalf("status while polling: %+v", during)
		}
		after, _ := svc2.Status(ctx, m.ID)
		if after.Polling || after.Progress != nil || after.LastResult == nil || after.LastResult.Saved != 3 || after.LastUID != 3 {
			t.Fatalf("status after the poll: %+v", after)
		}
		if rotated.NeedsReseal(sealed(t, st, m.ID)) {
			t.Fatal("the password is still sealed with the old key after a poll")
		}
		if _, err := oldKeys.Open(sealed(t, st, m.ID), passwordPurpose); !errors.Is(err, secretbox.ErrUnknownKey) {
			t.Fatalf("old key opening the re-sealed password: %v", err)
		}
		if n := len(ingests(t, st)); n != 3 {
			t.Fatalf("%d ingests, want 3", n)
		}
	})
}

func rawKey(t *testing.T) []byte {
	t.Helper()
	s, err := secretbox.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := secretbox.ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Issue 18: a PATCH that points a mailbox at another server, changes how it is reached or whose
// account it reads needs the password again; without it the change is refused, nothing is
// stored, and the next poll goes where it went before: a listener standing for an admin's own
// server receives nothing. With the password the change is made (and the listener is reached).
func TestMovingAMailboxNeedsItsPassword(t *testing.T) {
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		ctx := context.Background()
		srv := newMemServer(t)
		st := b.Store(t)
		svc := newServiceWith(t, Deps{Store: st, Ingest: newIngest(st), Keys: testKeys(t), Outbound: loopbackAllowed})
		c := srv.cfg
		m, err := svc.Create(ctx, Input{Name: ptr("mem"), Host: ptr(c.Host), Port: ptr(c.Port), Username: ptr(c.Username),
			Password: ptr(c.Password), TLS: ptr("none"), AllowPlain: ptr(true)})
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		var reached atomic.Int64
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				reached.Add(1)
				conn.Close()
			}
		}()
		port := ln.Addr().(*net.TCPAddr).Port
		for _, p := range []struct {
			field string
			in    Input
		}{
			{"port", Input{Port: ptr(port)}},
			{"host", Input{Host: ptr("localhost"), Port: ptr(port)}},
			{"tls", Input{TLS: ptr("starttls")}},
			{"allow_plain", Input{AllowPlain: ptr(false), TLS: ptr("tls")}},
			{"ca_pem", Input{CAPEM: ptr(testCAPEM(t)), TLS: ptr("tls")}},
			{"username", Input{Username: ptr("someone-else@example.org")}},
			{"port with an empty password", Input{Port: ptr(port), Password: ptr("")}},
		} {
			_, err := svc.Update(ctx, m.ID, p.in)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "password: required again") {
				t.Errorf("%s without the password: %v, want ErrInvalid naming the password", p.field, err)
			}
		}
		if got, _ := svc.Status(ctx, m.ID); got.Port != c.Port || got.Host != c.Host || got.Username != c.Username || got.TLS != "none" {
			t.Fatalf("refused changes stored: %+v", got)
		}
		if _, err := svc.Poll(ctx, m.ID); err != nil {
			t.Fatalf("poll of the unchanged mailbox: %v", err)
		}
		if n := reached.Load(); n != 0 {
			t.Fatalf("the other server got %d connections", n)
		}
		// Changes that send the password nowhere new need no password.
		if _, err := svc.Update(ctx, m.ID, Input{Folder: ptr("Reports"), BatchSize: ptr(20), Enabled: ptr(true)}); err != nil {
			t.Fatalf("folder change: %v", err)
		}
		// With the password, the move is made and the poll goes there.
		if _, err := svc.Update(ctx, m.ID, Input{Port: ptr(port), Password: ptr("a-password-for-the-new-server")}); err != nil {
			t.Fatalf("port change with the password: %v", err)
		}
		svc.Poll(ctx, m.ID)
		if reached.Load() == 0 {
			t.Fatal("the changed mailbox did not reach its new server")
		}
	})
}

// testCAPEM is a self-signed certificate in PEM, as a mailbox's ca_pem takes.
func testCAPEM(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true,
		BasicConstraintsValid: true, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}
