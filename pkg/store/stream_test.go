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

// TestEachRecordPaging: records streamed with tiny report pages and record chunks (so every
// keyset boundary, chunk flush and the long-report path run) come out in the same order as
// with one page, which is the order of ListReports then ListRecords.
func TestEachRecordPaging(t *testing.T) {
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
			if err := st.EachRecord(ctx, f, func(r *store.ReportRecord) error {
				out = append(out, fmt.Sprint(r.ReportID, "/", r.ID, "/", r.Domain))
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			return out
		}
		for _, f := range []store.Filter{{}, {DKIM: "fail"}} {
			want := walk(f)
			n, err := st.CountRecords(ctx, f)
			if err != nil || int64(len(want)) != n || n == 0 {
				t.Fatalf("%+v: %d records walked, %d counted (%v)", f, len(want), n, err)
			}
			restore := store.SetStreamPages(7, 5)
			got := walk(f)
			restore()
			if !slices.Equal(got, want) {
				t.Errorf("%+v: paged walk differs: %d vs %d records", f, len(got), len(want))
			}
		}
	})
}
