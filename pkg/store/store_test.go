package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/dmarc"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
)

func TestIPRange(t *testing.T) {
	t.Parallel()
	cases := []struct {
		prefix string
		in     []string
		out    []string
	}{
		{"192.0.2.7/32", []string{"192.0.2.7"}, []string{"192.0.2.6", "192.0.2.8"}},
		{"192.0.2.0/24", []string{"192.0.2.0", "192.0.2.255"}, []string{"192.0.1.255", "192.0.3.0", "2001:db8::1"}},
		{"0.0.0.0/0", []string{"0.0.0.0", "255.255.255.255", "10.1.2.3"}, []string{"::1", "2001:db8::1"}},
		{"2001:db8::1/128", []string{"2001:db8::1"}, []string{"2001:db8::2", "192.0.2.1"}},
		{"2001:db8:1234::/48", []string{"2001:db8:1234::", "2001:db8:1234:ffff:ffff:ffff:ffff:ffff"}, []string{"2001:db8:1235::", "2001:db8:1233:ffff::1"}},
	}
	for _, c := range cases {
		lo, hi := store.IPRange(netip.MustParsePrefix(c.prefix))
		inside := func(ip string) bool {
			b := netip.MustParseAddr(ip).Unmap().As16()
			return bytes.Compare(b[:], lo) >= 0 && bytes.Compare(b[:], hi) <= 0
		}
		for _, ip := range c.in {
			if !inside(ip) {
				t.Errorf("%s: %s should be inside [%x, %x]", c.prefix, ip, lo, hi)
			}
		}
		for _, ip := range c.out {
			if inside(ip) {
				t.Errorf("%s: %s should be outside [%x, %x]", c.prefix, ip, lo, hi)
			}
		}
	}
}

func report(org, id, domain string, begin time.Time, ips ...string) (*dmarc.Report, []dmarc.Record) {
	h := &dmarc.Report{OrgName: org, ReportID: id, DateBegin: begin, DateEnd: begin.Add(24*time.Hour - time.Second),
		Policy: dmarc.Policy{Domain: domain, P: "reject"}}
	var recs []dmarc.Record
	for i, ip := range ips {
		recs = append(recs, dmarc.Record{SourceIP: netip.MustParseAddr(ip), Count: int64(i + 1), Disposition: "none", DKIM: "pass", SPF: "fail",
			DKIMResults: []dmarc.DKIMResult{{Domain: domain, Selector: "s\"1", Result: "pass"}}, Reasons: []dmarc.Reason{{Type: "local_policy", Comment: "x\ny"}}})
	}
	return h, recs
}

func feed(recs []dmarc.Record) func() (dmarc.Record, error) {
	i := 0
	return func() (dmarc.Record, error) {
		if i == len(recs) {
			return dmarc.Record{}, io.EOF
		}
		i++
		return recs[i-1], nil
	}
}

func noWarnings() []string { return nil }

func newIngest(t *testing.T, st *store.Store, name string) int64 {
	t.Helper()
	sum := sha256.Sum256([]byte(name))
	ing, err := st.CreateIngest(context.Background(), store.NewFile{SHA256: hex.EncodeToString(sum[:]), Filename: name,
		Source: "test", Size: 1, ReceivedAt: time.Now(), Encoding: "identity", Data: []byte("x")})
	if err != nil || !ing.Created {
		t.Fatalf("create ingest %s: created=%v err=%v", name, ing.Created, err)
	}
	return ing.ID
}

func TestSaveReportIdentityAndFilters(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		st := b.Store(t)
		ctx := context.Background()
		day := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
		a, bID := newIngest(t, st, "a"), newIngest(t, st, "b")

		h, recs := report("Google.com", "r1", "example.com", day, "192.0.2.1", "2001:db8::1", "::ffff:198.51.100.7")
		s1, err := st.SaveReport(ctx, a, h, nil, feed(recs), noWarnings)
		if err != nil || s1.Duplicate {
			t.Fatalf("first save: %+v %v", s1, err)
		}
		// Same identity (org case differs), other file: a duplicate of the first.
		h2, recs2 := report("google.com", "r1", "example.com", day, "192.0.2.1")
		s2, err := st.SaveReport(ctx, bID, h2, nil, feed(recs2), noWarnings)
		if err != nil || !s2.Duplicate || s2.ReportID != s1.ReportID {
			t.Fatalf("second save: %+v %v, want duplicate of %d", s2, err, s1.ReportID)
		}
		// Same file again (a re-run after a crash): linked, not a duplicate.
		s3, err := st.SaveReport(ctx, a, h, nil, feed(recs), noWarnings)
		if err != nil || s3.Duplicate || s3.ReportID != s1.ReportID {
			t.Fatalf("re-run save: %+v %v", s3, err)
		}
		// Same report_id, other date range: a different report (dmarc-srg #81).
		h4, recs4 := report("google.com", "r1", "example.com", day.AddDate(0, 0, 1), "203.0.113.9")
		s4, err := st.SaveReport(ctx, bID, h4, nil, feed(recs4), noWarnings)
		if err != nil || s4.Duplicate || s4.ReportID == s1.ReportID {
			t.Fatalf("other range: %+v %v", s4, err)
		}

		got, err := st.GetReport(ctx, s1.ReportID)
		if err != nil || got.RecordCount != 3 || got.MessageCount != 6 {
			t.Fatalf("report totals = %d records / %d messages (%v), want 3 / 6", got.RecordCount, got.MessageCount, err)
		}
		recsOut, total, err := st.ListRecords(ctx, s1.ReportID, store.Filter{}, store.Page{Number: 1, Size: 10})
		if err != nil || total != 3 {
			t.Fatalf("records: total %d err %v", total, err)
		}
		if recsOut[2].SourceIP != "198.51.100.7" {
			t.Errorf("IPv4-mapped address stored as %q, want 198.51.100.7", recsOut[2].SourceIP)
		}
		if want := `[{"domain":"example.com","selector":"s\"1","result":"pass","human_result":""}]`; recsOut[0].DKIMResults != want {
			t.Errorf("dkim_results = %s, want %s", recsOut[0].DKIMResults, want)
		}

		count := func(f store.Filter) int64 {
			t.Helper()
			_, n, err := st.ListReports(ctx, f, store.Page{Number: 1, Size: 50})
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		cases := []struct {
			name string
			f    store.Filter
			want int64
		}{
			{"all", store.Filter{}, 2},
			{"domain", store.Filter{Domain: "example.com"}, 2},
			{"other domain", store.Filter{Domain: "example.org"}, 0},
			{"org case-insensitive", store.Filter{OrgName: "GOOGLE.COM"}, 2},
			{"start", store.Filter{Start: day.AddDate(0, 0, 1)}, 1},
			{"end exclusive", store.Filter{End: day.AddDate(0, 0, 1)}, 1},
			{"exact ip v6", store.Filter{SourceIP: netip.MustParseAddr("2001:db8::1")}, 1},
			{"exact mapped ip", store.Filter{SourceIP: netip.MustParseAddr("198.51.100.7")}, 1},
			{"cidr /24", store.Filter{SourceRange: netip.MustParsePrefix("203.0.113.0/24")}, 1},
			{"cidr /0", store.Filter{SourceRange: netip.MustParsePrefix("0.0.0.0/0")}, 2},
			{"cidr v6 /48", store.Filter{SourceRange: netip.MustParsePrefix("2001:db8::/48")}, 1},
			{"dkim fail", store.Filter{DKIM: "fail"}, 0},
			{"spf fail", store.Filter{SPF: "fail"}, 2},
		}
		for _, c := range cases {
			if got := count(c.f); got != c.want {
				t.Errorf("%s: %d reports, want %d", c.name, got, c.want)
			}
		}
		doms, err := st.ListDomains(ctx, store.Filter{})
		if err != nil || len(doms) != 1 || doms[0].ReportCount != 2 || doms[0].MessageCount != 7 || !doms[0].FirstReport.Equal(day) {
			t.Fatalf("domains = %+v, %v", doms, err)
		}
	})
}

// A record source failing half-way (a truncated report) leaves nothing behind.
func TestSaveReportRollsBack(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		st := b.Store(t)
		ctx := context.Background()
		id := newIngest(t, st, "a")
		h, recs := report("x", "r", "example.com", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), "192.0.2.1", "192.0.2.2")
		broken := errors.New("unexpected end of input")
		n := 0
		_, err := st.SaveReport(ctx, id, h, nil, func() (dmarc.Record, error) {
			if n == 1 {
				return dmarc.Record{}, broken
			}
			n++
			return recs[0], nil
		}, noWarnings)
		if !errors.Is(err, broken) {
			t.Fatalf("err = %v, want the source's error", err)
		}
		if _, total, _ := st.ListReports(ctx, store.Filter{}, store.Page{Number: 1, Size: 10}); total != 0 {
			t.Fatalf("%d reports stored after a failed save, want 0", total)
		}
	})
}

// Two files carrying the same report, stored at once: one report row, one duplicate.
func TestSaveReportConcurrent(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		st := b.Store(t)
		ctx := context.Background()
		ids := []int64{newIngest(t, st, "a"), newIngest(t, st, "b"), newIngest(t, st, "c"), newIngest(t, st, "d")}
		h, recs := report("x", "same", "example.com", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), "192.0.2.1")
		var wg sync.WaitGroup
		results := make([]store.Saved, len(ids))
		errs := make([]error, len(ids))
		for i, id := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if i%2 == 0 { // both paths race each other
					results[i], errs[i] = st.SaveReport(ctx, id, h, nil, feed(recs), noWarnings)
					return
				}
				var saved []store.Saved
				saved, errs[i] = st.SaveParsed(ctx, id, []store.Parsed{{Header: h, Records: recs}})
				if errs[i] == nil {
					results[i] = saved[0]
				}
			}()
		}
		wg.Wait()
		fresh := 0
		for i := range ids {
			if errs[i] != nil {
				t.Fatalf("save %d: %v", i, errs[i])
			}
			if !results[i].Duplicate {
				fresh++
			}
		}
		if fresh != 1 {
			t.Fatalf("%d saves stored the report as new, want exactly 1", fresh)
		}
		if _, total, _ := st.ListReports(ctx, store.Filter{}, store.Page{Number: 1, Size: 10}); total != 1 {
			t.Fatalf("%d reports, want 1", total)
		}
	})
}

func TestCreateIngestSameBytesConcurrently(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		st := b.Store(t)
		var wg sync.WaitGroup
		var mu sync.Mutex
		created, ids := 0, map[int64]bool{}
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ing, err := st.CreateIngest(context.Background(), store.NewFile{SHA256: fmt.Sprintf("%064d", 42), Source: "test", Size: 1,
					ReceivedAt: time.Now(), Encoding: "identity", Data: []byte("x")})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				ids[ing.ID] = true
				if ing.Created {
					created++
				}
			}()
		}
		wg.Wait()
		if created != 1 || len(ids) != 1 {
			t.Fatalf("created %d ingests with ids %v, want 1 and one id", created, ids)
		}
	})
}

func TestCheckSchemaRefusesStale(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		st, err := store.Open(context.Background(), b.DatabaseURL(t), testenv.Logger())
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if err := st.CheckSchema(context.Background()); !errors.Is(err, store.ErrStaleSchema) {
			t.Fatalf("CheckSchema on an empty database = %v, want ErrStaleSchema", err)
		}
		if _, err := st.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := st.CheckSchema(context.Background()); err != nil {
			t.Fatalf("CheckSchema after Migrate = %v", err)
		}
	})
}

// Both ways of saving (whole reports together, and streaming one) must store every record and
// the right totals and warnings, new or duplicate, at sizes around the batch boundaries.
func TestSaveReportSizes(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		st := b.Store(t)
		ctx := context.Background()
		for _, streamed := range []bool{false, true} {
			for _, n := range []int{0, 1, 31, 32, 33, 999, 1000, 1001, 2500} {
				name := fmt.Sprintf("n%d-streamed%v", n, streamed)
				ips := make([]string, n)
				for i := range ips {
					ips[i] = fmt.Sprintf("10.%d.%d.%d", i/65536, i/256%256, i%256)
				}
				h, recs := report("org", name, "example.com", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), ips...)
				h.Warnings = []string{"header warning"}
				save := func(ingestID int64) (store.Saved, error) {
					if streamed {
						return st.SaveReport(ctx, ingestID, h, recs[:min(n, 7)], feed(recs[min(n, 7):]), func() []string { return []string{"late warning"} })
					}
					saved, err := st.SaveParsed(ctx, ingestID, []store.Parsed{{Header: h, Records: recs, Warnings: []string{"late warning"}}})
					if err != nil {
						return store.Saved{}, err
					}
					return saved[0], nil
				}
				a, other := newIngest(t, st, "a"+name), newIngest(t, st, "b"+name)
				saved, err := save(a)
				if err != nil || saved.Duplicate {
					t.Fatalf("%s: %+v %v", name, saved, err)
				}
				want := int64(n) * int64(n+1) / 2
				got, err := st.GetReport(ctx, saved.ReportID)
				if err != nil || got.RecordCount != n || got.MessageCount != want || got.Warnings != `["header warning","late warning"]` {
					t.Fatalf("%s: stored %d records, %d messages, warnings %s (%v); want %d, %d", name, got.RecordCount, got.MessageCount, got.Warnings, err, n, want)
				}
				if _, total, _ := st.ListRecords(ctx, saved.ReportID, store.Filter{}, store.Page{Number: 1, Size: 1}); total != int64(n) {
					t.Fatalf("%s: %d record rows", name, total)
				}
				dup, err := save(other)
				if err != nil || !dup.Duplicate || dup.ReportID != saved.ReportID {
					t.Fatalf("%s duplicate: %+v %v", name, dup, err)
				}
				again, err := save(a) // a re-run of the same file
				if err != nil || again.Duplicate || again.ReportID != saved.ReportID {
					t.Fatalf("%s re-run: %+v %v", name, again, err)
				}
				if ids, _ := st.IngestReportIDs(ctx, other); len(ids) != 1 || ids[0] != saved.ReportID {
					t.Fatalf("%s: duplicate file linked to %v", name, ids)
				}
			}
		}
	})
}

// Several reports of one file saved together, one of them twice (a zip holding a copy) and one
// already stored from another file.
func TestSaveParsedBatch(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		st := b.Store(t)
		ctx := context.Background()
		day := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
		first, file := newIngest(t, st, "first"), newIngest(t, st, "file")
		h0, r0 := report("org", "old", "example.com", day, "192.0.2.1")
		if _, err := st.SaveParsed(ctx, first, []store.Parsed{{Header: h0, Records: r0}}); err != nil {
			t.Fatal(err)
		}
		h1, r1 := report("org", "new", "example.com", day, "192.0.2.2", "192.0.2.3")
		h2, r2 := report("org", "empty", "example.org", day)
		saved, err := st.SaveParsed(ctx, file, []store.Parsed{{Header: h1, Records: r1}, {Header: h0, Records: r0}, {Header: h1, Records: r1}, {Header: h2, Records: r2}})
		if err != nil {
			t.Fatal(err)
		}
		if len(saved) != 4 || saved[0].Duplicate || !saved[1].Duplicate || saved[2].Duplicate || saved[2].ReportID != saved[0].ReportID || saved[3].Duplicate {
			t.Fatalf("saved = %+v", saved)
		}
		if _, total, _ := st.ListReports(ctx, store.Filter{}, store.Page{Number: 1, Size: 1}); total != 3 {
			t.Fatalf("%d reports, want 3", total)
		}
		if ids, _ := st.IngestReportIDs(ctx, file); len(ids) != 3 {
			t.Fatalf("file linked to %v, want 3 reports", ids)
		}

		// Finishing in the same statement happens only when every report is new.
		out := store.Outcome{Status: store.StatusProcessed, Reason: "x.xml: broken", ReportCount: 2}
		withDup, fresh := newIngest(t, st, "with-dup"), newIngest(t, st, "fresh")
		h3, r3 := report("org", "three", "example.com", day, "192.0.2.9")
		if _, finished, err := st.SaveParsedAndFinish(ctx, withDup, []store.Parsed{{Header: h3, Records: r3}, {Header: h0, Records: r0}}, out); err != nil || finished {
			t.Fatalf("with a duplicate: finished=%v err=%v, want not finished", finished, err)
		}
		if ing, _ := st.GetIngest(ctx, withDup); ing.Status != store.StatusPending {
			t.Fatalf("with a duplicate: status %s, want pending", ing.Status)
		}
		h4, r4 := report("org", "four", "example.com", day, "192.0.2.10")
		if _, finished, err := st.SaveParsedAndFinish(ctx, fresh, []store.Parsed{{Header: h4, Records: r4}}, out); err != nil || !finished {
			t.Fatalf("all new: finished=%v err=%v, want finished", finished, err)
		}
		if ing, _ := st.GetIngest(ctx, fresh); ing.Status != store.StatusProcessed || ing.Error != out.Reason || ing.ReportCount != 2 || ing.ProcessedAt == nil {
			t.Fatalf("all new: ingest %+v", ing)
		}
	})
}
