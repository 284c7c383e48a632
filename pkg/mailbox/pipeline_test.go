package mailbox_test

import (
	"context"
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/dmarc"
	"github.com/vigilhq/vigil/pkg/ingest"
	"github.com/vigilhq/vigil/pkg/mailbox"
	"github.com/vigilhq/vigil/pkg/mailpoll"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
	"github.com/vigilhq/vigil/pkg/unwrap"
)

type pipeline struct {
	st  *store.Store
	ing *ingest.Service
	svc *mailpoll.Service
	id  int64
}

func newPipeline(tb testing.TB, b testenv.Backend, cfg mailbox.Config) pipeline {
	tb.Helper()
	st := b.Store(tb)
	ing := ingest.New(st, nil, nil, ingest.Limits{FileBytes: 50 << 20, Unwrap: unwrap.DefaultLimits, Parse: dmarc.DefaultLimits}, testenv.Logger())
	svc := mailpoll.New(mailpoll.Deps{Store: st, Ingest: ing, Limits: unwrap.DefaultLimits, MaxMessageBytes: 50 << 20, Env: &cfg, Log: testenv.Logger()})
	id, err := svc.EnvMailboxID(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return pipeline{st: st, ing: ing, svc: svc, id: id}
}

// drain polls until a poll finds nothing new and returns the polls' summed counts.
func (p pipeline) drain(tb testing.TB) (sum mailbox.Result, polls int) {
	tb.Helper()
	for {
		res, err := p.svc.Poll(context.Background(), p.id)
		if err != nil {
			tb.Fatalf("poll %d: %v", polls+1, err)
		}
		polls++
		sum.Seen += res.Seen
		sum.Saved += res.Saved
		sum.Duplicates += res.Duplicates
		sum.Invalid += res.Invalid
		sum.Retry += res.Retry
		sum.Duration += res.Duration
		if res.Seen == 0 || polls > 3 {
			return sum, polls
		}
	}
}

// processAll parses every pending file, as the workers would.
func (p pipeline) processAll(tb testing.TB) {
	tb.Helper()
	ctx := context.Background()
	ids, err := p.st.StalePending(ctx, time.Now().Add(time.Hour), 1<<30)
	if err != nil {
		tb.Fatal(err)
	}
	for _, id := range ids {
		if err := p.ing.Process(ctx, id); err != nil && !errors.Is(err, ingest.ErrPermanent) {
			tb.Fatalf("process %d: %v", id, err)
		}
	}
}

func (p pipeline) count(tb testing.TB, table, where string) int64 {
	tb.Helper()
	var n int64
	q := "SELECT count(*) FROM " + table
	if where != "" {
		q += " WHERE " + where
	}
	if err := p.st.DB().Raw(q).Scan(&n).Error; err != nil {
		tb.Fatal(err)
	}
	return n
}

// TestDovecotPipeline: a 5,000-message backlog (every corpus e-mail, generated reports, spam)
// on a real Dovecot, read through the real pipeline until empty. Every message is stored once
// and filed where it belongs; the same backlog delivered again adds no file and no report.
func TestDovecotPipeline(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		d := mailbox.StartDovecot(t)
		msgs, wantArchive, wantInvalid := mailbox.Backlog(t, 5000)
		d.Deliver(t, msgs)
		p := newPipeline(t, b, d.Config())

		sum, polls := p.drain(t)
		t.Logf("%d messages in %d polls, %s (%.0f messages/s)", sum.Seen, polls, sum.Duration.Round(time.Millisecond), float64(sum.Seen)/sum.Duration.Seconds())
		if sum.Seen != len(msgs) || sum.Retry != 0 || sum.Invalid != mailbox.Total(wantInvalid) || sum.Saved+sum.Duplicates != mailbox.Total(wantArchive) {
			t.Fatalf("polls: %+v; want %d seen, %d archive, %d invalid", sum, len(msgs), mailbox.Total(wantArchive), mailbox.Total(wantInvalid))
		}
		if got := mailbox.FolderKeys(t, d.Config(), "INBOX"); len(got) != 0 {
			t.Fatalf("INBOX still holds %d messages", len(got))
		}
		if got := mailbox.FolderKeys(t, d.Config(), "Archive"); !maps.Equal(got, wantArchive) {
			t.Errorf("Archive holds %d messages, want %d", mailbox.Total(got), mailbox.Total(wantArchive))
		}
		if got := mailbox.FolderKeys(t, d.Config(), "Invalid"); !maps.Equal(got, wantInvalid) {
			t.Errorf("Invalid holds %d messages, want %d", mailbox.Total(got), mailbox.Total(wantInvalid))
		}
		// One file per distinct message, each parsed; the generated reports all stored.
		distinct := len(wantArchive) + len(wantInvalid)
		if n := p.count(t, "ingests", "source = 'imap'"); n != int64(distinct) {
			t.Fatalf("%d files stored, want %d distinct messages", n, distinct)
		}
		p.processAll(t)
		if n := p.count(t, "ingests", "status = 'pending'"); n != 0 {
			t.Fatalf("%d files still pending", n)
		}
		reports := p.count(t, "reports", "")
		if reports < int64(len(msgs)-len(wantInvalid)-100) { // corpus e-mails may hold several reports, or none
			t.Fatalf("%d reports from %d report e-mails", reports, mailbox.Total(wantArchive))
		}

		// The whole backlog again (a server restored from backup, a second copy of the mail):
		// every message is a duplicate filed where the first copy went, nothing is added.
		d.Deliver(t, msgs)
		again, _ := p.drain(t)
		if again.Seen != len(msgs) || again.Saved != 0 || again.Duplicates != mailbox.Total(wantArchive) || again.Invalid != mailbox.Total(wantInvalid) {
			t.Fatalf("second delivery: %+v", again)
		}
		p.processAll(t)
		if n := p.count(t, "ingests", "source = 'imap'"); n != int64(distinct) {
			t.Fatalf("after the second delivery: %d files, want %d", n, distinct)
		}
		if n := p.count(t, "reports", ""); n != reports {
			t.Fatalf("after the second delivery: %d reports, want %d", n, reports)
		}
	})
}

// BenchmarkDovecotPipeline: how fast a 5,000-message backlog drains into the pipeline (each
// message stored durably before it is moved), on PostgreSQL when the test variables are set.
// Compare with BenchmarkDovecotBacklog (a sink that stores nothing) to see what the pipeline
// costs over the IMAP round trips.
func BenchmarkDovecotPipeline(b *testing.B) {
	be := testenv.Backends()[len(testenv.Backends())-1]
	var seen int
	var spent time.Duration
	for b.Loop() {
		b.StopTimer()
		d := mailbox.StartDovecot(b)
		msgs, _, _ := mailbox.Backlog(b, 5000)
		d.Deliver(b, msgs)
		p := newPipeline(b, be, d.Config())
		b.StartTimer()
		sum, _ := p.drain(b)
		seen += sum.Seen
		spent += sum.Duration
	}
	b.ReportMetric(float64(seen)/spent.Seconds(), "msgs/s")
}
