package digest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"
	"github.com/xuri/excelize/v2"

	"github.com/vigilhq/vigil/pkg/analytics"
	"github.com/vigilhq/vigil/pkg/apicontract"
	"github.com/vigilhq/vigil/pkg/auth"
	"github.com/vigilhq/vigil/pkg/digest"
	"github.com/vigilhq/vigil/pkg/dmarc"
	"github.com/vigilhq/vigil/pkg/export"
	"github.com/vigilhq/vigil/pkg/httpapi"
	"github.com/vigilhq/vigil/pkg/notify"
	"github.com/vigilhq/vigil/pkg/ratelimit"
	"github.com/vigilhq/vigil/pkg/rollup"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
	"github.com/vigilhq/vigil/tasks"
)

// redisDB is this package's database on the real server (pkg/testenv: 52–55 are exports').
const redisDB = 54

// now is a Wednesday: the last complete week runs from Monday 2024-06-17 to Monday 2024-06-24,
// the last complete month is May 2024.
var now = time.Date(2024, 6, 26, 10, 0, 0, 0, time.UTC)

// smtpServer is a real SMTP server (emersion/go-smtp) in the test process.
type smtpServer struct {
	mu   sync.Mutex
	msgs []string
	to   []string
}

type session struct{ s *smtpServer }

func (s *smtpServer) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{s}, nil }
func (x *session) Mail(string, *smtp.MailOptions) error           { return nil }
func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	x.s.to = append(x.s.to, to)
	return nil
}
func (x *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	x.s.msgs = append(x.s.msgs, string(b))
	return err
}
func (x *session) Reset()        {}
func (x *session) Logout() error { return nil }

func startSMTP(t *testing.T) (*smtpServer, int) {
	be := &smtpServer{}
	srv := smtp.NewServer(be)
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return be, ln.Addr().(*net.TCPAddr).Port
}

// queue records enqueued tasks.
type queue struct {
	mu    sync.Mutex
	tasks []*asynq.Task
}

func (q *queue) EnqueueContext(_ context.Context, t *asynq.Task, _ ...asynq.Option) (*asynq.TaskInfo, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.tasks = append(q.tasks, t)
	return &asynq.TaskInfo{ID: "x"}, nil
}

var seq atomic.Int64

func save(t *testing.T, st *store.Store, reps []store.Parsed) {
	t.Helper()
	ctx := context.Background()
	sum := sha256.Sum256(fmt.Appendf(nil, "digest-%d-%d", time.Now().UnixNano(), seq.Add(1)))
	ing, err := st.CreateIngest(ctx, store.NewFile{SHA256: hex.EncodeToString(sum[:]), Filename: "f.xml", Source: "test", Size: 1,
		ReceivedAt: now, Encoding: "identity", Data: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	saved, err := st.SaveParsed(ctx, ing.ID, reps)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, s := range saved {
		ids = append(ids, s.ReportID)
	}
	if err := rollup.New(st, nil, testenv.Logger()).Apply(ctx, ids); err != nil {
		t.Fatal(err)
	}
}

func report(org, domain string, day time.Time, ip string, count int64) store.Parsed {
	return store.Parsed{Header: &dmarc.Report{OrgName: org, ReportID: fmt.Sprint(org, day.Unix(), domain), DateBegin: day, DateEnd: day.Add(24*time.Hour - time.Second),
		Policy: dmarc.Policy{Domain: domain, P: "none"}},
		Records: []dmarc.Record{{SourceIP: netip.MustParseAddr(ip), Count: count, Disposition: "none", DKIM: "pass", SPF: "fail", HeaderFrom: domain}}}
}

type bundle struct {
	e      *echo.Echo
	svc    *digest.Service
	st     *store.Store
	q      *queue
	smtp   *smtpServer
	creds  map[string]string
	viewer auth.User
}

func setup(t *testing.T, b testenv.Backend) bundle {
	st := b.Store(t)
	day := time.Date(2024, 6, 18, 0, 0, 0, 0, time.UTC) // in the last complete week
	save(t, st, []store.Parsed{
		report("google.com", "acme.example", day, "192.0.2.1", 120),
		report("<b>Evil</b>\r\nBcc: x@evil.example", "acme.example", day.AddDate(0, 0, 1), "192.0.2.2", 30),
		report("google.com", "other.example", day, "198.51.100.7", 999),
		report("google.com", "acme.example", day.AddDate(0, 0, -30), "192.0.2.3", 5000), // May: not in the week
	})
	be, port := startSMTP(t)
	opt := b.Redis(t, redisDB)
	rdb := redis.NewClient(&redis.Options{Addr: opt.Addr, Password: opt.Password, DB: opt.DB})
	t.Cleanup(func() { rdb.Close() })
	lim := ratelimit.New(rdb, fmt.Sprintf("digest:%d:", seq.Add(1)))
	as, err := auth.New(st.DB(), auth.Config{Secret: []byte("digest-test-secret-of-at-least-32-bytes!"), Params: auth.Params{Memory: 1024, Time: 1, Threads: 1}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	clock := func() time.Time { return now }
	an := analytics.New(analytics.Deps{Store: st, Log: testenv.Logger(), Now: clock})
	exp := export.New(export.Deps{Store: st, Analytics: an, Dir: t.TempDir(), Log: testenv.Logger(), Now: clock})
	q := &queue{}
	svc := digest.New(digest.Deps{Store: st, Export: exp, Queue: q, Log: testenv.Logger(), Now: clock,
		SMTP: notify.SMTPConfig{Host: "127.0.0.1", Port: port, From: "vigil@example.com", TLS: "none"}})
	e := httpapi.New(httpapi.Deps{Store: st, Analytics: an, Export: exp, Digest: svc, Auth: as, Limiter: lim, Log: testenv.Logger(), TempDir: t.TempDir()})
	bd := bundle{e: e, svc: svc, st: st, q: q, smtp: be, creds: map[string]string{}}
	for email, role := range map[string]auth.Role{"viewer@example.com": auth.Viewer, "other@example.com": auth.Viewer, "admin@example.com": auth.Admin} {
		u, err := as.CreateUser(context.Background(), auth.NewUser{Email: email, Password: "correct horse battery staple", Role: role, Name: email})
		if err != nil {
			t.Fatal(err)
		}
		if email == "viewer@example.com" {
			bd.viewer = u
		}
		tok, _, err := as.Login(context.Background(), email, "correct horse battery staple", auth.Meta{IP: "127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		bd.creds[email] = "Bearer " + tok.AccessToken
	}
	return bd
}

var contract = sync.OnceValues(func() (*apicontract.Validator, error) {
	spec, err := httpapi.Spec()
	if err != nil {
		return nil, err
	}
	return apicontract.New(spec)
})

func (bd bundle) do(t *testing.T, who, method, path string, body any) *httptest.ResponseRecorder {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req := httptest.NewRequest(method, path, r)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if who != "" {
		req.Header.Set("Authorization", bd.creds[who])
	}
	rec := httptest.NewRecorder()
	bd.e.ServeHTTP(rec, req)
	v, err := contract()
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Check(req, rec.Code, rec.Header(), rec.Body.Bytes()); err != nil {
		t.Errorf("contract: %s %s: %v", method, path, err)
	}
	return rec
}

// TestSubscriptions: a viewer subscribes (to their own address only), lists and
// unsubscribes; others cannot see or delete it; an admin may subscribe any address.
func TestSubscriptions(t *testing.T) {
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		bd := setup(t, b)
		if r := bd.do(t, "", http.MethodPost, "/api/digests", map[string]any{"frequency": "weekly"}); r.Code != http.StatusUnauthorized {
			t.Errorf("anonymous subscribe: %d", r.Code)
		}
		for _, bad := range []map[string]any{{"frequency": "daily"}, {"frequency": "weekly", "formats": []string{"docx"}},
			{"frequency": "weekly", "domains": []string{"a b"}}, {"frequency": "weekly", "email": "x@y\r\nBcc: z@evil"}, {"frequency": "weekly", "colour": 1}} {
			if r := bd.do(t, "viewer@example.com", http.MethodPost, "/api/digests", bad); r.Code != http.StatusBadRequest {
				t.Errorf("%v: %d %s", bad, r.Code, r.Body.String())
			}
		}
		if r := bd.do(t, "viewer@example.com", http.MethodPost, "/api/digests", map[string]any{"frequency": "weekly", "email": "boss@example.com"}); r.Code != http.StatusForbidden {
			t.Errorf("a viewer subscribing another address: %d", r.Code)
		}
		r := bd.do(t, "viewer@example.com", http.MethodPost, "/api/digests", map[string]any{"frequency": "weekly", "domains": []string{"ACME.example."}, "formats": []string{"xlsx", "pdf"}})
		if r.Code != http.StatusCreated {
			t.Fatalf("subscribe: %d %s", r.Code, r.Body.String())
		}
		var sub digest.View
		_ = json.Unmarshal(r.Body.Bytes(), &sub)
		if sub.Email != "viewer@example.com" || sub.Domains[0] != "acme.example" || len(sub.Formats) != 2 || !sub.NextPeriodStart.Equal(time.Date(2024, 6, 24, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("subscription %+v", sub)
		}
		if r := bd.do(t, "admin@example.com", http.MethodPost, "/api/digests", map[string]any{"frequency": "monthly", "email": "boss@example.com"}); r.Code != http.StatusCreated {
			t.Errorf("admin subscribing another address: %d", r.Code)
		}
		var l struct {
			Items []digest.View `json:"items"`
		}
		_ = json.Unmarshal(bd.do(t, "other@example.com", http.MethodGet, "/api/digests", nil).Body.Bytes(), &l)
		if len(l.Items) != 0 {
			t.Errorf("another viewer sees %d subscriptions", len(l.Items))
		}
		_ = json.Unmarshal(bd.do(t, "admin@example.com", http.MethodGet, "/api/digests", nil).Body.Bytes(), &l)
		if len(l.Items) != 2 {
			t.Errorf("admin sees %d subscriptions, want 2", len(l.Items))
		}
		path := fmt.Sprintf("/api/digests/%d", sub.ID)
		if r := bd.do(t, "other@example.com", http.MethodDelete, path, nil); r.Code != http.StatusNotFound {
			t.Errorf("another viewer deletes it: %d", r.Code)
		}
		if r := bd.do(t, "viewer@example.com", http.MethodDelete, path, nil); r.Code != http.StatusNoContent {
			t.Errorf("unsubscribe: %d", r.Code)
		}
		_ = json.Unmarshal(bd.do(t, "viewer@example.com", http.MethodGet, "/api/digests", nil).Body.Bytes(), &l)
		if len(l.Items) != 0 {
			t.Errorf("still subscribed: %+v", l.Items)
		}
	})
}

// part is one leaf of a MIME message.
type part struct {
	typ, name string
	body      []byte
}

func leaves(t *testing.T, h map[string][]string, body io.Reader) []part {
	ct := ""
	if v := h["Content-Type"]; len(v) > 0 {
		ct = v[0]
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		t.Fatalf("content type %q: %v", ct, err)
	}
	if strings.HasPrefix(mt, "multipart/") {
		var out []part
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err == io.EOF {
				return out
			}
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, leaves(t, p.Header, p)...)
		}
	}
	raw, _ := io.ReadAll(body)
	enc := ""
	if v := h["Content-Transfer-Encoding"]; len(v) > 0 {
		enc = strings.ToLower(v[0])
	}
	if enc == "base64" {
		dec, err := io.ReadAll(base64.NewDecoder(base64.StdEncoding, bytes.NewReader(raw)))
		if err != nil {
			t.Fatal(err)
		}
		raw = dec
	}
	name := ""
	if cd := h["Content-Disposition"]; len(cd) > 0 {
		_, p, _ := mime.ParseMediaType(cd[0])
		name = p["filename"]
	}
	return []part{{typ: mt, name: name, body: raw}}
}

// TestDigestDelivered: the dispatch enqueues the last complete week's digest; the send task
// mails it through a real SMTP server with a text and an HTML part and the PDF and XLSX
// attached (re-opened); the same period is not sent twice, and another dispatch enqueues
// nothing for it.
func TestDigestDelivered(t *testing.T) {
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		bd := setup(t, b)
		r := bd.do(t, "viewer@example.com", http.MethodPost, "/api/digests", map[string]any{"frequency": "weekly", "domains": []string{"acme.example"}, "formats": []string{"pdf", "xlsx"}})
		if r.Code != http.StatusCreated {
			t.Fatalf("subscribe: %d %s", r.Code, r.Body.String())
		}
		ctx := context.Background()
		if err := bd.svc.HandleDispatch(ctx, asynq.NewTask(tasks.TypeDigestDispatch, nil)); err != nil {
			t.Fatal(err)
		}
		if len(bd.q.tasks) != 1 {
			t.Fatalf("dispatch enqueued %d tasks", len(bd.q.tasks))
		}
		task := bd.q.tasks[0]
		var p tasks.DigestSendPayload
		_ = json.Unmarshal(task.Payload(), &p)
		if !p.Period.Equal(time.Date(2024, 6, 17, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("period %v, want the week from 2024-06-17", p.Period)
		}
		for range 2 { // a redelivered task sends nothing more
			if err := bd.svc.HandleSend(ctx, task); err != nil {
				t.Fatal(err)
			}
		}
		bd.smtp.mu.Lock()
		msgs, to := bd.smtp.msgs, bd.smtp.to
		bd.smtp.mu.Unlock()
		if len(msgs) != 1 || len(to) != 1 || to[0] != "viewer@example.com" {
			t.Fatalf("%d messages to %v", len(msgs), to)
		}
		m, err := mail.ReadMessage(strings.NewReader(msgs[0]))
		if err != nil {
			t.Fatal(err)
		}
		subj, _ := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
		if !strings.Contains(subj, "weekly") || !strings.Contains(subj, "acme.example") || !strings.Contains(subj, "2024-06-17 to 2024-06-23") {
			t.Errorf("subject %q", subj)
		}
		if m.Header.Get("Bcc") != "" {
			t.Error("a Bcc header got in")
		}
		parts := leaves(t, m.Header, m.Body)
		got := map[string]part{}
		for _, p := range parts {
			got[p.typ] = p
		}
		txt, html := string(got["text/plain"].body), string(got["text/html"].body)
		if !strings.Contains(txt, "Messages: 150") || !strings.Contains(txt, "192.0.2.1") {
			t.Errorf("text part lacks the week's totals (150 messages) or top source:\n%s", txt)
		}
		if strings.Contains(txt, "5150") || strings.Contains(txt, "other.example") {
			t.Errorf("the digest holds data outside its period or domains:\n%s", txt)
		}
		if !strings.Contains(html, "150") || strings.Contains(html, "<b>Evil") {
			t.Errorf("HTML part wrong or unescaped:\n%s", html)
		}
		pdf, xlsx := got[export.TypePDF], got[export.TypeXLSX]
		if !bytes.HasPrefix(pdf.body, []byte("%PDF-")) || !strings.HasSuffix(pdf.name, ".pdf") {
			t.Errorf("PDF attachment %q: %q…", pdf.name, pdf.body[:min(8, len(pdf.body))])
		}
		x, err := excelize.OpenReader(bytes.NewReader(xlsx.body))
		if err != nil {
			t.Fatalf("XLSX attachment %q: %v", xlsx.name, err)
		}
		defer x.Close()
		rows, err := x.GetRows("records")
		if err != nil || len(rows) != 3 {
			t.Errorf("XLSX records sheet: %d rows (%v), want a header and the week's 2 records", len(rows), err)
		}
		bd.q.tasks = nil
		if err := bd.svc.HandleDispatch(ctx, asynq.NewTask(tasks.TypeDigestDispatch, nil)); err != nil || len(bd.q.tasks) != 0 {
			t.Errorf("a sent period was enqueued again: %d (%v)", len(bd.q.tasks), err)
		}
	})
}

// TestPeriod pins the period arithmetic.
func TestPeriod(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		freq       string
		now        time.Time
		start, end string
	}{
		{"weekly", time.Date(2024, 6, 26, 10, 0, 0, 0, time.UTC), "2024-06-17", "2024-06-24"},
		{"weekly", time.Date(2024, 6, 24, 0, 0, 0, 0, time.UTC), "2024-06-17", "2024-06-24"},
		{"weekly", time.Date(2024, 6, 23, 23, 59, 0, 0, time.UTC), "2024-06-10", "2024-06-17"},
		{"monthly", time.Date(2024, 6, 26, 0, 0, 0, 0, time.UTC), "2024-05-01", "2024-06-01"},
		{"monthly", time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), "2023-12-01", "2024-01-01"},
	} {
		s, e := digest.Period(c.freq, c.now)
		if s.Format("2006-01-02") != c.start || e.Format("2006-01-02") != c.end {
			t.Errorf("%s at %v: %v–%v, want %s–%s", c.freq, c.now, s, e, c.start, c.end)
		}
	}
}
