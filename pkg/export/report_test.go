package export_test

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/pkg/auth"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// reportRecords is one report's records as GET /api/reports/{id}/records lists them (q: its
// record filters), with the report's columns the export adds.
func (f fixture) reportRecords(t testing.TB, id int64, q url.Values) []map[string]any {
	var r map[string]any
	f.getJSON(t, f.creds[auth.Viewer], fmt.Sprintf("/api/reports/%d", id), nil, &r)
	var out []map[string]any
	for page := 1; ; page++ {
		qq := url.Values{"page": {strconv.Itoa(page)}, "page_size": {"500"}}
		for k, v := range q {
			qq[k] = v
		}
		var l struct {
			Items []map[string]any `json:"items"`
			Total int              `json:"total"`
		}
		f.getJSON(t, f.creds[auth.Viewer], fmt.Sprintf("/api/reports/%d/records", id), qq, &l)
		for _, it := range l.Items {
			it["report"], it["report_id"], it["org_name"], it["domain"] = r["id"], r["report_id"], r["org_name"], r["domain"]
			it["date_begin"], it["date_end"] = r["date_begin"], r["date_end"]
			out = append(out, it)
		}
		if page*500 >= l.Total {
			return out
		}
	}
}

// compareCSV reads a CSV export back and compares it, row by row and value by value, with want.
func compareCSV(t *testing.T, label string, body []byte, want []map[string]any) {
	t.Helper()
	rows, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", label, err)
	}
	if len(rows)-1 != len(want) {
		t.Fatalf("%s: %d CSV rows, API %d", label, len(rows)-1, len(want))
	}
	for i, row := range rows[1:] {
		for j, name := range rows[0] {
			w, ok := want[i][name]
			if !ok {
				t.Fatalf("%s: column %q is not a field of the API's answer", label, name)
			}
			got := unquote(row[j])
			if _, list := w.([]any); list {
				if !sameJSONText(t, got, w) {
					t.Errorf("%s row %d %s: %q, API %v", label, i, name, got, w)
				}
			} else if noCR(got) != noCR(cellOf(t, w)) {
				t.Errorf("%s row %d %s: %q, API %q", label, i, name, got, cellOf(t, w))
			}
		}
	}
}

// TestOneReportRecordsExport: report=N narrows the records export (CSV and XLSX) to one
// report's records, equal to what GET /api/reports/{id}/records lists, record filters still
// applying; the injection guard holds; an unknown report is a 404, a bad id a 400, and the
// other views do not take the parameter.
func TestOneReportRecordsExport(t *testing.T) {
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		st := b.Store(t)
		world(t, st, 30)
		f := newFixture(t, b, st, options{})
		// The hostile reports and the synthetic report with the most records.
		var ids []int64
		var most, mostRecs int64
		for _, r := range f.apiReports(t, url.Values{}) {
			id, _ := strconv.ParseInt(cellOf(t, r["id"]), 10, 64)
			if r["domain"] == "hostile.example" {
				ids = append(ids, id)
			} else if n := int64(r["record_count"].(float64)); n > mostRecs {
				most, mostRecs = id, n
			}
		}
		if len(ids) != 5 || mostRecs < 2 {
			t.Fatalf("fixture: %d hostile reports, the largest other has %d records", len(ids), mostRecs)
		}
		ids = append(ids, most)
		var all strings.Builder
		for _, id := range ids {
			q := url.Values{"report": {strconv.FormatInt(id, 10)}}
			want := f.reportRecords(t, id, nil)
			if len(want) == 0 {
				t.Fatalf("report %d lists no records", id)
			}
			rec := f.get(t, f.creds[auth.Viewer], "/api/export/records/csv", q)
			if rec.Code != http.StatusOK || !stampedName.MatchString(rec.Header().Get("Content-Disposition")) {
				t.Fatalf("report %d: %d %s %s", id, rec.Code, rec.Header().Get("Content-Disposition"), rec.Body.String())
			}
			compareCSV(t, fmt.Sprintf("report %d csv", id), rec.Body.Bytes(), want)
			all.Write(rec.Body.Bytes())
			x := f.get(t, f.creds[auth.Viewer], "/api/export/records/xlsx", q)
			if x.Code != http.StatusOK {
				t.Fatalf("report %d xlsx: %d %s", id, x.Code, x.Body.String())
			}
			checkSheet(t, x.Body.Bytes(), "records", want)
		}
		// The formula guard on the hostile reports' text cells.
		for _, cell := range []string{",'-2+3,", ",'@x,", ",'\tTAB,", `"'=HYPERLINK(`} {
			if !strings.Contains(all.String(), cell) {
				t.Errorf("the hostile reports' exports lack the neutralised cell %q:\n%s", cell, all.String())
			}
		}
		// Record filters still apply within the report.
		q := url.Values{"report": {strconv.FormatInt(most, 10)}, "disposition": {"none"}}
		rec := f.get(t, f.creds[auth.Viewer], "/api/export/records/csv", q)
		compareCSV(t, "report and disposition", rec.Body.Bytes(), f.reportRecords(t, most, url.Values{"disposition": {"none"}}))

		for _, c := range []struct {
			path, report string
			code         int
			says         string
		}{
			{"/api/export/records/csv", "99999999", http.StatusNotFound, "report 99999999"},
			{"/api/export/records/xlsx", "0", http.StatusBadRequest, "report"},
			{"/api/export/records/csv", "x", http.StatusBadRequest, "report"},
			{"/api/export/reports/csv", "1", http.StatusBadRequest, "report"},
			{"/api/export/workbook/xlsx", "1", http.StatusBadRequest, "report"},
		} {
			rec := f.get(t, f.creds[auth.Viewer], c.path, url.Values{"report": {c.report}})
			if rec.Code != c.code || !strings.Contains(rec.Body.String(), c.says) {
				t.Errorf("%s?report=%s: %d %s, want %d naming %s", c.path, c.report, rec.Code, rec.Body.String(), c.code, c.says)
			}
		}
	})
}
