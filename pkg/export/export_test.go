package export_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xuri/excelize/v2"

	"github.com/vigilhq/vigil/pkg/auth"
	"github.com/vigilhq/vigil/pkg/export"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// filterCases are the filter sets every format is checked under.
var filterCases = []struct {
	name string
	q    url.Values
}{
	{"all", url.Values{}},
	{"domain", url.Values{"domain": {"hostile.example"}}},
	{"window", url.Values{"start": {"2024-05-01"}, "end": {"2024-05-31"}}},
	{"dkim fail v4 range", url.Values{"dkim_result": {"fail"}, "source_ip_range": {"192.0.2.0/24"}}},
	{"org", url.Values{"org_name": {"+sum(1,2)"}}},
}

// flat is a JSON object flattened as the export's columns name its fields (policy.p).
func flat(prefix string, m map[string]any, out map[string]any) map[string]any {
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok {
			flat(prefix+k+".", sub, out)
			continue
		}
		out[prefix+k] = v
	}
	return out
}

// cellOf is a JSON value as the CSV shows it.
func cellOf(t testing.TB, v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case []any, map[string]any:
		b, err := json.Marshal(x)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	t.Fatalf("unexpected JSON value %T", v)
	return ""
}

// unquote undoes the formula neutralisation of a text cell ("'CR…": the apostrophe of a cell
// whose leading CR encoding/csv dropped on reading).
func unquote(s string) string {
	if len(s) > 1 && s[0] == '\'' && strings.ContainsRune("=+-@\t\r\x00", rune(s[1])) || strings.HasPrefix(s, "'CR") {
		return s[1:]
	}
	return s
}

// sameJSONText compares a JSON list column: the API answers it parsed, the export as text.
func sameJSONText(t testing.TB, got string, want any) bool {
	var g any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		return false
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(want)
	return bytes.Equal(gb, wb)
}

// apiReports pages through /api/reports with q.
func (f fixture) apiReports(t testing.TB, q url.Values) []map[string]any {
	var all []map[string]any
	for page := 1; ; page++ {
		qq := url.Values{}
		for k, v := range q {
			qq[k] = v
		}
		qq.Set("page", strconv.Itoa(page))
		qq.Set("page_size", "500")
		var l struct {
			Items []map[string]any `json:"items"`
			Total int              `json:"total"`
		}
		f.getJSON(t, f.creds[auth.Viewer], "/api/reports", qq, &l)
		for _, it := range l.Items {
			all = append(all, flat("", it, map[string]any{}))
		}
		if len(all) >= l.Total || len(l.Items) == 0 {
			return all
		}
	}
}

// apiRecords is every record of the reports the filters select, as the API lists them.
func (f fixture) apiRecords(t testing.TB, q url.Values) []map[string]any {
	var out []map[string]any
	recQ := url.Values{}
	for _, k := range []string{"source_ip", "source_ip_range", "dkim_result", "spf_result", "disposition"} {
		if v := q.Get(k); v != "" {
			recQ.Set(k, v)
		}
	}
	for _, r := range f.apiReports(t, q) {
		id := fmt.Sprint(r["id"])
		for page := 1; ; page++ {
			qq := url.Values{}
			for k, v := range recQ {
				qq[k] = v
			}
			qq.Set("page", strconv.Itoa(page))
			qq.Set("page_size", "500")
			var l struct {
				Items []map[string]any `json:"items"`
				Total int              `json:"total"`
			}
			f.getJSON(t, f.creds[auth.Viewer], "/api/reports/"+id+"/records", qq, &l)
			for _, it := range l.Items {
				it["report"], it["report_id"], it["org_name"], it["domain"] = r["id"], r["report_id"], r["org_name"], r["domain"]
				it["date_begin"], it["date_end"] = r["date_begin"], r["date_end"]
				out = append(out, it)
			}
			if page*500 >= l.Total {
				break
			}
		}
	}
	return out
}

// apiSources pages through /api/rollup/sources.
func (f fixture) apiSources(t testing.TB, q url.Values) []map[string]any {
	var all []map[string]any
	for page := 1; ; page++ {
		qq := url.Values{}
		for k, v := range q {
			qq[k] = v
		}
		qq.Set("page", strconv.Itoa(page))
		qq.Set("limit", "500")
		var l struct {
			Items []map[string]any `json:"items"`
			Total int              `json:"total"`
		}
		f.getJSON(t, f.creds[auth.Viewer], "/api/rollup/sources", qq, &l)
		all = append(all, l.Items...)
		if len(all) >= l.Total || len(l.Items) == 0 {
			return all
		}
	}
}

func (f fixture) apiRows(t testing.TB, view string, q url.Values) []map[string]any {
	switch view {
	case "reports":
		return f.apiReports(t, q)
	case "records":
		return f.apiRecords(t, q)
	}
	return f.apiSources(t, q)
}

var stampedName = regexp.MustCompile(`^attachment; filename="vigil-(reports|records|sources|workbook|report)-\d{8}T\d{6}Z\.(csv|xlsx|pdf)"$`)

// TestCSVEqualsAPI reads every CSV export back with encoding/csv and compares each row and
// value with the API's JSON answer for the same filters, in the same order.
func TestCSVEqualsAPI(t *testing.T) {
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		st := b.Store(t)
		world(t, st, 60)
		f := newFixture(t, b, st, options{})
		for _, fc := range filterCases {
			for _, view := range export.Views {
				rec := f.get(t, f.creds[auth.Viewer], "/api/export/"+view+"/csv", fc.q)
				if rec.Code != http.StatusOK {
					t.Fatalf("%s %s: %d %s", fc.name, view, rec.Code, rec.Body.String())
				}
				if cd := rec.Header().Get("Content-Disposition"); !stampedName.MatchString(cd) {
					t.Errorf("Content-Disposition %q", cd)
				}
				if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
					t.Errorf("Content-Type %q", ct)
				}
				if !bytes.Contains(rec.Body.Bytes(), []byte("\r\n")) {
					t.Errorf("%s: lines do not end in CRLF (RFC 4180)", view)
				}
				rows, err := csv.NewReader(bytes.NewReader(rec.Body.Bytes())).ReadAll()
				if err != nil {
					t.Fatalf("%s %s: %v", fc.name, view, err)
				}
				want := f.apiRows(t, view, fc.q)
				head := rows[0]
				if len(rows)-1 != len(want) {
					t.Fatalf("%s %s: %d CSV rows, API %d", fc.name, view, len(rows)-1, len(want))
				}
				if fc.name == "all" && len(want) == 0 {
					t.Fatalf("%s: no data: the comparison would prove nothing", view)
				}
				for i, row := range rows[1:] {
					for j, name := range head {
						w, ok := want[i][name]
						if !ok {
							t.Fatalf("%s: column %q is not a field of the API's answer", view, name)
						}
						got := unquote(row[j])
						switch w.(type) {
						case []any:
							if !sameJSONText(t, got, w) {
								t.Errorf("%s %s row %d %s: %q, API %v", fc.name, view, i, name, got, w)
							}
							continue
						}
						// encoding/csv reads a CR inside a quoted field back as nothing (and CRLF as
						// LF): what a reader of RFC 4180 files gets, so CRs are compared out.
						if noCR(got) != noCR(cellOf(t, w)) {
							t.Errorf("%s %s row %d %s: %q, API %q", fc.name, view, i, name, got, cellOf(t, w))
						}
					}
				}
			}
		}
	})
}

// TestInjectionNeutralised: text cells that a spreadsheet would run are prefixed with an
// apostrophe in CSV; numbers (counts) are left alone; XLSX holds no formula at all.
func TestInjectionNeutralised(t *testing.T) {
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		st := b.Store(t)
		save(t, st, hostile())
		f := newFixture(t, b, st, options{})
		rec := f.get(t, f.creds[auth.Viewer], "/api/export/reports/csv", url.Values{"domain": {"hostile.example"}})
		rows, err := csv.NewReader(bytes.NewReader(rec.Body.Bytes())).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		col := map[string]int{}
		for i, h := range rows[0] {
			col[h] = i
		}
		orgs := map[string]bool{}
		for _, r := range rows[1:] {
			orgs[r[col["org_name"]]] = true
			if e := r[col["email"]]; e != "'=1+2@evil.example" {
				t.Errorf("email %q not neutralised", e)
			}
			if _, err := strconv.Atoi(r[col["message_count"]]); err != nil {
				t.Errorf("message_count %q is not a plain number", r[col["message_count"]])
			}
		}
		for _, want := range []string{`'=HYPERLINK("http://evil.example","x")`, "'+SUM(1,2)", "'-1", "'@cmd",
			// The lone CR is kept inside the quotes (encoding/csv's writer dropped it); a CRLF
			// inside a quoted field reads back as LF, as RFC 4180 readers do.
			"'\rCR<b>bold</b>\nBcc: x@evil.example"} {
			if !orgs[want] {
				t.Errorf("org_name %q missing; have %v", want, orgs)
			}
		}
		recs := f.get(t, f.creds[auth.Viewer], "/api/export/records/csv", url.Values{"domain": {"hostile.example"}})
		if !strings.Contains(recs.Body.String(), ",'-2+3,") || !strings.Contains(recs.Body.String(), ",'@x,") || !strings.Contains(recs.Body.String(), ",'\tTAB,") {
			t.Errorf("record header_from cells not neutralised:\n%s", recs.Body.String())
		}
		for _, c := range []struct {
			in, want string
		}{{"=1", "'=1"}, {"+1", "'+1"}, {"-1", "'-1"}, {"@a", "'@a"}, {"\tx", "'\tx"}, {"\rx", "'\rx"}, {"\x00x", "'\x00x"}, {"a=1", "a=1"}, {"", ""}, {"'=1", "'=1"}} {
			if got := export.Neutralise(c.in); got != c.want {
				t.Errorf("Neutralise(%q) = %q, want %q", c.in, got, c.want)
			}
		}
	})
}

// TestXLSXEqualsAPI re-opens each workbook with excelize: sheet, header, frozen pane, cell
// types (ids and IPs text, counts numbers, times dates) and values equal the API's.
func TestXLSXEqualsAPI(t *testing.T) {
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		st := b.Store(t)
		world(t, st, 40)
		f := newFixture(t, b, st, options{})
		for _, fc := range filterCases[:3] {
			for _, view := range export.Views {
				rec := f.get(t, f.creds[auth.Viewer], "/api/export/"+view+"/xlsx", fc.q)
				if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != export.TypeXLSX {
					t.Fatalf("%s %s: %d %s", fc.name, view, rec.Code, rec.Header().Get("Content-Type"))
				}
				checkSheet(t, rec.Body.Bytes(), view, f.apiRows(t, view, fc.q))
			}
		}
		rec := f.get(t, f.creds[auth.Viewer], "/api/export/workbook/xlsx", url.Values{"domain": {"hostile.example"}})
		if rec.Code != http.StatusOK {
			t.Fatalf("workbook: %d %s", rec.Code, rec.Body.String())
		}
		x, err := excelize.OpenReader(bytes.NewReader(rec.Body.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(x.GetSheetList(), ","); got != "summary,reports,records,sources" {
			t.Errorf("workbook sheets %s", got)
		}
		x.Close()
		for _, view := range export.Views {
			checkSheetOf(t, rec.Body.Bytes(), view, view, f.apiRows(t, view, url.Values{"domain": {"hostile.example"}}))
		}
		// No cell of any sheet is a formula, whatever the text (SECURITY-CASES D.33).
		if bytes.Contains(unzipAll(t, rec.Body.Bytes()), []byte("<f>")) || bytes.Contains(unzipAll(t, rec.Body.Bytes()), []byte("<f ")) {
			t.Error("the workbook holds a formula element")
		}
	})
}

func checkSheet(t *testing.T, body []byte, view string, want []map[string]any) {
	t.Helper()
	checkSheetOf(t, body, view, view, want)
}

func checkSheetOf(t *testing.T, body []byte, sheet, view string, want []map[string]any) {
	t.Helper()
	x, err := excelize.OpenReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	rows, err := x.GetRows(sheet, excelize.Options{RawCellValue: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows)-1 != len(want) {
		t.Fatalf("%s: %d rows, API %d", sheet, len(rows)-1, len(want))
	}
	panes, err := x.GetPanes(sheet)
	if err != nil || !panes.Freeze || panes.YSplit != 1 {
		t.Errorf("%s: header not frozen: %+v %v", sheet, panes, err)
	}
	head := rows[0]
	for i, row := range rows[1:] {
		for j, name := range head {
			w := want[i][name]
			var got string
			if j < len(row) {
				got = row[j]
			}
			cell, _ := excelize.CoordinatesToCellName(j+1, i+2)
			typ, _ := x.GetCellType(sheet, cell)
			switch wv := w.(type) {
			case nil:
				if got != "" {
					t.Errorf("%s %s row %d: %q, API null", sheet, name, i, got)
				}
			case float64:
				if isID(name) {
					if typ == excelize.CellTypeNumber || got != cellOf(t, wv) {
						t.Errorf("%s %s row %d: %q (%v), want the text %s", sheet, name, i, got, typ, cellOf(t, wv))
					}
					continue
				}
				g, err := strconv.ParseFloat(got, 64)
				if err != nil || g != wv || typ != excelize.CellTypeNumber && typ != excelize.CellTypeUnset {
					t.Errorf("%s %s row %d: %q (type %v), API %v", sheet, name, i, got, typ, wv)
				}
			case []any:
				if !sameJSONText(t, got, wv) {
					t.Errorf("%s %s row %d: %q, API %v", sheet, name, i, got, wv)
				}
			case string:
				if tm, err := time.Parse(time.RFC3339, wv); err == nil && strings.HasSuffix(name, "_at") || strings.HasPrefix(name, "date_") {
					serial, err := strconv.ParseFloat(got, 64)
					if err != nil {
						t.Errorf("%s %s row %d: %q is not a date cell", sheet, name, i, got)
						continue
					}
					back, _ := excelize.ExcelDateToTime(serial, false)
					if d := back.Sub(tm); d > time.Second || d < -time.Second {
						t.Errorf("%s %s row %d: %v, API %v", sheet, name, i, back, tm)
					}
					continue
				}
				if got != wv {
					t.Errorf("%s %s row %d: %q, API %q", sheet, name, i, got, wv)
				}
			}
		}
	}
}

func noCR(s string) string { return strings.ReplaceAll(s, "\r", "") }

func isID(name string) bool { return name == "id" || name == "ingest_id" || name == "report" }
