package httpapi_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/apiparams"
	"github.com/vigilhq/vigil/pkg/auth"
	"github.com/vigilhq/vigil/pkg/ingest"
	"github.com/vigilhq/vigil/pkg/reports"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// GET /api/ingests: every received file with one request, newest first, by status, source
// and date (issue 19: failed files could only be found id by id, and 179 requests ran into
// the rate limit).
func TestListIngests(t *testing.T) {
	t.Parallel()
	good := corpusFile(t, "parsedmarc/samples/extract_report/nice-input.xml.gz")
	day := func(d int) time.Time { return time.Date(2026, 3, d, 12, 0, 0, 0, time.UTC) }
	files := []struct {
		name, source string
		data         []byte
		received     time.Time
	}{
		{"nice.xml.gz", "upload", good, day(1)},
		{"page.html", "upload", []byte("<html>not a report</html>"), day(2)},
		{"junk.bin", "imap", []byte{0, 1, 2, 3, 4, 5, 6, 7}, day(3)},
		{"unused.txt", "import", []byte("unused"), day(4)},
	}
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		f := newFixture(t, b, defaultLimits)
		ctx := context.Background()
		ids := map[string]int64{}
		for _, fl := range files {
			res, err := f.svc.Accept(ctx, ingest.File{Name: fl.name, Source: fl.source, Data: fl.data, ReceivedAt: fl.received})
			if err != nil {
				t.Fatal(err)
			}
			if err := f.svc.Process(ctx, res.IngestID); err != nil && !errors.Is(err, ingest.ErrPermanent) {
				t.Fatal(err)
			}
			ids[fl.name] = res.IngestID
		}
		// One more, left pending (no worker ran).
		pending, err := f.svc.Accept(ctx, ingest.File{Name: "later.xml", Source: "upload", Data: []byte("<feedback/>"), ReceivedAt: day(5)})
		if err != nil {
			t.Fatal(err)
		}
		ids["later.xml"] = pending.IngestID

		list := func(query string) apiparams.List[reports.IngestView] {
			t.Helper()
			rec := f.asRole(auth.Viewer).do(t, http.MethodGet, "/api/ingests"+query, nil, "")
			if rec.Code != http.StatusOK {
				t.Fatalf("GET /api/ingests%s: %d %s", query, rec.Code, rec.Body)
			}
			return decode[apiparams.List[reports.IngestView]](t, rec)
		}
		names := func(l apiparams.List[reports.IngestView]) []string {
			var out []string
			for _, it := range l.Items {
				out = append(out, it.Filename)
			}
			return out
		}
		for _, c := range []struct {
			query string
			want  []string
			total int64
		}{
			{"", []string{"later.xml", "unused.txt", "junk.bin", "page.html", "nice.xml.gz"}, 5},
			{"?status=failed", []string{"unused.txt", "junk.bin", "page.html"}, 3},
			{"?status=FAILED&source=imap", []string{"junk.bin"}, 1},
			{"?status=pending", []string{"later.xml"}, 1},
			{"?source=upload", []string{"later.xml", "page.html", "nice.xml.gz"}, 3},
			{"?start=2026-03-02&end=2026-03-03", []string{"junk.bin", "page.html"}, 2},
			{"?end=2026-03-01", []string{"nice.xml.gz"}, 1},
			{"?page_size=2&page=2", []string{"junk.bin", "page.html"}, 5},
			{"?page_size=2&page=9", nil, 5},
			{"?source=tlsrpt", nil, 0},
		} {
			got := list(c.query)
			if !slices.Equal(names(got), c.want) || got.Total != c.total {
				t.Errorf("%q: %v (total %d), want %v (total %d)", c.query, names(got), got.Total, c.want, c.total)
			}
		}
		// Items carry what GET /api/ingests/{id} says: the reason, the reports, the times.
		all := list("")
		for _, it := range all.Items {
			one := decode[reports.IngestView](t, f.do(t, http.MethodGet, fmt.Sprintf("/api/ingests/%d", it.ID), nil, ""))
			if fmt.Sprint(one) != fmt.Sprint(it) {
				t.Errorf("list item %+v differs from GET /api/ingests/%d %+v", it, it.ID, one)
			}
		}
		nice := all.Items[4]
		if nice.ID != ids["nice.xml.gz"] || nice.Status != "processed" || len(nice.ReportIDs) != 1 || nice.ProcessedAt == nil {
			t.Errorf("processed file: %+v", nice)
		}
		if page := all.Items[3]; page.Status != "failed" || !strings.Contains(page.Error, "not a DMARC aggregate report") || len(page.ReportIDs) != 0 || page.ReportIDs == nil {
			t.Errorf("failed file: %+v", page)
		}
		if all.Page != 1 || all.PageSize != 50 {
			t.Errorf("envelope page %d size %d, want 1 and 50", all.Page, all.PageSize)
		}

		for query, param := range map[string]string{
			"?status=lost": "status", "?source=Up%20load": "source", "?days=3&start=2026-01-01": "days",
			"?start=yesterday": "start", "?page_size=501": "page_size", "?start=2026-03-03&end=2026-03-02": "end",
		} {
			rec := f.do(t, http.MethodGet, "/api/ingests"+query, nil, "")
			if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "parameter "+param) {
				t.Errorf("%s: %d %s, want 400 naming %s", query, rec.Code, rec.Body, param)
			}
		}
		if rec := f.as("").do(t, http.MethodGet, "/api/ingests", nil, ""); rec.Code != http.StatusUnauthorized {
			t.Errorf("without credentials: %d, want 401", rec.Code)
		}
	})
}
