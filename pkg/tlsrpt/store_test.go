package tlsrpt

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/ingest"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
	"github.com/vigilhq/vigil/pkg/unwrap"
)

// pipeline is the ingest pipeline with this package's handler, as pkg/app wires it, without
// a queue: the test processes files itself.
func pipeline(t *testing.T, st *store.Store) (*ingest.Service, *Service) {
	t.Helper()
	svc := New(Deps{Store: st, Log: testenv.Logger()})
	in := ingest.New(st, nil, nil, ingest.Limits{FileBytes: 50 << 20}, testenv.Logger())
	in.HandleKindBatch(unwrap.FormatTLSRPT, svc.KindBatch())
	svc.group = in.NewGroup(ingest.GroupLeads)
	return in, svc
}

// accept stores files and processes them as a worker would, returning each file's outcome.
func accept(t *testing.T, in *ingest.Service, files ...ingest.File) []ingest.Processed {
	t.Helper()
	ctx := context.Background()
	res, err := in.AcceptBatch(ctx, files)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int64, len(res))
	for i, r := range res {
		if r.Status == ingest.Rejected {
			t.Fatalf("file %s rejected: %s", files[i].Name, r.Error)
		}
		ids[i] = r.IngestID
	}
	out, err := in.ProcessBatch(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCorpusStored: every TLS report file of the corpus goes through the pipeline on both
// backends; each distinct report is stored once with the index's fields, the same report in
// another file is a duplicate, and a second run of the same files changes nothing.
func TestCorpusStored(t *testing.T) {
	t.Parallel()
	reps := corpusReports(t)
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		st := b.Store(t)
		in, svc := pipeline(t, st)
		ctx := context.Background()
		type key struct{ org, id, begin string }
		firstOf := map[key]int{}
		var files []ingest.File
		for i, c := range reps {
			files = append(files, ingest.File{Name: c.e.Path, Source: "import", Data: c.raw})
			k := key{strings.ToLower(c.e.ReporterOrg), c.e.ReportID, indexTime(t, c.e.DateBegin).String()}
			if _, ok := firstOf[k]; !ok {
				firstOf[k] = i
			}
		}
		out := accept(t, in, files...)
		for i, p := range out {
			k := key{strings.ToLower(reps[i].e.ReporterOrg), reps[i].e.ReportID, indexTime(t, reps[i].e.DateBegin).String()}
			want := store.StatusProcessed
			if firstOf[k] != i {
				want = store.StatusDuplicate
			}
			if p.Status != want || p.Reports != 1 {
				t.Errorf("%s: %s (%d reports, %q), want %s with 1 report", reps[i].e.RelPath(), p.Status, p.Reports, p.Reason, want)
			}
		}
		rows, total, err := svc.store.List(ctx, Filter{}, Page{1, 500})
		if err != nil {
			t.Fatal(err)
		}
		if int(total) != len(firstOf) || len(rows) != len(firstOf) {
			t.Fatalf("%d reports stored (%d listed), want %d distinct", total, len(rows), len(firstOf))
		}
		for _, r := range rows {
			var c *corpusReport
			for i := range reps {
				if reps[i].e.ReportID == r.ReportID && strings.EqualFold(reps[i].e.ReporterOrg, r.OrganizationName) &&
					indexTime(t, reps[i].e.DateBegin).Unix() == r.DateBegin {
					c = &reps[i]
					break
				}
			}
			if c == nil {
				t.Errorf("stored report %q of %q matches no corpus file", r.ReportID, r.OrganizationName)
				continue
			}
			if r.DateEnd != indexTime(t, c.e.DateEnd).Unix() {
				t.Errorf("%s: date_end %d, index %s", c.e.RelPath(), r.DateEnd, c.e.DateEnd)
			}
			parsed, err := Parse(c.json, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			ok, failed := parsed.Totals()
			if r.SuccessfulSessions != ok || r.FailedSessions != failed || r.PolicyDomain != parsed.Policies[0].PolicyDomain {
				t.Errorf("%s: stored %d/%d sessions for %q, parsed %d/%d for %q", c.e.RelPath(), r.SuccessfulSessions, r.FailedSessions,
					r.PolicyDomain, ok, failed, parsed.Policies[0].PolicyDomain)
			}
		}
		// Retried files (a task delivered twice): nothing changes.
		for _, f := range files {
			res, err := in.Accept(ctx, f)
			if err != nil || res.Status != ingest.Duplicate {
				t.Fatalf("%s accepted again: %+v %v", f.Name, res, err)
			}
		}
		if _, total2, _ := svc.store.List(ctx, Filter{}, Page{1, 1}); total2 != total {
			t.Fatalf("%d reports after the resend, %d before", total2, total)
		}
	})
}

// TestRetryIsNotDuplicate: a file whose report was stored by an attempt that then died is
// processed again; its own report is found and the file ends processed, not duplicate.
func TestRetryIsNotDuplicate(t *testing.T) {
	t.Parallel()
	reps := corpusReports(t)
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		st := b.Store(t)
		in, svc := pipeline(t, st)
		ctx := context.Background()
		res, err := in.Accept(ctx, ingest.File{Name: "r.json", Source: "upload", Data: reps[0].json})
		if err != nil {
			t.Fatal(err)
		}
		r, err := Parse(reps[0].json, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.store.Save(ctx, res.IngestID, r); err != nil { // the attempt that died
			t.Fatal(err)
		}
		out, err := in.ProcessBatch(ctx, []int64{res.IngestID})
		if err != nil || out[0].Status != store.StatusProcessed {
			t.Fatalf("retry: %+v %v", out, err)
		}
	})
}

// TestBadFiles: a malformed report is stored as failed with the reason; in a batch it sinks
// no other file.
func TestBadFiles(t *testing.T) {
	t.Parallel()
	good := withPolicies(`{"policy":{"policy-type":"sts","policy-domain":"good.example"},"summary":{"total-successful-session-count":3,"total-failure-session-count":1},"failure-details":[{"result-type":"certificate-expired","sending-mta-ip":"192.0.2.7","receiving-mx-hostname":"mx.good.example","failed-session-count":1}]}`)
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		st := b.Store(t)
		in, svc := pipeline(t, st)
		out := accept(t, in,
			ingest.File{Name: "neg.json", Source: "upload", Data: withPolicies(`{"policy":{"policy-type":"sts"},"summary":{"total-successful-session-count":-5}}`)},
			ingest.File{Name: "good.json.gz", Source: "upload", Data: gz(good)},
			ingest.File{Name: "type.json", Source: "upload", Data: []byte(`{"organization-name":["x"],"policies":[]}`)},
			ingest.File{Name: "deep.json", Source: "upload", Data: []byte(`{"policies":` + strings.Repeat("[", 50) + strings.Repeat("]", 50) + `}`)},
			// A gzip bomb as a mail attachment would send it: 17 MiB of JSON in 17 KiB.
			ingest.File{Name: "bomb.json.gz", Source: "imap", Data: gz([]byte(`{"organization-name":"` + strings.Repeat(" ", 17<<20) + `"}`))},
		)
		wants := []struct{ status, reason string }{
			{store.StatusFailed, "cannot be negative"}, {store.StatusProcessed, ""},
			{store.StatusFailed, `field "organization-name"`}, {store.StatusFailed, "nested deeper"},
			{store.StatusFailed, "decompression ratio exceeds"}, // pkg/unwrap stops it first
		}
		for i, w := range wants {
			if out[i].Status != w.status || !strings.Contains(out[i].Reason, w.reason) {
				t.Errorf("file %d: %s %q, want %s naming %q", i, out[i].Status, out[i].Reason, w.status, w.reason)
			}
		}
		ctx := context.Background()
		_, total, err := svc.store.List(ctx, Filter{}, Page{1, 10})
		if err != nil || total != 1 {
			t.Fatalf("%d reports stored, want 1 (%v)", total, err)
		}
		// The filters reach the stored good report, and miss it when they should.
		for _, c := range []struct {
			f    Filter
			want int64
		}{
			{Filter{Domain: "good.example"}, 1}, {Filter{Domain: "other.example"}, 0},
			{Filter{OrgName: "ORG"}, 1}, {Filter{OrgName: "someone"}, 0},
			{Filter{SourceIP: netip.MustParseAddr("192.0.2.7")}, 1}, {Filter{SourceIP: netip.MustParseAddr("192.0.2.8")}, 0},
			{Filter{SourceRange: netip.MustParsePrefix("192.0.2.0/24")}, 1}, {Filter{SourceRange: netip.MustParsePrefix("2001:db8::/32")}, 0},
			{Filter{Start: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}, 1}, {Filter{Start: time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)}, 0},
			{Filter{End: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}, 0},
		} {
			if _, n, err := svc.store.List(ctx, c.f, Page{1, 10}); err != nil || n != c.want {
				t.Errorf("filter %+v: %d reports (%v), want %d", c.f, n, err, c.want)
			}
		}
		roll, err := svc.store.Rollup(ctx, Filter{}, 10)
		if err != nil {
			t.Fatal(err)
		}
		if roll.SuccessfulSessions != 3 || roll.FailedSessions != 1 || len(roll.Days) != 1 || roll.Days[0].Date != "2024-01-01" ||
			len(roll.FailureTypes) != 1 || roll.FailureTypes[0].ResultType != "certificate-expired" ||
			len(roll.TopMXHosts) != 1 || roll.TopMXHosts[0].ReceivingMXHostname != "mx.good.example" || roll.FailureRate != 0.25 {
			t.Errorf("rollup %+v", roll)
		}
	})
}

// TestSaveManyIdentities: one SaveMany with new reports, the same report twice from two
// files, a repeat from the same file and a report stored before: each item gets the right
// id and duplicate flag, and only new reports get children (one policy row each).
func TestSaveManyIdentities(t *testing.T) {
	t.Parallel()
	rep := func(org, id string) *Report {
		r, err := Parse([]byte(`{"organization-name":"`+org+`","date-range":{"start-datetime":"2024-01-01T00:00:00Z","end-datetime":"2024-01-01T23:59:59Z"},
"report-id":"`+id+`","policies":[{"policy":{"policy-type":"sts","policy-domain":"x.example"},"summary":{"total-successful-session-count":1,"total-failure-session-count":0}}]}`), Limits{})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		st := b.Store(t)
		in, svc := pipeline(t, st)
		ctx := context.Background()
		var ing [3]int64
		for i := range ing {
			res, err := in.Accept(ctx, ingest.File{Name: "f", Source: "upload", Data: []byte{byte('a' + i)}})
			if err != nil {
				t.Fatal(err)
			}
			ing[i] = res.IngestID
		}
		before, err := svc.store.Save(ctx, ing[2], rep("Old", "r0"))
		if err != nil || before.Duplicate {
			t.Fatalf("first save: %+v %v", before, err)
		}
		items := []Pending{
			{ing[0], rep("A", "r1")},   // new
			{ing[1], rep("a", "r1")},   // the same report (the organisation is case-blind) from another file
			{ing[0], rep("A", "r1")},   // the same file again: not a duplicate
			{ing[0], rep("old", "r0")}, // stored before from another file
			{ing[1], rep("B", "r2")},   // new
		}
		got, err := svc.store.SaveMany(ctx, items)
		if err != nil {
			t.Fatal(err)
		}
		wantDup := []bool{false, true, false, true, false}
		for i, g := range got {
			if g.Duplicate != wantDup[i] {
				t.Errorf("item %d: duplicate %v, want %v", i, g.Duplicate, wantDup[i])
			}
		}
		if got[0].ID != got[1].ID || got[0].ID != got[2].ID || got[3].ID != before.ID || got[4].ID == got[0].ID || got[4].ID == before.ID {
			t.Errorf("ids %+v (stored before: %d)", got, before.ID)
		}
		var reports, policies int64
		st.DB().Table("tls_reports").Count(&reports)
		st.DB().Table("tls_report_policies").Count(&policies)
		if reports != 3 || policies != 3 {
			t.Errorf("%d reports and %d policy rows, want 3 and 3", reports, policies)
		}
	})
}
