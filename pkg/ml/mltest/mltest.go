// Package mltest builds the data the ML tests run on: a synthetic year of reports (pkg/synth)
// with planted spoofing sources, stored and rolled up as ingestion would.
package mltest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/dmarc"
	"github.com/vigilhq/vigil/pkg/rollup"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/synth"
)

// Spoofers are the planted sources: they send as every domain, every message fails DMARC and
// is rejected, at a volume and from a spread of reporters no real source has, on the two
// weekend days of the last week.
var Spoofers = func() []netip.Addr {
	var out []netip.Addr
	for i := 1; i <= 4; i++ {
		out = append(out, netip.AddrFrom4([4]byte{185, 220, 101, byte(i)}))
	}
	return out
}()

// Parked is a domain that sends no mail of its own: the spoofers are all its reports show.
const Parked = "parked.example"

// Year stores a synthetic year ending today (UTC) and the planted spoofers, and rolls it up.
// It returns the names of the synthetic domains.
func Year(tb testing.TB, st *store.Store, today time.Time, log *slog.Logger) []string {
	tb.Helper()
	ctx := context.Background()
	g := synth.New(synth.Config{Seed: 15, Domains: 4, Sources: 400, Reporters: 8, Days: 365, Reports: 700, RecordsPerReport: 8,
		End: today.AddDate(0, 0, 1)})
	if _, err := synth.Write(ctx, st, g, 1, nil); err != nil {
		tb.Fatal(err)
	}
	r := rollup.New(st, nil, log)
	for {
		n, err := r.CatchUp(ctx, 10000)
		if err != nil {
			tb.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	var domains []string
	if err := st.DB().WithContext(ctx).Raw(`SELECT name FROM rollup_domains ORDER BY name`).Scan(&domains).Error; err != nil {
		tb.Fatal(err)
	}
	Plant(tb, st, today, append([]string{Parked}, domains...), log)
	return domains
}

// Plant stores the spoofers' reports for domains over the last week's weekend and rolls them up.
func Plant(tb testing.TB, st *store.Store, today time.Time, domains []string, log *slog.Logger) {
	tb.Helper()
	ctx := context.Background()
	orgs := []string{"google.com", "Outlook.com", "Yahoo", "Mail.Ru", "GMX", "Comcast"}
	var reps []store.Parsed
	n := 0
	for back := 1; back <= 7; back++ {
		day := today.AddDate(0, 0, -back)
		if wd := day.Weekday(); wd != time.Saturday && wd != time.Sunday {
			continue
		}
		for _, d := range domains {
			for _, org := range orgs {
				n++
				h := &dmarc.Report{OrgName: org, Email: "noreply@" + org, ReportID: fmt.Sprintf("planted-%d", n), DateBegin: day,
					DateEnd: day.Add(24*time.Hour - time.Second), Policy: dmarc.Policy{Domain: d, P: "reject"}}
				var recs []dmarc.Record
				for _, ip := range Spoofers {
					recs = append(recs, dmarc.Record{SourceIP: ip, Count: 400, Disposition: "reject", DKIM: "fail", SPF: "fail", HeaderFrom: d})
				}
				reps = append(reps, store.Parsed{Header: h, Records: recs})
			}
		}
	}
	sum := sha256.Sum256([]byte(fmt.Sprintf("planted-%s-%d", tb.Name(), today.Unix())))
	ing, err := st.CreateIngest(ctx, store.NewFile{SHA256: hex.EncodeToString(sum[:]), Filename: "planted.xml", Source: "test", Size: 1,
		ReceivedAt: today, Encoding: "identity", Data: []byte("x")})
	if err != nil {
		tb.Fatal(err)
	}
	saved, err := st.SaveParsed(ctx, ing.ID, reps)
	if err != nil {
		tb.Fatal(err)
	}
	ids := make([]int64, 0, len(saved))
	for _, s := range saved {
		ids = append(ids, s.ReportID)
	}
	if err := rollup.New(st, nil, log).Apply(ctx, ids); err != nil {
		tb.Fatal(err)
	}
}
