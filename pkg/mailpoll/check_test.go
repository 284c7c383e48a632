package mailpoll

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// TestMailboxTest: a test logs in and examines the folder against go-imap's in-memory server
// and says which step failed otherwise (policy, unreachable, wrong password, missing folder,
// nothing stored to log in with); it never polls: the mail stays where it is, unread, and the
// mailbox's saved state does not change.
func TestMailboxTest(t *testing.T) {
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		ctx := context.Background()
		st := b.Store(t)
		srv := newMemServer(t)
		for _, m := range reportMails(t, 2) {
			srv.append(t, m)
		}
		keys := testKeys(t)
		svc := newServiceWith(t, Deps{Store: st, Ingest: newIngest(st), Keys: keys, Outbound: loopbackAllowed})
		c := srv.cfg
		create := func(name string, in Input) int64 {
			t.Helper()
			in.Name, in.Host, in.Port, in.Username = ptr(name), ptr(c.Host), ptr(c.Port), ptr(c.Username)
			in.TLS, in.AllowPlain = ptr("none"), ptr(true)
			m, err := svc.Create(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			return m.ID
		}
		good := create("good", Input{Password: ptr(c.Password)})
		badPass := create("badpass", Input{Password: ptr("wrong-password")})
		badFolder := create("badfolder", Input{Password: ptr(c.Password), Folder: ptr("NoSuchFolder")})
		// A port nothing listens on: take one and close it.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		ln.Close()
		closed, _ := strconv.Atoi(port)
		down, err := svc.Create(ctx, Input{Name: ptr("down"), Host: ptr(c.Host), Port: ptr(closed), Username: ptr(c.Username),
			Password: ptr(c.Password), TLS: ptr("none"), AllowPlain: ptr(true)})
		if err != nil {
			t.Fatal(err)
		}
		tlsOnPlain, err := svc.Create(ctx, Input{Name: ptr("tls"), Host: ptr(c.Host), Port: ptr(c.Port), Username: ptr(c.Username),
			Password: ptr(c.Password), TLS: ptr("tls")})
		if err != nil {
			t.Fatal(err)
		}
		noKeys := newServiceWith(t, Deps{Store: st, Ingest: newIngest(st), Outbound: loopbackAllowed}) // cannot open the password
		strict := newServiceWith(t, Deps{Store: st, Ingest: newIngest(st), Keys: keys})                // loopback refused

		cases := []struct {
			name   string
			svc    *Service
			id     int64
			ok     bool
			stage  string
			reason string
		}{
			{"good", svc, good, true, "", ""},
			{"wrong password", svc, badPass, false, StageLogin, "LOGIN"},
			{"missing folder", svc, badFolder, false, StageFolder, "NoSuchFolder"},
			{"nothing listening", svc, down.ID, false, StageConnect, "connect"},
			{"TLS to a plain-text server", svc, tlsOnPlain.ID, false, StageTLS, "TLS"},
			{"outbound policy", strict, good, false, StageConnect, "loopback"},
			{"password not decryptable here", noKeys, good, false, StageConfig, "VIGIL_ENCRYPTION_KEY"},
		}
		for _, tc := range cases {
			before, _ := tc.svc.Status(ctx, tc.id)
			got, err := tc.svc.Test(ctx, tc.id)
			if err != nil {
				t.Errorf("%s: Test: %v", tc.name, err)
				continue
			}
			if got.OK != tc.ok || got.Stage != tc.stage || !strings.Contains(got.Error, tc.reason) {
				t.Errorf("%s: got ok=%v stage=%q error=%q, want ok=%v stage=%q error containing %q", tc.name, got.OK, got.Stage, got.Error, tc.ok, tc.stage, tc.reason)
			}
			if tc.ok && (got.Messages == nil || *got.Messages != 2 || got.Acknowledge != "move" || got.Folder != "INBOX") {
				t.Errorf("%s: got %+v, want 2 messages in INBOX, acknowledged by move", tc.name, got)
			}
			after, _ := tc.svc.Status(ctx, tc.id)
			if after.LastPollAt != nil || after.LastError != before.LastError || after.LastUID != before.LastUID || after.ConsecutiveFailures != 0 {
				t.Errorf("%s: the test changed the mailbox's poll state: %+v", tc.name, after)
			}
		}
		if n := len(srv.folder(t, "INBOX")); n != 2 {
			t.Errorf("INBOX holds %d messages after the tests, want the 2 untouched", n)
		}
		if n := len(ingests(t, st)); n != 0 {
			t.Errorf("the tests ingested %d files, want none", n)
		}
		if _, err := svc.Test(ctx, 99999); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown mailbox: %v, want ErrNotFound", err)
		}
	})
}
