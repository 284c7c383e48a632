package ingest_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/pkg/ingest"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// refuseReports makes the database itself refuse to store the report with the given
// report_id, as it would a value it cannot hold: a trigger, on either dialect.
func refuseReports(t *testing.T, st *store.Store, reportID string) (drop func()) {
	t.Helper()
	db := st.DB()
	var stmts []string
	if st.Dialect() == store.Postgres {
		stmts = []string{
			`CREATE FUNCTION refuse_report() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN IF NEW.report_id = '` + reportID + `' THEN RAISE EXCEPTION 'refused by the test trigger'; END IF; RETURN NEW; END $$`,
			`CREATE TRIGGER refuse_report BEFORE INSERT ON reports FOR EACH ROW EXECUTE FUNCTION refuse_report()`,
		}
	} else {
		stmts = []string{`CREATE TRIGGER refuse_report BEFORE INSERT ON reports WHEN NEW.report_id = '` + reportID + `'
			BEGIN SELECT RAISE(ABORT, 'refused by the test trigger'); END`}
	}
	for _, q := range stmts {
		if err := db.Exec(q).Error; err != nil {
			t.Fatal(err)
		}
	}
	return func() {
		if err := db.Exec(`DROP TRIGGER refuse_report` + map[bool]string{true: " ON reports", false: ""}[st.Dialect() == store.Postgres]).Error; err != nil {
			t.Fatal(err)
		}
	}
}

// A file whose reports the database refuses stays pending with the refusal on it while
// attempts remain, never holds back the other files of its batch, and fails with the reason
// once its attempts are spent; reset after the cause is fixed, it is stored. A file that
// keeps killing its worker (claimed, never finished) fails the same way.
func TestAttemptsBounded(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		ctx := context.Background()
		st := b.Store(t)
		lim := limits()
		lim.MaxAttempts = 3
		svc := ingest.New(st, nil, nil, lim, testenv.Logger())
		drop := refuseReports(t, st, "refuse-me")

		res, err := svc.AcceptBatch(ctx, []ingest.File{
			{Name: "good.xml", Source: "test", Data: reportXML("good", "192.0.2.1")},
			{Name: "refused.xml", Source: "test", Data: reportXML("refuse-me", "192.0.2.2")},
			{Name: "killer.xml", Source: "test", Data: reportXML("killer", "192.0.2.3")},
		})
		if err != nil {
			t.Fatal(err)
		}
		good, refused, killer := res[0].IngestID, res[1].IngestID, res[2].IngestID

		for attempt := 1; attempt <= 3; attempt++ {
			out, err := svc.ProcessBatch(ctx, []int64{good, refused})
			if err != nil {
				t.Fatal(err)
			}
			if out[1].Err == nil || errors.Is(out[1].Err, ingest.ErrPermanent) {
				t.Fatalf("attempt %d: refused file: %+v, want an error worth retrying", attempt, out[1])
			}
			ing, err := st.GetIngest(ctx, refused)
			if err != nil {
				t.Fatal(err)
			}
			if ing.Status != store.StatusPending || ing.Attempts != attempt || !strings.Contains(ing.Error, "refused by the test trigger") {
				t.Fatalf("attempt %d: refused file is %s after %d attempts with %q, want pending with the refusal", attempt, ing.Status, ing.Attempts, ing.Error)
			}
			if g, _ := st.GetIngest(ctx, good); g.Status != store.StatusProcessed || g.Attempts != 1 {
				t.Fatalf("attempt %d: good file %s after %d attempts, want processed once", attempt, g.Status, g.Attempts)
			}
		}
		// Attempts spent: the next one fails the file, with the database's words.
		err = svc.Process(ctx, refused)
		ing, _ := st.GetIngest(ctx, refused)
		if !errors.Is(err, ingest.ErrPermanent) || ing.Status != store.StatusFailed ||
			!strings.Contains(ing.Error, "given up after 3 attempts (VIGIL_MAX_PARSE_ATTEMPTS)") || !strings.Contains(ing.Error, "refused by the test trigger") {
			t.Fatalf("after 3 attempts: %v; file %s %q", err, ing.Status, ing.Error)
		}
		if n := (bundle{st: st}).totalReports(t); n != 1 {
			t.Fatalf("%d reports, want only the good one", n)
		}

		// A worker that dies on a file claims it and records nothing.
		for range 3 {
			if _, _, ok, err := st.Claim(ctx, killer); err != nil || !ok {
				t.Fatalf("claim: %v %v", ok, err)
			}
		}
		err = svc.Process(ctx, killer)
		ing, _ = st.GetIngest(ctx, killer)
		if !errors.Is(err, ingest.ErrPermanent) || ing.Status != store.StatusFailed || !strings.Contains(ing.Error, "the worker stopped before finishing") {
			t.Fatalf("killer: %v; file %s %q", err, ing.Status, ing.Error)
		}

		// The cause fixed, a reset file is parsed again with fresh attempts, and stored.
		drop()
		for _, id := range []int64{refused, killer} {
			if err := st.ResetIngest(ctx, id); err != nil {
				t.Fatal(err)
			}
			if err := svc.Process(ctx, id); err != nil {
				t.Fatalf("after reset: %v", err)
			}
			if ing, _ := st.GetIngest(ctx, id); ing.Status != store.StatusProcessed || ing.Attempts != 1 || ing.Error != "" {
				t.Fatalf("after reset: %s after %d attempts, %q", ing.Status, ing.Attempts, ing.Error)
			}
		}
	})
}
