package store_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/synth"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// TestEachRecordOrder: the records stream (one query: a lateral join on PostgreSQL, a join on
// SQLite) holds the rows of ListReports, page after page, each followed by its ListRecords,
// under report and record filters, with the report's fields and dates carried on every row.
func TestEachRecordOrder(t *testing.T) {
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		st := b.Store(t)
		ctx := context.Background()
		g := synth.New(synth.Config{Seed: 5, Domains: 2, Sources: 40, Reporters: 3, Days: 20, End: time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC), Reports: 120, RecordsPerReport: 4})
		var reps []store.Parsed
		for {
			p, ok := g.Next()
			if !ok {
				break
			}
			reps = append(reps, p)
		}
		sum := sha256.Sum256([]byte(t.Name() + b.Name))
		ing, err := st.CreateIngest(ctx, store.NewFile{SHA256: hex.EncodeToString(sum[:]), Filename: "f", Source: "test", Size: 1, ReceivedAt: time.Now(), Encoding: "identity", Data: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.SaveParsed(ctx, ing.ID, reps); err != nil {
			t.Fatal(err)
		}
		walk := func(f store.Filter) []string {
			var out []string
			if err := st.EachRecord(ctx, f, func(r *store.RecordRow) error {
				out = append(out, fmt.Sprint(r.ReportID, "/", string(r.ReporterReportID), "/", string(r.Domain), "/", r.DateBegin.Format(time.RFC3339), "/",
					r.ID, "/", string(r.SourceIP), "/", r.Count, "/", string(r.DKIM), "/", string(r.DKIMResults)))
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			return out
		}
		api := func(f store.Filter) []string {
			var out []string
			for page := 1; ; page++ {
				reports, _, err := st.ListReports(ctx, f, store.Page{Number: page, Size: 50})
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range reports {
					recs, _, err := st.ListRecords(ctx, r.ID, f, store.Page{Number: 1, Size: 500})
					if err != nil {
						t.Fatal(err)
					}
					for _, rec := range recs {
						out = append(out, fmt.Sprint(r.ID, "/", r.ReportID, "/", r.Domain, "/", r.DateBegin.UTC().Format(time.RFC3339), "/",
							rec.ID, "/", rec.SourceIP, "/", rec.Count, "/", rec.DKIM, "/", rec.DKIMResults))
					}
				}
				if len(reports) < 50 {
					return out
				}
			}
		}
		for _, f := range []store.Filter{{}, {DKIM: "fail"}, {Domain: reps[0].Header.Policy.Domain, Start: time.Date(2024, 6, 20, 0, 0, 0, 0, time.UTC)}} {
			got, want := walk(f), api(f)
			n, err := st.CountRecords(ctx, f)
			if err != nil || int64(len(got)) != n || n == 0 {
				t.Fatalf("%+v: %d records walked, %d counted (%v)", f, len(got), n, err)
			}
			if !slices.Equal(got, want) {
				for i := range min(len(got), len(want)) {
					if got[i] != want[i] {
						t.Fatalf("%+v: row %d: stream %q, API %q", f, i, got[i], want[i])
					}
				}
				t.Fatalf("%+v: stream %d rows, API %d", f, len(got), len(want))
			}
		}
	})
}
