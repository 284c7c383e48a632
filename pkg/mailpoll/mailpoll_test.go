package mailpoll

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/hibiken/asynq"

	"github.com/vigilhq/vigil/pkg/corpus"
	"github.com/vigilhq/vigil/pkg/dmarc"
	"github.com/vigilhq/vigil/pkg/ingest"
	"github.com/vigilhq/vigil/pkg/mailbox"
	"github.com/vigilhq/vigil/pkg/secretbox"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
	"github.com/vigilhq/vigil/pkg/unwrap"
	"github.com/vigilhq/vigil/tasks"
)

const (
	testUser = "dmarc@example.org"
	testPass = "s3cret-pass"
)

// memServer is go-imap's in-memory IMAP server on a loopback listener (as in pkg/mailbox).
type memServer struct {
	mem *testenv.MemIMAP
	cfg mailbox.Config
}

func newMemServer(t *testing.T) *memServer {
	t.Helper()
	m := testenv.NewMemIMAP(t, testUser, testPass)
	return &memServer{mem: m, cfg: mailbox.Config{Host: m.Host, Port: m.Port, Username: testUser, Password: testPass,
		TLS: mailbox.TLSNone, AllowPlain: true, OpTimeout: 10 * time.Second}}
}

func (m *memServer) append(t *testing.T, data []byte) { m.mem.Append(t, "INBOX", data) }

// folder lists the content hashes of a folder's messages, as the server serves them; a
// missing folder is empty.
func (m *memServer) folder(t *testing.T, name string) map[string]int {
	t.Helper()
	c, err := imapclient.DialInsecure(net.JoinHostPort(m.cfg.Host, strconv.Itoa(m.cfg.Port)), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(testUser, testPass).Wait(); err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	sel, err := c.Select(name, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return out
	}
	if sel.NumMessages == 0 {
		return out
	}
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range msgs {
		for _, b := range msg.BodySection {
			out[sum(b.Bytes)]++
		}
	}
	return out
}

// served is what the in-memory server sends for BODY[] of a message stored as b.
func served(b []byte) []byte {
	return imapserver.ExtractBodySection(bytes.NewReader(b), &imap.FetchItemBodySection{})
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func spamMail(i int) []byte {
	return []byte(fmt.Sprintf("From: promo@shop.example\r\nTo: %s\r\nSubject: Offer %d\r\nMessage-ID: <spam-%d@shop.example>\r\n\r\nBuy now.\r\n", testUser, i, i))
}

// reportMails returns n corpus e-mails holding reports, each as the server will serve it.
func reportMails(t *testing.T, n int) [][]byte {
	t.Helper()
	dir, entries := corpus.ForTest(t)
	var out [][]byte
	seen := map[string]bool{}
	for _, e := range entries {
		if len(out) == n {
			break
		}
		if !strings.HasSuffix(e.Path, ".eml") || e.Kind != "aggregate" || e.Malformed() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.RelPath()))
		if err != nil {
			t.Fatal(err)
		}
		if s := served(b); len(s) == 0 || seen[sum(s)] {
			continue
		} else if ok, _ := mailbox.Classify(s, unwrap.DefaultLimits); !ok {
			continue
		} else {
			seen[sum(s)] = true
		}
		out = append(out, b)
	}
	if len(out) < n {
		t.Fatalf("corpus: %d report e-mails, want %d", len(out), n)
	}
	return out
}

func newIngest(st *store.Store) *ingest.Service {
	return ingest.New(st, nil, nil, ingest.Limits{FileBytes: 50 << 20, Unwrap: unwrap.DefaultLimits, Parse: dmarc.DefaultLimits}, testenv.Logger())
}

// testKeys is a keyring for sealing passwords in tests.
func testKeys(t *testing.T) *secretbox.Keyring {
	t.Helper()
	ring, err := secretbox.New(rawKey(t))
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

func newService(t *testing.T, st *store.Store, ing *ingest.Service, cfg *mailbox.Config, enq Enqueuer) *Service {
	t.Helper()
	return newServiceWith(t, Deps{Store: st, Ingest: ing, Env: cfg, Enqueuer: enq, Keys: testKeys(t)})
}

// newServiceWith fills the Deps every test shares.
func newServiceWith(t *testing.T, d Deps) *Service {
	t.Helper()
	d.Limits, d.MaxMessageBytes, d.Interval, d.Log = unwrap.DefaultLimits, 50<<20, 15*time.Minute, testenv.Logger()
	s := New(d)
	if err := s.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

type ingestRow struct {
	SHA256    string `gorm:"column:sha256"`
	Filename  string
	Source    string
	SourceRef string
}

func ingests(t *testing.T, st *store.Store) map[string]ingestRow {
	t.Helper()
	var rows []ingestRow
	if err := st.DB().Table("ingests").Select("sha256", "filename", "source", "source_ref").Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	out := map[string]ingestRow{}
	for _, r := range rows {
		out[r.SHA256] = r
	}
	if len(out) != len(rows) {
		t.Fatalf("%d ingests for %d distinct files", len(rows), len(out))
	}
	return out
}

func TestPoll(t *testing.T) {
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		ctx := context.Background()
		srv := newMemServer(t)
		reports := reportMails(t, 4)
		for _, r := range reports {
			srv.append(t, r)
		}
		srv.append(t, spamMail(1))
		srv.append(t, reports[0]) // the same report sent twice: stored once, archived twice

		st := b.Store(t)
		svc := newService(t, st, newIngest(st), &srv.cfg, nil)
		id, err := svc.EnvMailboxID(ctx)
		if err != nil || id == 0 {
			t.Fatalf("env mailbox id %d, %v", id, err)
		}
		res, err := svc.Poll(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if res.Seen != 6 || res.Saved != 4 || res.Duplicates != 1 || res.Invalid != 1 || res.State.LastUID != 6 {
			t.Fatalf("poll: %+v", res)
		}

		got := ingests(t, st)
		if len(got) != 5 {
			t.Fatalf("%d ingests, want 5 (4 reports + spam): %v", len(got), got)
		}
		wantArchive, wantInvalid := map[string]int{}, map[string]int{sum(served(spamMail(1))): 1}
		for _, r := range reports {
			wantArchive[sum(served(r))]++
		}
		wantArchive[sum(served(reports[0]))]++
		for k := range wantArchive {
			ing, ok := got[k]
			if !ok {
				t.Fatalf("report %s not stored", k[:12])
			}
			prefix := fmt.Sprintf("mailbox:%d uidvalidity:%d uid:", id, res.State.UIDValidity)
			if ing.Source != "imap" || !strings.HasPrefix(ing.SourceRef, prefix) || !strings.Contains(ing.SourceRef, " message-id:") ||
				!strings.HasSuffix(ing.Filename, ".eml") {
				t.Errorf("ingest %+v, want source imap, source_ref %q…", ing, prefix)
			}
		}
		if _, ok := got[sum(served(spamMail(1)))]; !ok {
			t.Error("the spam message was not stored")
		}
		if a := srv.folder(t, "Archive"); !equal(a, wantArchive) {
			t.Errorf("Archive holds %v, want %v", a, wantArchive)
		}
		if i := srv.folder(t, "Invalid"); !equal(i, wantInvalid) {
			t.Errorf("Invalid holds %v, want %v", i, wantInvalid)
		}
		if in := srv.folder(t, "INBOX"); len(in) != 0 {
			t.Errorf("INBOX still holds %v", in)
		}

		s, err := svc.Status(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if s.Name != EnvName || s.Source != SourceEnv || !s.Configured || s.Polling || s.LastUID != 6 || s.UIDValidity != res.State.UIDValidity ||
			s.LastError != "" || s.ConsecutiveFailures != 0 || s.LastSuccessAt == nil || s.LastPollAt == nil ||
			s.LastResult == nil || s.LastResult.Saved != 4 || s.LastResult.Duplicates != 1 || s.LastResult.Invalid != 1 {
			t.Fatalf("status: %+v (last result %+v)", s, s.LastResult)
		}

		// Nothing new: the second poll reads nothing and stores nothing.
		res, err = svc.Poll(ctx, id)
		if err != nil || res.Seen != 0 || res.State.LastUID != 6 {
			t.Fatalf("second poll: %+v, %v", res, err)
		}
		if n := len(ingests(t, st)); n != 5 {
			t.Fatalf("%d ingests after the second poll", n)
		}
		// One more message later: only it is read.
		srv.append(t, spamMail(2))
		if res, err = svc.Poll(ctx, id); err != nil || res.Seen != 1 || res.Invalid != 1 || res.State.LastUID != 7 {
			t.Fatalf("third poll: %+v, %v", res, err)
		}

		if _, err := svc.Status(ctx, id+100); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("status of an unknown mailbox: %v", err)
		}
	})
}

func equal(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// A poll holding the lease keeps every other poll of the mailbox out, until it expires.
func TestLease(t *testing.T) {
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		ctx := context.Background()
		srv := newMemServer(t)
		srv.append(t, reportMails(t, 1)[0])
		st := b.Store(t)
		svc := newService(t, st, newIngest(st), &srv.cfg, nil)
		id, _ := svc.EnvMailboxID(ctx)

		held := time.Now().UTC().Add(10 * time.Minute)
		if err := st.DB().Exec("UPDATE mailboxes SET poll_lease_until = ? WHERE id = ?", held, id).Error; err != nil {
			t.Fatal(err)
		}
		s, _ := svc.Status(ctx, id)
		if !s.Polling {
			t.Fatalf("status with the lease held: %+v", s)
		}
		res, err := svc.Poll(ctx, id)
		if !errors.Is(err, ErrAlreadyPolling) || !strings.Contains(err.Error(), "already being polled") || res.Seen != 0 {
			t.Fatalf("poll with the lease held: %+v, %v", res, err)
		}
		if err := svc.HandlePoll(ctx, pollTask(t, id)); err != nil {
			t.Fatalf("HandlePoll with the lease held: %v, want nil (nothing to retry)", err)
		}
		if n := len(ingests(t, st)); n != 0 || len(srv.folder(t, "INBOX")) != 1 {
			t.Fatalf("a poll ran under another's lease: %d ingests", n)
		}
		if s, _ := svc.Status(ctx, id); s.LastPollAt != nil || s.LastUID != 0 {
			t.Fatalf("status changed by a refused poll: %+v", s)
		}

		// An expired lease (its poll died) is taken over.
		if err := st.DB().Exec("UPDATE mailboxes SET poll_lease_until = ? WHERE id = ?", time.Now().UTC().Add(-time.Minute), id).Error; err != nil {
			t.Fatal(err)
		}
		if res, err := svc.Poll(ctx, id); err != nil || res.Saved != 1 {
			t.Fatalf("poll after the lease expired: %+v, %v", res, err)
		}
		if s, _ := svc.Status(ctx, id); s.Polling {
			t.Fatal("lease not released")
		}
	})
}

// Two polls started together: one reads the mailbox, the other is refused.
func TestConcurrentPolls(t *testing.T) {
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		ctx := context.Background()
		srv := newMemServer(t)
		for _, r := range reportMails(t, 3) {
			srv.append(t, r)
		}
		st := b.Store(t)
		svc := newService(t, st, newIngest(st), &srv.cfg, nil)
		id, _ := svc.EnvMailboxID(ctx)
		type out struct {
			res mailbox.Result
			err error
		}
		results := make(chan out, 2)
		start := make(chan struct{})
		for range 2 {
			go func() {
				<-start
				r, err := svc.Poll(ctx, id)
				results <- out{r, err}
			}()
		}
		close(start)
		saved, refused := 0, 0
		for range 2 {
			o := <-results
			switch {
			case errors.Is(o.err, ErrAlreadyPolling):
				refused++
			case o.err != nil:
				t.Fatal(o.err)
			default:
				saved += o.res.Saved
			}
		}
		// The second may also start after the first ended and find nothing new.
		if saved != 3 || len(ingests(t, st)) != 3 {
			t.Fatalf("saved %d (refused %d), %d ingests", saved, refused, len(ingests(t, st)))
		}
	})
}

// When the pipeline cannot store, nothing is moved and the state stays where it was.
func TestSinkFails(t *testing.T) {
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		ctx := context.Background()
		srv := newMemServer(t)
		reports := reportMails(t, 2)
		for _, r := range reports {
			srv.append(t, r)
		}
		srv.append(t, spamMail(1))
		st := b.Store(t)
		down := b.Store(t) // the pipeline's database, closed: every Accept fails
		down.Close()
		svc := newService(t, st, newIngest(down), &srv.cfg, nil)
		id, _ := svc.EnvMailboxID(ctx)

		res, err := svc.Poll(ctx, id)
		if err == nil {
			t.Fatalf("poll with the database down: %+v, no error", res)
		}
		if res.State.LastUID != 0 || res.Saved+res.Invalid+res.Duplicates != 0 {
			t.Fatalf("poll with the database down: %+v", res)
		}
		if in := srv.folder(t, "INBOX"); len(in) != 3 {
			t.Fatalf("INBOX holds %d messages after a failed poll, want all 3", len(in))
		}
		if a, i := srv.folder(t, "Archive"), srv.folder(t, "Invalid"); len(a)+len(i) != 0 {
			t.Fatalf("moved although nothing was stored: archive %v, invalid %v", a, i)
		}
		s, _ := svc.Status(ctx, id)
		if s.LastUID != 0 || s.ConsecutiveFailures != 1 || s.LastError == "" || s.LastSuccessAt != nil || s.Polling || s.LastPollAt == nil {
			t.Fatalf("status after a failed poll: %+v", s)
		}
		if err := svc.HandlePoll(ctx, pollTask(t, id)); err == nil || errors.Is(err, asynq.SkipRetry) {
			t.Fatalf("HandlePoll with the database down: %v, want an error to retry", err)
		}

		// A cancelled poll moves nothing either.
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := svc.Poll(cctx, id); err == nil {
			t.Fatal("cancelled poll: no error")
		}
		if in := srv.folder(t, "INBOX"); len(in) != 3 {
			t.Fatalf("INBOX holds %d messages after a cancelled poll", len(in))
		}

		// The database is back: everything is read.
		svc = newService(t, st, newIngest(st), &srv.cfg, nil)
		if res, err := svc.Poll(ctx, id); err != nil || res.Saved != 2 || res.Invalid != 1 {
			t.Fatalf("poll after recovery: %+v, %v", res, err)
		}
		if s, _ := svc.Status(ctx, id); s.ConsecutiveFailures != 0 || s.LastError != "" || s.LastUID != 3 {
			t.Fatalf("status after recovery: %+v", s)
		}
	})
}

// A poll that fails half-way keeps what it finished: the batches acknowledged before the
// failure are saved in the state, the rest is read again next time.
func TestPartialPollSavesState(t *testing.T) {
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		ctx := context.Background()
		srv := newMemServer(t)
		reports := reportMails(t, 4)
		for _, r := range reports {
			srv.append(t, r)
		}
		st := b.Store(t)
		cfg := srv.cfg
		cfg.BatchSize = 1
		svc := newService(t, st, newIngest(st), &cfg, nil)
		id, _ := svc.EnvMailboxID(ctx)
		pctx, cancel := context.WithCancel(ctx)
		defer cancel()
		calls := 0
		accept := svc.accept
		svc.accept = func(ctx context.Context, f []ingest.File) ([]ingest.Result, error) {
			if calls++; calls == 3 {
				cancel() // the worker shuts down in the middle of the third message
				return nil, ctx.Err()
			}
			return accept(ctx, f)
		}
		res, err := svc.Poll(pctx, id)
		if err == nil || res.State.LastUID != 2 || res.Saved != 2 {
			t.Fatalf("interrupted poll: %+v, %v", res, err)
		}
		s, _ := svc.Status(ctx, id)
		if s.LastUID != 2 || s.ConsecutiveFailures != 1 || s.LastError == "" || s.Polling || s.LastResult == nil || s.LastResult.Saved != 2 {
			t.Fatalf("status after an interrupted poll: %+v", s)
		}
		if a, in := srv.folder(t, "Archive"), srv.folder(t, "INBOX"); len(a) != 2 || len(in) != 2 {
			t.Fatalf("archive %d, inbox %d messages; want 2 and 2", len(a), len(in))
		}
		svc.accept = accept
		if res, err := svc.Poll(ctx, id); err != nil || res.Seen != 2 || res.Saved != 2 || res.State.LastUID != 4 {
			t.Fatalf("next poll: %+v, %v", res, err)
		}
		if n := len(ingests(t, st)); n != 4 {
			t.Fatalf("%d ingests, want 4", n)
		}
	})
}

func pollTask(t *testing.T, id int64) *asynq.Task {
	t.Helper()
	task, err := tasks.NewMailboxPollTask(id, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return task
}

// A changed host, user or folder is another mailbox: reading starts over; a changed port is not.
func TestInitResetsState(t *testing.T) {
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		ctx := context.Background()
		st := b.Store(t)
		cfg := mailbox.Config{Host: "imap.example.org", Username: "u", Password: "p"}
		svc := newService(t, st, nil, &cfg, nil)
		id, _ := svc.EnvMailboxID(ctx)
		setState := func() {
			if err := st.DB().Exec("UPDATE mailboxes SET uid_validity = 9, last_uid = 7 WHERE id = ?", id).Error; err != nil {
				t.Fatal(err)
			}
		}
		check := func(what string, c mailbox.Config, wantLast uint32) {
			t.Helper()
			s := newService(t, st, nil, &c, nil)
			id2, _ := s.EnvMailboxID(ctx)
			if id2 != id {
				t.Fatalf("%s: env mailbox id %d, was %d", what, id2, id)
			}
			got, err := s.Status(ctx, id)
			if err != nil || got.LastUID != wantLast || got.Host != c.Host || got.Port != c.WithDefaults().Port {
				t.Fatalf("%s: status %+v, %v; want last_uid %d", what, got, err, wantLast)
			}
		}
		setState()
		check("same config", cfg, 7)
		c := cfg
		c.Port = 1993
		check("another port", c, 7)
		c.Folder = "DMARC"
		check("another folder", c, 0)
		setState()
		c.Host = "imap2.example.org"
		check("another host", c, 0)
		setState()
		c.Username = "v"
		check("another user", c, 0)
	})
}

// queued is a service with an env mailbox and a real task queue.
type queued struct {
	st    *store.Store
	svc   *Service
	insp  *asynq.Inspector
	envID int64
}

func newQueued(t *testing.T, b testenv.Backend) queued {
	t.Helper()
	opt := b.Redis(t, 13)
	client := asynq.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	insp := asynq.NewInspector(opt)
	t.Cleanup(func() { insp.Close() })
	st := b.Store(t)
	cfg := mailbox.Config{Host: "imap.example.org", Username: "u", Password: "p"}
	svc := newService(t, st, nil, &cfg, client)
	envID, err := svc.EnvMailboxID(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return queued{st: st, svc: svc, insp: insp, envID: envID}
}

// Trigger enqueues one poll per enabled mailbox (or the one named), keyed to the minute.
func TestTrigger(t *testing.T) {
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		ctx := context.Background()
		q := newQueued(t, b)
		st, svc, insp, envID := q.st, q.svc, q.insp, q.envID
		now := time.Date(2026, 3, 1, 10, 17, 42, 0, time.UTC)
		svc.now = func() time.Time { return now }
		// An API mailbox as an older version left it: no credentials stored.
		if err := st.DB().Exec(`INSERT INTO mailboxes (name, source, host, port, username, folder, created_at, updated_at)
			VALUES ('second', 'api', 'imap.example.com', 993, 'x', 'INBOX', ?, ?)`, now, now).Error; err != nil {
			t.Fatal(err)
		}
		var apiID int64
		if err := st.DB().Raw("SELECT id FROM mailboxes WHERE name = 'second'").Scan(&apiID).Error; err != nil {
			t.Fatal(err)
		}
		off, err := svc.Create(ctx, Input{Name: ptr("off"), Host: ptr("imap.example.net"), Username: ptr("y"), Password: ptr("z"), Enabled: ptr(false)})
		if err != nil {
			t.Fatal(err)
		}

		ids, err := svc.Trigger(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		minute := now.Truncate(time.Minute).Unix()
		want := []string{fmt.Sprintf("mailbox:poll:%d:%d", envID, minute), fmt.Sprintf("mailbox:poll:%d:%d", apiID, minute)}
		if strings.Join(ids, ",") != strings.Join(want, ",") {
			t.Fatalf("task ids %v, want %v (the disabled mailbox left out)", ids, want)
		}
		again, err := svc.Trigger(ctx, 0) // the same minute: the same tasks, nothing more
		if err != nil || strings.Join(again, ",") != strings.Join(want, ",") {
			t.Fatalf("second trigger: %v, %v", again, err)
		}
		one, err := svc.Trigger(ctx, apiID)
		if err != nil || len(one) != 1 || one[0] != want[1] {
			t.Fatalf("trigger of mailbox %d: %v, %v", apiID, one, err)
		}
		if _, err := svc.Trigger(ctx, off.ID); !errors.Is(err, ErrNotConfigured) {
			t.Fatalf("trigger of a disabled mailbox: %v", err)
		}
		if _, err := svc.Trigger(ctx, 9999); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("trigger of an unknown mailbox: %v", err)
		}
		pending, err := insp.ListPendingTasks(tasks.QueueIngest)
		if err != nil {
			t.Fatal(err)
		}
		if len(pending) != 2 {
			t.Fatalf("%d pending tasks, want 2", len(pending))
		}
		for _, p := range pending {
			var pl tasks.MailboxPollPayload
			if err := tasks.Decode(asynq.NewTask(p.Type, p.Payload), &pl); err != nil {
				t.Fatal(err)
			}
			if p.Type != tasks.TypeMailboxPoll || p.ID != tasks.MailboxPollTaskID(pl.MailboxID, pl.Period) || p.MaxRetry != 3 {
				t.Errorf("task %+v", p)
			}
		}

		// The API mailbox without credentials cannot be polled: its task is not retried, and
		// its status says why.
		err = svc.HandlePoll(ctx, pollTask(t, apiID))
		if !errors.Is(err, asynq.SkipRetry) || !errors.Is(err, ErrNotConfigured) {
			t.Fatalf("HandlePoll of an API mailbox: %v", err)
		}
		if s, _ := svc.Status(ctx, apiID); s.Configured || !strings.Contains(s.ConfigError, "no password") || s.LastError == "" || s.ConsecutiveFailures != 1 || s.Polling {
			t.Fatalf("status of the API mailbox: %+v", s)
		}
		if err := svc.HandlePoll(ctx, pollTask(t, 9999)); !errors.Is(err, asynq.SkipRetry) {
			t.Fatalf("HandlePoll of an unknown mailbox: %v", err)
		}
	})
}

func ptr[T any](v T) *T { return &v }

// The scheduler's dispatch polls each enabled mailbox once per period of its own interval.
func TestDispatch(t *testing.T) {
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		ctx := context.Background()
		q := newQueued(t, b)
		svc, insp, envID := q.svc, q.insp, q.envID
		now := time.Date(2026, 3, 1, 10, 17, 42, 0, time.UTC)
		svc.now = func() time.Time { return now }
		hourly, err := svc.Create(ctx, Input{Name: ptr("hourly"), Host: ptr("imap.example.net"), Username: ptr("y"), Password: ptr("z"), PollInterval: ptr("1h")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Create(ctx, Input{Name: ptr("off"), Host: ptr("imap.example.net"), Username: ptr("w"), Password: ptr("z"), Enabled: ptr(false)}); err != nil {
			t.Fatal(err)
		}

		jobs := svc.Jobs()
		if len(jobs) != 1 || jobs[0].Interval != time.Minute {
			t.Fatalf("jobs %+v", jobs)
		}
		dispatch, err := jobs[0].Build(now.Truncate(time.Minute))
		if err != nil || dispatch.Type() != tasks.TypeMailboxDispatch {
			t.Fatalf("job task %v, %v", dispatch, err)
		}
		queued := func() []string {
			t.Helper()
			pending, err := insp.ListPendingTasks(tasks.QueueIngest)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, p := range pending {
				ids = append(ids, p.ID)
			}
			slices.Sort(ids)
			return ids
		}
		for minute := range 3 { // three dispatches within both periods: one poll each
			now = time.Date(2026, 3, 1, 10, 17+minute, 42, 0, time.UTC)
			if err := svc.HandleDispatch(ctx, dispatch); err != nil {
				t.Fatal(err)
			}
		}
		want := []string{
			tasks.MailboxPollTaskID(envID, time.Date(2026, 3, 1, 10, 15, 0, 0, time.UTC)),
			tasks.MailboxPollTaskID(hourly.ID, time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)),
		}
		slices.Sort(want)
		if got := queued(); !slices.Equal(got, want) {
			t.Fatalf("queued %v, want %v", got, want)
		}
		// The next quarter: the env mailbox is due again, the hourly one is not.
		now = time.Date(2026, 3, 1, 10, 30, 5, 0, time.UTC)
		if err := svc.HandleDispatch(ctx, dispatch); err != nil {
			t.Fatal(err)
		}
		want = append(want, tasks.MailboxPollTaskID(envID, time.Date(2026, 3, 1, 10, 30, 0, 0, time.UTC)))
		slices.Sort(want)
		if got := queued(); !slices.Equal(got, want) {
			t.Fatalf("queued %v, want %v", got, want)
		}
	})
}

// A configuration the poller refuses is recorded and not retried.
func TestConfigErrorNotRetried(t *testing.T) {
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		ctx := context.Background()
		st := b.Store(t)
		cfg := mailbox.Config{Host: "127.0.0.1", Port: 1, Username: "u", Password: "p", TLS: mailbox.TLSNone} // no AllowPlain
		svc := newService(t, st, newIngest(st), &cfg, nil)
		id, _ := svc.EnvMailboxID(ctx)
		err := svc.HandlePoll(ctx, pollTask(t, id))
		if !errors.Is(err, asynq.SkipRetry) || !errors.Is(err, mailbox.ErrInvalidConfig) {
			t.Fatalf("HandlePoll with an invalid configuration: %v", err)
		}
		if s, _ := svc.Status(ctx, id); s.LastError == "" || s.ConsecutiveFailures != 1 || s.Polling {
			t.Fatalf("status: %+v", s)
		}
	})
}

// pkg/httpapi/openapi.json describes the JSON Status answers as the code makes them.
func TestOpenAPIFragmentMatchesStatus(t *testing.T) {
	b, err := os.ReadFile("../httpapi/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Items struct {
						Properties map[string]any `json:"properties"`
					} `json:"items"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	keys := func(v any) []string {
		b, _ := json.Marshal(v)
		var m map[string]any
		json.Unmarshal(b, &m)
		out := []string{}
		for k := range m {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	names := func(m map[string]any) []string {
		out := []string{}
		for k := range m {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	schemas := spec.Components.Schemas
	status := map[string]any{}
	for k := range schemas["MailboxStatus"].Properties {
		status[k] = nil
	}
	result := map[string]any{}
	for k := range schemas["MailboxPollResult"].Properties {
		result[k] = nil
	}
	for _, c := range []struct {
		what      string
		doc, code []string
	}{
		{"MailboxStatus", names(status), keys(MailboxStatus{})},
		{"MailboxPollResult", names(result), keys(PollResult{Problems: []PollProblem{{}}})},
		{"problems", names(schemas["MailboxPollResult"].Properties["problems"].Items.Properties), keys(PollProblem{})},
	} {
		if !slices.Equal(c.doc, c.code) {
			t.Errorf("%s: openapi.json documents %v, the code answers %v", c.what, c.doc, c.code)
		}
	}
}
