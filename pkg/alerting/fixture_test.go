package alerting

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/dmarc"
	"github.com/vigilhq/vigil/pkg/rollup"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// now is the evaluation time of the tests: a Friday afternoon, UTC.
var now = time.Date(2024, 3, 15, 13, 30, 0, 0, time.UTC)

// dayAt is the UTC day d days before now's day (0: today).
func dayAt(back int) time.Time {
	y, m, d := now.Date()
	return time.Date(y, m, d-back, 0, 0, 0, 0, time.UTC)
}

// rec is one record of a generated report.
type rec struct {
	ip          string
	count       int64
	disposition string // "" none
	pass        bool   // aligned DKIM and SPF pass, else both fail
}

// builder stores reports as the pipeline would and applies them to the rollups.
type builder struct {
	t    testing.TB
	st   *store.Store
	reps []store.Parsed
	seq  *atomic.Int64
}

func newBuilder(t testing.TB, st *store.Store) *builder {
	return &builder{t: t, st: st, seq: &atomic.Int64{}}
}

// report adds one report of org for domain covering day back (0: today) with policy p.
func (b *builder) report(org, domain, p string, back int, recs ...rec) {
	begin := dayAt(back)
	n := b.seq.Add(1)
	h := &dmarc.Report{OrgName: org, Email: "noreply@" + org, ReportID: fmt.Sprintf("r%d", n), DateBegin: begin,
		DateEnd: begin.Add(24*time.Hour - time.Second), Policy: dmarc.Policy{Domain: domain, P: p}}
	var rs []dmarc.Record
	for _, r := range recs {
		res := "fail"
		if r.pass {
			res = "pass"
		}
		disp := r.disposition
		if disp == "" {
			disp = "none"
		}
		rs = append(rs, dmarc.Record{SourceIP: netip.MustParseAddr(r.ip), Count: r.count, Disposition: disp, DKIM: res, SPF: res, HeaderFrom: domain})
	}
	b.reps = append(b.reps, store.Parsed{Header: h, Records: rs})
}

// daily adds a report per day from back `from` to back `to` (inclusive, from ≥ to).
func (b *builder) daily(org, domain, p string, from, to int, recs func(back int) []rec) {
	for back := from; back >= to; back-- {
		b.report(org, domain, p, back, recs(back)...)
	}
}

// apply stores and rolls up what was added.
func (b *builder) apply() {
	b.t.Helper()
	ctx := context.Background()
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s-%d", b.t.Name(), b.seq.Add(1))))
	ing, err := b.st.CreateIngest(ctx, store.NewFile{SHA256: hex.EncodeToString(sum[:]), Filename: "f.xml", Source: "test", Size: 1,
		ReceivedAt: now, Encoding: "identity", Data: []byte("x")})
	if err != nil {
		b.t.Fatal(err)
	}
	var ids []int64
	for start := 0; start < len(b.reps); start += 200 {
		saved, err := b.st.SaveParsed(ctx, ing.ID, b.reps[start:min(start+200, len(b.reps))])
		if err != nil {
			b.t.Fatal(err)
		}
		for _, s := range saved {
			ids = append(ids, s.ReportID)
		}
	}
	if err := rollup.New(b.st, nil, testenv.Logger()).Apply(ctx, ids); err != nil {
		b.t.Fatal(err)
	}
	b.reps = nil
}

func newService(st *store.Store, clock func() time.Time) *Service {
	return New(Deps{Store: st, Log: testenv.Logger(), Now: clock})
}

func fixed(t time.Time) func() time.Time { return func() time.Time { return t } }

func ptr[T any](v T) *T { return &v }
