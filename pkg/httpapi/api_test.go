package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/vigilhq/vigil/pkg/apiparams"
	"github.com/vigilhq/vigil/pkg/audit"
	"github.com/vigilhq/vigil/pkg/auth"
	"github.com/vigilhq/vigil/pkg/corpus"
	"github.com/vigilhq/vigil/pkg/httpapi"
	"github.com/vigilhq/vigil/pkg/ingest"
	"github.com/vigilhq/vigil/pkg/reports"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
)

type fixture struct {
	t     testing.TB
	e     *echo.Echo
	st    *store.Store
	svc   *ingest.Service
	auth  *auth.Service
	audit *audit.Log
	creds map[auth.Role]string // a bearer access token per role
	cred  string               // the Authorization header do sends: the admin's token
}

func newFixture(t *testing.T, b testenv.Backend, lim httpapi.Limits) fixture {
	t.Helper()
	return newAuthFixture(t, b, fixtureOptions{limits: lim})
}

var defaultLimits = httpapi.Limits{UploadFiles: 200, UploadBytes: 200 << 20, FileBytes: 1 << 20}

type part struct {
	field, name string
	data        []byte
}

func multipartBody(t *testing.T, parts []part) (io.Reader, string) {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for _, p := range parts {
		fw, err := w.CreateFormFile(p.field, p.name)
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(p.data)
	}
	w.Close()
	return &buf, w.FormDataContentType()
}

// do sends a request as the fixture's admin.
func (f fixture) do(t *testing.T, method, path string, body io.Reader, ctype string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, body)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	f.authorize(req)
	rec := httptest.NewRecorder()
	f.e.ServeHTTP(rec, req)
	checkContract(t, req, rec)
	return rec
}

func (f fixture) authorize(req *http.Request) {
	if f.cred != "" {
		req.Header.Set("Authorization", f.cred)
	}
}

func decode[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %s: %v", rec.Body.String(), err)
	}
	return v
}

type uploadAnswer struct {
	Files []reports.UploadResult `json:"files"`
}

func corpusFile(t *testing.T, rel string) []byte {
	t.Helper()
	dir, _ := corpus.ForTest(t)
	b, err := os.ReadFile(filepath.Join(dir, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A mixed upload: every file gets its own status, the bad ones never fail the good ones, and
// after processing the reports are visible with their records.
func TestUploadAndRead(t *testing.T) {
	t.Parallel()
	good := corpusFile(t, "parsedmarc/samples/extract_report/nice-input.xml.gz")
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		f := newFixture(t, b, defaultLimits)
		body, ctype := multipartBody(t, []part{
			{"files", "nice.xml.gz", good},
			{"files", "../../etc/passwd", []byte("unused")},
			{"files", "empty.xml", nil},
			{"files", "big.xml", bytes.Repeat([]byte("x"), 1<<20+1)},
			{"files", "again.xml.gz", good},
			{"other", "ignored.txt", []byte("x")},
		})
		rec := f.do(t, http.MethodPost, "/api/upload", body, ctype)
		if rec.Code != http.StatusAccepted {
			t.Fatalf("upload: %d %s", rec.Code, rec.Body)
		}
		ans := decode[uploadAnswer](t, rec)
		wantStatus := []string{"accepted", "accepted", "rejected", "rejected", "duplicate"}
		if len(ans.Files) != len(wantStatus) {
			t.Fatalf("%d results, want %d: %+v", len(ans.Files), len(wantStatus), ans.Files)
		}
		for i, w := range wantStatus {
			if ans.Files[i].Status != w {
				t.Errorf("file %d (%s): %s (%s), want %s", i, ans.Files[i].Filename, ans.Files[i].Status, ans.Files[i].Error, w)
			}
		}
		if ans.Files[1].Filename != "passwd" {
			t.Errorf("path in a file name kept: %q", ans.Files[1].Filename)
		}
		if !strings.Contains(ans.Files[3].Error, "limit") || ans.Files[3].IngestID != nil {
			t.Errorf("oversized file: %+v", ans.Files[3])
		}
		if *ans.Files[4].IngestID != *ans.Files[0].IngestID {
			t.Errorf("duplicate points at %d, want %d", *ans.Files[4].IngestID, *ans.Files[0].IngestID)
		}
		if ans.Files[4].EarlierStatus != "pending" || ans.Files[0].EarlierStatus != "" {
			t.Errorf("earlier_status: %q of the duplicate (want pending), %q of the first (want none)", ans.Files[4].EarlierStatus, ans.Files[0].EarlierStatus)
		}
		for _, i := range []int{0, 1} {
			f.svc.Process(context.Background(), *ans.Files[i].IngestID)
		}
		// The same bytes once more: the earlier copy is processed now.
		body, ctype = multipartBody(t, []part{{"files", "later.xml.gz", good}})
		again := decode[uploadAnswer](t, f.do(t, http.MethodPost, "/api/upload", body, ctype))
		if len(again.Files) != 1 || again.Files[0].Status != "duplicate" || again.Files[0].EarlierStatus != "processed" {
			t.Errorf("upload of a processed file's bytes: %+v", again.Files)
		}

		ing := decode[reports.IngestView](t, f.do(t, http.MethodGet, fmt.Sprintf("/api/ingests/%d", *ans.Files[0].IngestID), nil, ""))
		if ing.Status != "processed" || len(ing.ReportIDs) != 1 {
			t.Fatalf("ingest: %+v", ing)
		}
		bad := decode[reports.IngestView](t, f.do(t, http.MethodGet, fmt.Sprintf("/api/ingests/%d", *ans.Files[1].IngestID), nil, ""))
		if bad.Status != "failed" || !strings.Contains(bad.Error, "not a DMARC aggregate report") {
			t.Fatalf("bad ingest: %+v", bad)
		}

		list := decode[apiparams.List[reports.ReportView]](t, f.do(t, http.MethodGet, "/api/reports?domain=EXAMPLE.COM&page_size=10", nil, ""))
		if list.Total != 1 || len(list.Items) != 1 || list.PageSize != 10 || list.Page != 1 {
			t.Fatalf("reports: %+v", list)
		}
		r := list.Items[0]
		if r.OrgName != "google.com" || r.RecordCount != 20 || r.Policy.P == "" || r.Policy.Pct == nil {
			t.Fatalf("report: %+v", r)
		}
		one := decode[reports.ReportView](t, f.do(t, http.MethodGet, fmt.Sprintf("/api/reports/%d", r.ID), nil, ""))
		if one.ReportID != r.ReportID || one.MessageCount != r.MessageCount {
			t.Fatalf("report by id: %+v", one)
		}
		recs := decode[apiparams.List[map[string]any]](t, f.do(t, http.MethodGet, fmt.Sprintf("/api/reports/%d/records?page_size=500", r.ID), nil, ""))
		if recs.Total != 20 || len(recs.Items) != 20 {
			t.Fatalf("records: total %d, %d items", recs.Total, len(recs.Items))
		}
		var sum float64
		for _, rec := range recs.Items {
			sum += rec["count"].(float64)
			for _, k := range []string{"source_ip", "disposition", "dkim", "spf", "reasons", "header_from", "envelope_from", "envelope_to", "dkim_results", "spf_results"} {
				if _, ok := rec[k]; !ok {
					t.Fatalf("record lacks %s: %v", k, rec)
				}
			}
		}
		if int64(sum) != r.MessageCount {
			t.Fatalf("records count %v messages, report says %d", sum, r.MessageCount)
		}
		doms := decode[apiparams.List[reports.DomainView]](t, f.do(t, http.MethodGet, "/api/domains", nil, ""))
		if doms.Total != 1 || doms.Items[0].Domain != "example.com" || doms.Items[0].MessageCount != r.MessageCount {
			t.Fatalf("domains: %+v", doms)
		}
		// The last day there is counts whole, without overflowing into year 10000 (which
		// SQLite compared as text, so nothing matched).
		for _, end := range []string{"9999-12-31", "9999-12-31T23:59:59Z", "9999-12-31T20:00:00-05:00"} {
			q := "?start=2000-01-01&end=" + url.QueryEscape(end)
			if l := decode[apiparams.List[reports.ReportView]](t, f.do(t, http.MethodGet, "/api/reports"+q, nil, "")); l.Total != 1 {
				t.Errorf("reports%s: total %d, want 1", q, l.Total)
			}
			if l := decode[apiparams.List[reports.DomainView]](t, f.do(t, http.MethodGet, "/api/domains"+q, nil, "")); l.Total != 1 {
				t.Errorf("domains%s: total %d, want 1", q, l.Total)
			}
		}
	})
}

// Over a cap, the whole request is refused before anything is stored.
func TestUploadCaps(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		f := newFixture(t, b, httpapi.Limits{UploadFiles: 3, UploadBytes: 64 << 10, FileBytes: 32 << 10})
		var parts []part
		for i := range 4 {
			parts = append(parts, part{"files", fmt.Sprintf("f%d.xml", i), []byte(fmt.Sprintf("<feedback>%d</feedback>", i))})
		}
		body, ctype := multipartBody(t, parts)
		if rec := f.do(t, http.MethodPost, "/api/upload", body, ctype); rec.Code != http.StatusRequestEntityTooLarge || !strings.Contains(rec.Body.String(), "VIGIL_MAX_UPLOAD_FILES") {
			t.Fatalf("4 files over a cap of 3: %d %s", rec.Code, rec.Body)
		}
		// A body over the cap without a Content-Length: caught while streaming.
		body, ctype = multipartBody(t, []part{{"files", "a", bytes.Repeat([]byte("a"), 30<<10)}, {"files", "b", bytes.Repeat([]byte("b"), 30<<10)}, {"files", "c", bytes.Repeat([]byte("c"), 30<<10)}})
		req := httptest.NewRequest(http.MethodPost, "/api/upload", io.MultiReader(body))
		req.ContentLength = -1
		req.Header.Set("Content-Type", ctype)
		f.authorize(req)
		rec := httptest.NewRecorder()
		f.e.ServeHTTP(rec, req)
		if rec.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("streamed body over the cap: %d %s", rec.Code, rec.Body)
		}
		if _, total, _ := f.st.ListReports(context.Background(), store.Filter{}, store.Page{Number: 1, Size: 1}); total != 0 {
			t.Fatalf("%d reports after refused uploads", total)
		}
		if ing, err := f.st.GetIngest(context.Background(), 1); err == nil {
			t.Fatalf("a refused upload stored ingest %+v", ing)
		}
	})
}

func TestProblems(t *testing.T) {
	t.Parallel()
	b := testenv.Backends()[0]
	f := newFixture(t, b, defaultLimits)
	cases := []struct {
		method, path, ctype string
		body                string
		status              int
		kind, detail        string
	}{
		{http.MethodGet, "/api/reports?page_size=501", "", "", 400, "bad-parameter", "parameter page_size:"},
		{http.MethodGet, "/api/reports?page=0", "", "", 400, "bad-parameter", "parameter page:"},
		{http.MethodGet, "/api/reports?days=abc", "", "", 400, "bad-parameter", "parameter days:"},
		{http.MethodGet, "/api/reports?days=3&start=2024-01-01", "", "", 400, "bad-parameter", "parameter days:"},
		{http.MethodGet, "/api/reports?start=yesterday", "", "", 400, "bad-parameter", "parameter start: want a date such as 2024-01-31"},
		{http.MethodGet, "/api/reports?start=2024-02-01&end=2024-01-01", "", "", 400, "bad-parameter", "parameter end:"},
		{http.MethodGet, "/api/reports?source_ip=01.2.3.4", "", "", 400, "bad-parameter", "parameter source_ip:"},
		{http.MethodGet, "/api/reports?source_ip_range=10.0.0.0/33", "", "", 400, "bad-parameter", "parameter source_ip_range:"},
		{http.MethodGet, "/api/reports?dkim_result=maybe", "", "", 400, "bad-parameter", "parameter dkim_result:"},
		{http.MethodGet, "/api/reports?spf_result=PASS", "", "", 400, "bad-parameter", "parameter spf_result: want one of pass, fail (lower-case)"},
		{http.MethodGet, "/api/reports?disposition=drop", "", "", 400, "bad-parameter", "parameter disposition:"},
		{http.MethodGet, "/api/reports?foo=bar", "", "", 400, "unknown-parameter", "parameter foo: not a parameter of this endpoint (it takes asn, country, days, disposition"},
		{http.MethodGet, "/api/reports?page_size=5&page_size=6", "", "", 400, "repeated-parameter", "parameter page_size: given 2 times"},
		{http.MethodGet, "/users/me?verbose=1", "", "", 400, "unknown-parameter", "parameter verbose: not a parameter of this endpoint (it takes no query parameters)"},
		{http.MethodGet, "/audit?outcome=success&limit=5", "", "", 400, "unknown-parameter", "parameter limit:"},
		{http.MethodGet, "/users/api-keys?page_size=0", "", "", 400, "bad-parameter", "parameter page_size:"},
		{http.MethodGet, "/api/reports/abc", "", "", 400, "bad-parameter", "parameter id: want a whole number from 1"},
		{http.MethodGet, "/api/reports/0", "", "", 400, "bad-parameter", "parameter id: want a whole number from 1"},
		{http.MethodGet, "/api/reports/999", "", "", 404, "not-found", "report 999"},
		{http.MethodGet, "/api/reports/999/records", "", "", 404, "not-found", "report 999"},
		{http.MethodGet, "/api/ingests/999", "", "", 404, "not-found", "ingest 999"},
		{http.MethodGet, "/api/nowhere", "", "", 404, "not-found", "no route for GET /api/nowhere"},
		{http.MethodPut, "/api/reports", "", "", 405, "method-not-allowed", "PUT /api/reports is not served"},
		{http.MethodPost, "/api/upload", "application/json", "{}", 415, "unsupported-media-type", "multipart/form-data"},
		{http.MethodPost, "/api/upload", "multipart/form-data; boundary=x", "{}", 400, "bad-request", ""},
		{http.MethodPost, "/users/api-keys", "application/json", `{"name":"k","expires_at":"2030-01-01"}`, 400, "bad-parameter", "parameter expires_at: want an RFC 3339 time such as 2030-01-01T00:00:00Z"},
		{http.MethodPost, "/users/api-keys", "application/json", `{"name":5}`, 400, "bad-parameter", "parameter name: want a string"},
		{http.MethodPost, "/users/api-keys", "application/json", `[1]`, 400, "bad-request", "the body must be a JSON object"},
		{http.MethodPost, "/users/api-keys", "application/json", `{"nam":"k"}`, 400, "unknown-field", "parameter nam: not a field this request takes"},
		{http.MethodPost, "/users/api-keys", "text/plain", `{"name":"k"}`, 415, "unsupported-media-type", "application/json"},
		{http.MethodPost, "/users", "application/json", `{"email":"a@example.com","password":"x","role":"viewer","name":"n","active":1}`, 400, "unknown-field", "parameter active:"},
	}
	for _, c := range cases {
		rec := f.do(t, c.method, c.path, strings.NewReader(c.body), c.ctype)
		if rec.Code != c.status {
			t.Errorf("%s %s: %d %s, want %d", c.method, c.path, rec.Code, rec.Body, c.status)
			continue
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("%s %s: content type %q", c.method, c.path, ct)
		}
		p := decode[httpapi.Problem](t, rec)
		if p.Status != c.status || p.Title == "" || p.Detail == p.Title || !strings.Contains(p.Detail, c.detail) || p.Type != httpapi.ProblemTypeBase+c.kind {
			t.Errorf("%s %s: problem %+v, want status %d, type %s and a detail containing %q", c.method, c.path, p, c.status, c.kind, c.detail)
		}
		for _, internal := range []string{"int64", "2006-01-02", "Go ", "json:"} {
			if strings.Contains(p.Detail, internal) {
				t.Errorf("%s %s: detail %q shows %q", c.method, c.path, p.Detail, internal)
			}
		}
	}
	for _, ok := range []string{"/api/reports?source_ip_range=::ffff:192.0.2.0/120", "/api/reports?source_ip=2001:DB8::1", "/api/reports?days=30&dkim_result=pass",
		"/api/reports?start=2024-01-01T00:00:00Z&end=2024-02-01", "/users/api-keys?page=2&page_size=1", "/audit?outcome=success&page_size=5"} {
		if rec := f.do(t, http.MethodGet, ok, nil, ""); rec.Code != http.StatusOK {
			t.Errorf("GET %s: %d %s", ok, rec.Code, rec.Body)
		}
	}
}

// Every kind a problem can have is documented in docs/api.md and in the Problem schema.
func TestProblemKindsDocumented(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	b, err := httpapi.Spec()
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Enum []string `json:"enum"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	enum := spec.Components.Schemas["Problem"].Properties["type"].Enum
	for _, k := range httpapi.ProblemKinds() {
		if !strings.Contains(string(doc), "`"+k+"`") {
			t.Errorf("problem kind %s is not in docs/api.md", k)
		}
		if !slices.Contains(enum, httpapi.ProblemTypeBase+k) {
			t.Errorf("problem type %s is not in the Problem schema's enum %v", httpapi.ProblemTypeBase+k, enum)
		}
	}
	if len(enum) != len(httpapi.ProblemKinds())+1 || !slices.Contains(enum, "about:blank") {
		t.Errorf("the Problem schema lists %d types, the handler knows %d kinds and about:blank", len(enum), len(httpapi.ProblemKinds()))
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testenv.Backends()[0], defaultLimits)
	for _, p := range []string{"/health", "/ready"} {
		if rec := f.do(t, http.MethodGet, p, nil, ""); rec.Code != http.StatusOK {
			t.Errorf("%s: %d %s", p, rec.Code, rec.Body)
		}
	}
	f.st.Close()
	rec := f.do(t, http.MethodGet, "/ready", nil, "")
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "database") {
		t.Fatalf("/ready with the database closed: %d %s", rec.Code, rec.Body)
	}
}

// Every registered route is in openapi.json and every documented path is served.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testenv.Backends()[0], defaultLimits)
	spec := decode[struct {
		Paths map[string]map[string]any `json:"paths"`
	}](t, f.do(t, http.MethodGet, "/openapi.json", nil, ""))
	var documented, served []string
	for p, ops := range spec.Paths {
		for m := range ops {
			documented = append(documented, strings.ToUpper(m)+" "+p)
		}
	}
	for _, r := range f.e.Routes() {
		if strings.HasPrefix(r.Path, "/monitoring") || r.Method == "echo_route_not_found" {
			continue
		}
		p := r.Path
		for _, seg := range strings.Split(p, "/") {
			if strings.HasPrefix(seg, ":") {
				p = strings.Replace(p, seg, "{"+seg[1:]+"}", 1)
			}
		}
		served = append(served, r.Method+" "+p)
	}
	documented = slices.DeleteFunc(documented, func(s string) bool { return strings.HasSuffix(s, " /monitoring") })
	slices.Sort(documented)
	slices.Sort(served)
	if !slices.Equal(documented, served) {
		t.Fatalf("openapi.json documents\n%v\nbut the router serves\n%v", documented, served)
	}
}
