package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/pkg/ingest"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// reportXML is a small aggregate report with one record per address.
func reportXML(id string, ips ...string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0"?><feedback><report_metadata><org_name>batch.example</org_name><email>d@batch.example</email>`+
		`<report_id>%s</report_id><date_range><begin>1704067200</begin><end>1704153599</end></date_range></report_metadata>`+
		`<policy_published><domain>example.com</domain><p>none</p></policy_published>`, id)
	for _, ip := range ips {
		fmt.Fprintf(&b, `<record><row><source_ip>%s</source_ip><count>2</count><policy_evaluated><disposition>none</disposition>`+
			`<dkim>pass</dkim><spf>fail</spf></policy_evaluated></row><identifiers><header_from>example.com</header_from></identifiers>`+
			`<auth_results><spf><domain>example.com</domain><result>fail</result></spf></auth_results></record>`, ip)
	}
	b.WriteString(`</feedback>`)
	return []byte(b.String())
}

// One batch holds every kind of file: each ends with its own outcome, a bad one never sinks
// the others, a report carried by two files of the batch is stored once, and a second run of
// the same batch changes nothing.
func TestBatch(t *testing.T) {
	t.Parallel()
	shared := reportXML("shared", "192.0.2.1")
	files := []ingest.File{
		{Name: "a.xml", Data: reportXML("a", "192.0.2.1", "192.0.2.2")},
		{Name: "empty.xml"},
		{Name: "junk.txt", Data: []byte("not a report at all")},
		{Name: "shared-1.zip", Data: zipOf(t, map[string][]byte{"s.xml": shared, "b.xml": reportXML("b", "2001:db8::1")})},
		{Name: "shared-2.xml", Data: shared},
		{Name: "a-again.xml", Data: reportXML("a", "192.0.2.1", "192.0.2.2")}, // the same bytes as a.xml
		{Name: "truncated.xml", Data: reportXML("c", "192.0.2.3")[:300]},
		{Name: "mixed.zip", Data: zipOf(t, map[string][]byte{"d.xml": reportXML("d"), "e.bin": []byte("\x00junk")})},
	}
	type want struct{ accept, status string }
	wants := []want{
		{ingest.Accepted, store.StatusProcessed},
		{ingest.Rejected, ""},
		{ingest.Accepted, store.StatusFailed},
		{ingest.Accepted, store.StatusProcessed},
		{ingest.Accepted, store.StatusDuplicate},
		{ingest.Duplicate, ""},
		{ingest.Accepted, store.StatusFailed},
		{ingest.Accepted, store.StatusProcessed},
	}
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		bu := setup(t, b, nil, nil)
		ctx := context.Background()
		for run := range 2 {
			res, err := bu.svc.AcceptBatch(ctx, files)
			if err != nil {
				t.Fatal(err)
			}
			var ids []int64
			var idx []int
			for i, r := range res {
				w := wants[i].accept
				if run == 1 && w == ingest.Accepted {
					w = ingest.Duplicate // the same bytes as the first run's
				}
				if r.Status != w {
					t.Errorf("run %d: %s accepted as %s (%s), want %s", run, files[i].Name, r.Status, r.Error, w)
				}
				if r.IngestID != 0 {
					ids, idx = append(ids, r.IngestID), append(idx, i)
				}
			}
			if res[5].IngestID != res[0].IngestID {
				t.Errorf("run %d: same bytes as ingest %d, want %d", run, res[5].IngestID, res[0].IngestID)
			}
			done, err := bu.svc.ProcessBatch(ctx, ids)
			if err != nil {
				t.Fatal(err)
			}
			for k, p := range done {
				f, w := files[idx[k]], wants[idx[k]]
				if w.status == "" {
					w.status = store.StatusProcessed // a.xml's status, repeated by its copy
				}
				if p.Status != w.status {
					t.Errorf("run %d: %s ended %s (%s), want %s", run, f.Name, p.Status, p.Reason, w.status)
				}
				permanent := errors.Is(p.Err, ingest.ErrPermanent)
				if (p.Err != nil && !permanent) || permanent != (run == 0 && w.status == store.StatusFailed) {
					t.Errorf("run %d: %s: err %v", run, f.Name, p.Err)
				}
				ing, err := bu.st.GetIngest(ctx, p.IngestID)
				if err != nil || ing.Status != p.Status || ing.ReportCount != p.Reports || ing.Error != p.Reason {
					t.Errorf("run %d: %s stored as %+v (%v), reported as %+v", run, f.Name, ing, err, p)
				}
			}
			if n := bu.totalReports(t); n != 4 { // a, shared, b, d
				t.Fatalf("run %d: %d reports stored, want 4", run, n)
			}
		}
		if got := bu.recordCounts(t, mustAccepted(t, bu, files[3])); fmt.Sprint(got) != "[1 1]" {
			t.Errorf("shared-1.zip reports have %v records, want [1 1]", got)
		}
		if !strings.Contains(mustIngest(t, bu, files[7]).Error, "e.bin") {
			t.Errorf("mixed.zip: the bad part is not named: %q", mustIngest(t, bu, files[7]).Error)
		}
	})
}

func mustAccepted(t *testing.T, bu bundle, f ingest.File) int64 {
	t.Helper()
	res, err := bu.svc.Accept(context.Background(), f)
	if err != nil || res.IngestID == 0 {
		t.Fatalf("accept %s again: %+v %v", f.Name, res, err)
	}
	return res.IngestID
}

func mustIngest(t *testing.T, bu bundle, f ingest.File) store.Ingest {
	t.Helper()
	ing, err := bu.st.GetIngest(context.Background(), mustAccepted(t, bu, f))
	if err != nil {
		t.Fatal(err)
	}
	return ing
}

// A batch larger than one statement's worth of records is stored in several, every file whole.
func TestBatchSplitsByRecords(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		bu := setup(t, b, nil, nil)
		ctx := context.Background()
		ips := make([]string, 900) // under the streaming threshold: held whole, 23 files pass 20,000 records
		for i := range ips {
			ips[i] = fmt.Sprintf("10.0.%d.%d", i/256, i%256)
		}
		var files []ingest.File
		for i := range 24 {
			files = append(files, ingest.File{Name: "f.xml", Data: reportXML(fmt.Sprintf("r%d", i), ips...)})
		}
		res, err := bu.svc.AcceptBatch(ctx, files)
		if err != nil {
			t.Fatal(err)
		}
		ids := make([]int64, len(res))
		for i, r := range res {
			ids[i] = r.IngestID
		}
		done, err := bu.svc.ProcessBatch(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range done {
			if p.Err != nil || p.Status != store.StatusProcessed || p.Reports != 1 {
				t.Fatalf("ingest %d: %+v", p.IngestID, p)
			}
			if got := bu.recordCounts(t, p.IngestID); fmt.Sprint(got) != "[900]" {
				t.Fatalf("ingest %d: records %v", p.IngestID, got)
			}
		}
	})
}

// An unknown id in a batch is a permanent failure of that id alone.
func TestBatchUnknownID(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		bu := setup(t, b, nil, nil)
		ctx := context.Background()
		res, err := bu.svc.Accept(ctx, ingest.File{Name: "a.xml", Data: reportXML("a", "192.0.2.1")})
		if err != nil {
			t.Fatal(err)
		}
		done, err := bu.svc.ProcessBatch(ctx, []int64{res.IngestID + 1000, res.IngestID})
		if err != nil {
			t.Fatal(err)
		}
		if !errors.Is(done[0].Err, ingest.ErrPermanent) || done[1].Err != nil || done[1].Status != store.StatusProcessed {
			t.Fatalf("results %+v", done)
		}
	})
}
