package httpapi_test

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/apiparams"
	"github.com/vigilhq/vigil/pkg/audit"
	"github.com/vigilhq/vigil/pkg/auth"
	"github.com/vigilhq/vigil/pkg/ingest"
	"github.com/vigilhq/vigil/pkg/mailpoll"
	"github.com/vigilhq/vigil/pkg/outbound"
	"github.com/vigilhq/vigil/pkg/reports"
	"github.com/vigilhq/vigil/pkg/secretbox"
	"github.com/vigilhq/vigil/pkg/testenv"
	"github.com/vigilhq/vigil/pkg/unwrap"
)

// GET /api/ingests/{id}/raw: the original bytes exactly, for admins only, always an
// attachment under a sanitised name and typed by content; a sender's hostile file name never
// reaches the header or the user's disk as given.
func TestRawIngest(t *testing.T) {
	t.Parallel()
	gz := corpusFile(t, "parsedmarc/samples/extract_report/nice-input.xml.gz")
	zip := corpusFile(t, "parsedmarc/samples/extract_report/nice-input.xml.zip")
	xml := corpusFile(t, "parsedmarc/samples/aggregate/veeam.com!example.com!1530133200!1530219600.xml")
	eml := corpusFile(t, "parsedmarc/samples/aggregate/twilight.eml")
	files := []struct {
		name      string
		data      []byte
		ctype     string
		wantName  string
		processed bool
	}{
		{"nice-input.xml.gz", gz, "application/gzip", "nice-input.xml.gz", true},
		{"report.gz", zip, "application/zip", "report.gz", true}, // named .gz, is a zip: the content decides
		{"veeam.com!example.com!1530133200!1530219600.xml", xml, "application/xml", "veeam.com_example.com_1530133200_1530219600.xml", true},
		{"twilight.eml", eml, "message/rfc822", "twilight.eml", true},
		{`../../etc/"passwd"` + "\r\nX-Evil: 1.html", []byte("<html><script>alert(1)</script></html>"), "application/xml", "*.html", false},
		{"C:\\Windows\\évil.xml", []byte("<feedback>"), "application/xml", "*.xml", false},
		{"....", []byte{0, 1, 2, 3}, "application/octet-stream", "ingest-%d", false},
	}
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		f := newFixture(t, b, defaultLimits)
		ctx := context.Background()
		for i, fl := range files {
			res, err := f.svc.Accept(ctx, ingest.File{Name: fl.name, Source: "upload", Data: fl.data, ReceivedAt: time.Now()})
			if err != nil {
				t.Fatal(err)
			}
			if err := f.svc.Process(ctx, res.IngestID); err != nil && !errors.Is(err, ingest.ErrPermanent) {
				t.Fatal(err)
			}
			path := fmt.Sprintf("/api/ingests/%d/raw", res.IngestID)
			rec := f.do(t, http.MethodGet, path, nil, "")
			if rec.Code != http.StatusOK {
				t.Fatalf("%d %s: %d %s", i, fl.name, rec.Code, rec.Body)
			}
			if !slices.Equal(rec.Body.Bytes(), fl.data) {
				t.Errorf("%q: served %d bytes, not the %d received", fl.name, rec.Body.Len(), len(fl.data))
			}
			// Each download is in the audit log: who, which file (under the name it was stored with).
			ing, err := f.st.GetIngest(ctx, res.IngestID)
			if err != nil {
				t.Fatal(err)
			}
			if e := lastAudit(t, f, audit.RawDownload); e.Target != fmt.Sprintf("ingest:%d", res.IngestID) || e.Actor != roleEmails[auth.Admin] ||
				e.Details["filename"] != ing.Filename || e.Outcome != audit.Success {
				t.Errorf("%q: audit entry %+v, want the admin downloading ingest:%d", fl.name, e, res.IngestID)
			}
			h := rec.Header()
			if got := h.Get("Content-Type"); got != fl.ctype {
				t.Errorf("%q: Content-Type %q, want %q", fl.name, got, fl.ctype)
			}
			disp, params, err := mime.ParseMediaType(h.Get("Content-Disposition"))
			want := fl.wantName
			if strings.Contains(want, "%d") {
				want = fmt.Sprintf(want, res.IngestID)
			}
			name := params["filename"]
			if strings.HasPrefix(want, "*") { // hostile: only safe characters, the extension kept
				ok := strings.HasSuffix(name, want[1:]) && !strings.HasPrefix(name, ".") && !strings.Contains(name, "..") &&
					!strings.ContainsFunc(name, func(r rune) bool {
						return !(r < 0x80 && (r == '.' || r == '-' || r == '_' || r >= '0' && r <= '9' || r|0x20 >= 'a' && r|0x20 <= 'z'))
					})
				if ok {
					want = name
				}
			}
			if err != nil || disp != "attachment" || name != want {
				t.Errorf("%q: Content-Disposition %q, want attachment with filename %q", fl.name, h.Get("Content-Disposition"), want)
			}
			if h.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(h.Get("Content-Security-Policy"), "sandbox") {
				t.Errorf("%q: headers %v, want nosniff and a sandboxing CSP", fl.name, h)
			}
			for _, role := range []auth.Role{auth.Viewer, auth.Analyst} {
				if rec := f.asRole(role).do(t, http.MethodGet, path, nil, ""); rec.Code != http.StatusForbidden {
					t.Errorf("%s: %d, want 403", role, rec.Code)
				}
			}
		}
		if rec := f.do(t, http.MethodGet, "/api/ingests/999999/raw", nil, ""); rec.Code != http.StatusNotFound {
			t.Errorf("unknown ingest: %d, want 404", rec.Code)
		}
		if rec := f.do(t, http.MethodGet, "/api/ingests/x/raw", nil, ""); rec.Code != http.StatusBadRequest {
			t.Errorf("bad id: %d, want 400", rec.Code)
		}
	})
}

// lastAudit answers the newest audit entry of an action (a zero entry when there is none).
func lastAudit(t *testing.T, f fixture, action string) audit.Entry {
	t.Helper()
	es, _, err := f.audit.List(context.Background(), audit.Filter{Action: action}, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) == 0 {
		return audit.Entry{}
	}
	return es[0]
}

// GET /api/reports?sort=: every allowed key in both directions orders the whole list (not
// just a page) as the same reports sorted here would be, ties by id; anything else is a 400
// naming sort.
func TestReportSort(t *testing.T) {
	t.Parallel()
	paths := []string{
		"parsedmarc/samples/aggregate/addisonfoods.com!example.com!1536105600!1536191999.xml",
		"parsedmarc/samples/aggregate/example.net!example.com!1529366400!1529452799.xml",
		"parsedmarc/samples/aggregate/fastmail.com!example.com!1516060800!1516147199!102675056.xml.gz",
		"parsedmarc/samples/aggregate/protection.outlook.com!example.com!1711756800!1711843200.xml",
		"parsedmarc/samples/aggregate/usssa.com!example.com!1538784000!1538870399.xml",
		"parsedmarc/samples/aggregate/veeam.com!example.com!1530133200!1530219600.xml",
		"parsedmarc/samples/extract_report/nice-input.xml.gz",
		"dmarc-report-viewer/testdata/dmarc-reports/aol.xml",
		"dmarc-report-viewer/testdata/dmarc-reports/gmxnet.xml",
		"dmarc-report-viewer/testdata/dmarc-reports/acme.xml",
	}
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		f := newFixture(t, b, defaultLimits)
		ctx := context.Background()
		for _, p := range paths {
			res, err := f.svc.Accept(ctx, ingest.File{Name: p, Source: "upload", Data: corpusFile(t, p), ReceivedAt: time.Now()})
			if err != nil {
				t.Fatal(err)
			}
			if err := f.svc.Process(ctx, res.IngestID); err != nil {
				t.Fatalf("%s: %v", p, err)
			}
		}
		list := func(q string) []reports.ReportView {
			t.Helper()
			var out []reports.ReportView
			for page := 1; ; page++ { // pages of 3: the order must hold across page boundaries
				rec := f.asRole(auth.Viewer).do(t, http.MethodGet, fmt.Sprintf("/api/reports?page_size=3&page=%d%s", page, q), nil, "")
				if rec.Code != http.StatusOK {
					t.Fatalf("GET /api/reports%s: %d %s", q, rec.Code, rec.Body)
				}
				l := decode[apiparams.List[reports.ReportView]](t, rec)
				out = append(out, l.Items...)
				if len(l.Items) < 3 {
					return out
				}
			}
		}
		all := list("")
		if len(all) != len(paths) {
			t.Fatalf("%d reports stored, want %d", len(all), len(paths))
		}
		keys := map[string]func(a, b reports.ReportView) int{
			"date_begin": func(a, b reports.ReportView) int { return a.DateBegin.Compare(b.DateBegin) },
			"domain":     func(a, b reports.ReportView) int { return strings.Compare(a.Domain, b.Domain) },
			"org_name": func(a, b reports.ReportView) int {
				return strings.Compare(strings.ToLower(a.OrgName), strings.ToLower(b.OrgName))
			},
			"messages": func(a, b reports.ReportView) int { return int(a.MessageCount - b.MessageCount) },
		}
		ids := func(rs []reports.ReportView) []int64 {
			out := make([]int64, len(rs))
			for i, r := range rs {
				out[i] = r.ID
			}
			return out
		}
		for key, cmp := range keys {
			for _, desc := range []bool{false, true} {
				want := slices.Clone(all)
				slices.SortFunc(want, func(a, b reports.ReportView) int {
					c := cmp(a, b)
					if c == 0 {
						c = int(a.ID - b.ID)
					}
					if desc {
						return -c
					}
					return c
				})
				param := key
				if desc {
					param = "-" + key
				}
				if got := list("&sort=" + param); !slices.Equal(ids(got), ids(want)) {
					t.Errorf("sort=%s: ids %v, want %v", param, ids(got), ids(want))
				}
			}
		}
		if got, want := ids(list("")), ids(list("&sort=-date_begin")); !slices.Equal(got, want) {
			t.Errorf("default order %v, want -date_begin's %v", got, want)
		}
		for _, bad := range []string{"id", "record_count", "date_begin%3BDROP", "--messages", "+messages", "-", "DATE_BEGIN"} {
			rec := f.do(t, http.MethodGet, "/api/reports?sort="+bad, nil, "")
			if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "sort") {
				t.Errorf("sort=%s: %d %s, want a 400 naming sort", bad, rec.Code, rec.Body)
			}
		}
	})
}

// POST /api/mailboxes/{id}/test against go-imap's in-memory server: a good mailbox answers
// ok with the folder's count; a wrong password answers ok false at the login step; only
// admins may test; an unknown mailbox is a 404.
func TestMailboxTestEndpoint(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		st := b.Store(t)
		key := make([]byte, 32)
		for i := range key {
			key[i] = byte(i + 1)
		}
		keys, err := secretbox.New(key)
		if err != nil {
			t.Fatal(err)
		}
		mem := testenv.NewMemIMAP(t, "dmarc@example.org", "imap-pass")
		mem.Append(t, "INBOX", []byte("From: a@example.org\r\nSubject: hi\r\n\r\nhello\r\n"))
		mail := mailpoll.New(mailpoll.Deps{Store: st, Keys: keys, Limits: unwrap.DefaultLimits, MaxMessageBytes: 1 << 20,
			Interval: time.Hour, Log: testenv.Logger(), Outbound: &outbound.Policy{AllowHosts: []string{mem.Host}}})
		if err := mail.Init(context.Background()); err != nil {
			t.Fatal(err)
		}
		f := newAuthFixture(t, b, fixtureOptions{store: st, mail: mail})
		create := func(name, pw string) int64 {
			t.Helper()
			rec := f.json(t, http.MethodPost, "/api/mailboxes", map[string]any{"name": name, "host": mem.Host, "port": mem.Port,
				"username": "dmarc@example.org", "password": pw, "tls": "none", "allow_plain": true})
			if rec.Code != http.StatusCreated {
				t.Fatalf("create: %d %s", rec.Code, rec.Body)
			}
			return decode[mailpoll.MailboxStatus](t, rec).ID
		}
		good, bad := create("good", "imap-pass"), create("bad", "wrong")
		rec := f.do(t, http.MethodPost, fmt.Sprintf("/api/mailboxes/%d/test", good), nil, "")
		res := decode[mailpoll.TestResult](t, rec)
		if rec.Code != http.StatusOK || !res.OK || res.Messages == nil || *res.Messages != 1 || res.Stage != "" {
			t.Errorf("good mailbox: %d %s", rec.Code, rec.Body)
		}
		rec = f.do(t, http.MethodPost, fmt.Sprintf("/api/mailboxes/%d/test", bad), nil, "")
		res = decode[mailpoll.TestResult](t, rec)
		if rec.Code != http.StatusOK || res.OK || res.Stage != mailpoll.StageLogin || res.Error == "" || res.Messages != nil {
			t.Errorf("wrong password: %d %s", rec.Code, rec.Body)
		}
		// Both tests are in the audit log, newest first, with how they went.
		entries, _, err := f.audit.List(context.Background(), audit.Filter{Action: audit.MailboxTest}, 1, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 2 || entries[0].Target != fmt.Sprintf("mailbox:%d", bad) || entries[0].Details["ok"] != false ||
			entries[0].Details["stage"] != mailpoll.StageLogin || entries[1].Target != fmt.Sprintf("mailbox:%d", good) ||
			entries[1].Details["ok"] != true || entries[1].Actor != roleEmails[auth.Admin] {
			t.Errorf("mailbox test audit entries: %+v", entries)
		}
		for _, role := range []auth.Role{auth.Viewer, auth.Analyst} {
			if rec := f.asRole(role).do(t, http.MethodPost, fmt.Sprintf("/api/mailboxes/%d/test", good), nil, ""); rec.Code != http.StatusForbidden {
				t.Errorf("%s: %d, want 403", role, rec.Code)
			}
		}
		if rec := f.do(t, http.MethodPost, "/api/mailboxes/99999/test", nil, ""); rec.Code != http.StatusNotFound {
			t.Errorf("unknown mailbox: %d, want 404", rec.Code)
		}
	})
}
