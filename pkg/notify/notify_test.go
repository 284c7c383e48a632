package notify

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/hibiken/asynq"

	"github.com/vigilhq/vigil/pkg/alerting"
	"github.com/vigilhq/vigil/pkg/outbound"
	"github.com/vigilhq/vigil/pkg/secretbox"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
	"github.com/vigilhq/vigil/tasks"
)

// loopback allows the test receivers, which listen on 127.0.0.1.
var loopback = &outbound.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, Timeout: 500 * time.Millisecond}

type bundle struct {
	st     *store.Store
	alerts *alerting.Service
	n      *Service
}

func setup(t testing.TB, be testenv.Backend, p *outbound.Policy, smtpCfg SMTPConfig) bundle {
	t.Helper()
	st := be.Store(t)
	key, _ := secretbox.NewKey()
	raw, _ := secretbox.ParseKey(key)
	keys, err := secretbox.New(raw)
	if err != nil {
		t.Fatal(err)
	}
	al := alerting.New(alerting.Deps{Store: st, Log: testenv.Logger()})
	n := New(Deps{Store: st, Alerts: al, Keys: keys, Policy: p, SMTP: smtpCfg, Log: testenv.Logger(), OnFirstChannel: al.AdoptDefaults})
	return bundle{st: st, alerts: al, n: n}
}

// alert inserts an open alert with a pending delivery to channel ch and returns its id.
func (b bundle) alert(t *testing.T, ch int64) int64 {
	t.Helper()
	db := b.st.DB()
	if err := db.Exec(`INSERT INTO alerts (type, severity, domain, status, fingerprint, title, detail, data, created_at, note)
		VALUES ('failure_rate', 'critical', 'example.org', 'open', 'fp', 'DMARC failure rate 12.5% for <example.org>', 'Detail & more', '{}', 1710509400, '')`).Error; err != nil {
		t.Fatal(err)
	}
	var id int64
	db.Raw("SELECT MAX(id) FROM alerts").Scan(&id)
	if err := db.Exec("INSERT INTO alert_deliveries (alert_id, channel_id, status, attempts, last_error, updated_at) VALUES (?, ?, 'pending', 0, '', 0)", id, ch).Error; err != nil {
		t.Fatal(err)
	}
	return id
}

func (b bundle) delivery(t *testing.T, alertID, ch int64) (status string, attempts int, lastErr string) {
	t.Helper()
	var d struct {
		Status    string
		Attempts  int
		LastError string
	}
	if err := b.st.DB().Table("alert_deliveries").Where("alert_id = ? AND channel_id = ?", alertID, ch).Take(&d).Error; err != nil {
		t.Fatal(err)
	}
	return d.Status, d.Attempts, d.LastError
}

// receiver records what it is sent and answers with status(n) for the n-th request (from 1).
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	bodies [][]byte
	hdrs   []http.Header
	hits   atomic.Int32
}

func newReceiver(t *testing.T, status func(n int32) int) *receiver {
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		n := r.hits.Add(1)
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.bodies, r.hdrs = append(r.bodies, b), append(r.hdrs, req.Header.Clone())
		r.mu.Unlock()
		code := status(n)
		if code == 0 { // hang past the client's timeout
			time.Sleep(900 * time.Millisecond)
			code = 200
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(r.Close)
	return r
}

func ok200(int32) int { return 200 }

func jsonPath(t *testing.T, v any, path ...any) any {
	t.Helper()
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("%v: not an object at %q", v, k)
			}
			v = m[k]
		case int:
			a, ok := v.([]any)
			if !ok || len(a) <= k {
				t.Fatalf("%v: no element %d", v, k)
			}
			v = a[k]
		}
	}
	return v
}

// TestChannelPayloads delivers to a loopback receiver per kind and checks the payload each
// service expects.
func TestChannelPayloads(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, be testenv.Backend) {
		b := setup(t, be, loopback, SMTPConfig{})
		ctx := context.Background()
		const title = "DMARC failure rate 12.5% for <example.org>"
		cases := []struct {
			kind  string
			check func(t *testing.T, body map[string]any, h http.Header, raw []byte)
		}{
			{KindTeams, func(t *testing.T, m map[string]any, _ http.Header, _ []byte) {
				if m["type"] != "message" || jsonPath(t, m, "attachments", 0, "contentType") != "application/vnd.microsoft.card.adaptive" {
					t.Errorf("teams envelope %v", m)
				}
				card := jsonPath(t, m, "attachments", 0, "content")
				if jsonPath(t, card, "type") != "AdaptiveCard" || jsonPath(t, card, "version") != "1.4" ||
					!strings.Contains(jsonPath(t, card, "$schema").(string), "adaptive-card.json") {
					t.Errorf("card %v", card)
				}
				if jsonPath(t, card, "body", 0, "type") != "TextBlock" || jsonPath(t, card, "body", 0, "text") != title || jsonPath(t, card, "body", 0, "color") != "Attention" {
					t.Errorf("card title %v", jsonPath(t, card, "body", 0))
				}
				if jsonPath(t, card, "body", 2, "type") != "FactSet" || jsonPath(t, card, "body", 2, "facts", 0, "title") != "Domain" || jsonPath(t, card, "body", 2, "facts", 0, "value") != "example.org" {
					t.Errorf("facts %v", jsonPath(t, card, "body", 2))
				}
			}},
			{KindSlack, func(t *testing.T, m map[string]any, _ http.Header, _ []byte) {
				if jsonPath(t, m, "blocks", 0, "type") != "header" || jsonPath(t, m, "blocks", 0, "text", "type") != "plain_text" || jsonPath(t, m, "blocks", 0, "text", "text") != title {
					t.Errorf("header %v", jsonPath(t, m, "blocks", 0))
				}
				if jsonPath(t, m, "blocks", 1, "type") != "section" || jsonPath(t, m, "blocks", 1, "text", "text") != "Detail &amp; more" ||
					jsonPath(t, m, "blocks", 1, "fields", 0, "text") != "*Domain*\nexample.org" {
					t.Errorf("section %v", jsonPath(t, m, "blocks", 1))
				}
				if !strings.Contains(m["text"].(string), "critical") {
					t.Errorf("fallback text %v", m["text"])
				}
			}},
			{KindDiscord, func(t *testing.T, m map[string]any, _ http.Header, _ []byte) {
				e := jsonPath(t, m, "embeds", 0)
				if jsonPath(t, e, "title") != title || jsonPath(t, e, "description") != "Detail & more" || jsonPath(t, e, "color") != float64(0xD13438) ||
					jsonPath(t, e, "timestamp") != "2024-03-15T13:30:00Z" || jsonPath(t, e, "fields", 1, "name") != "Severity" || jsonPath(t, e, "fields", 1, "value") != "critical" {
					t.Errorf("embed %v", e)
				}
				if len(jsonPath(t, m, "allowed_mentions", "parse").([]any)) != 0 {
					t.Errorf("mentions allowed: %v", m["allowed_mentions"])
				}
			}},
			{KindWebhook, func(t *testing.T, m map[string]any, h http.Header, raw []byte) {
				ts := h.Get(HeaderTimestamp)
				var n int64
				for _, c := range ts {
					n = n*10 + int64(c-'0')
				}
				if h.Get(HeaderSignature) != Sign("0123456789abcdef-secret", n, raw) {
					t.Errorf("signature %q does not verify with the secret", h.Get(HeaderSignature))
				}
				if h.Get(HeaderSignature) == Sign("another secret 0123", n, raw) {
					t.Error("signature verifies with another secret")
				}
				if m["event_id"] != h.Get(HeaderEventID) || m["event"] != "alert.open" || jsonPath(t, m, "alert", "title") != title || jsonPath(t, m, "alert", "domain") != "example.org" {
					t.Errorf("webhook body %v headers %v", m, h)
				}
			}},
		}
		for _, tc := range cases {
			t.Run(tc.kind, func(t *testing.T) {
				rc := newReceiver(t, ok200)
				cfg := map[string]any{"url": rc.URL + "/hook?token=s3cret"}
				if tc.kind == KindWebhook {
					// A generic webhook's URL is a public setting (DESIGN.md); its secret is not.
					cfg = map[string]any{"url": rc.URL + "/hook", "secret": "0123456789abcdef-secret"}
				}
				ch, err := b.n.Create(ctx, ChannelInput{Name: ptr(tc.kind), Kind: ptr(tc.kind), Config: cfg})
				if err != nil {
					t.Fatal(err)
				}
				// Secrets are write-only.
				view, _ := json.Marshal(ch)
				if strings.Contains(string(view), "s3cret") || strings.Contains(string(view), "abcdef-secret") || len(ch.SecretsSet) != 1 {
					t.Errorf("channel view shows a secret or misses its name: %s", view)
				}
				id := b.alert(t, ch.ID)
				if err := b.n.Deliver(ctx, id, ch.ID); err != nil {
					t.Fatal(err)
				}
				if st, att, _ := b.delivery(t, id, ch.ID); st != "sent" || att != 1 {
					t.Fatalf("delivery %s after %d attempts", st, att)
				}
				// Delivered once: running the task again sends nothing.
				if err := b.n.Deliver(ctx, id, ch.ID); err != nil || rc.hits.Load() != 1 {
					t.Fatalf("repeat delivery: %v, %d requests", err, rc.hits.Load())
				}
				var m map[string]any
				if err := json.Unmarshal(rc.bodies[0], &m); err != nil {
					t.Fatal(err)
				}
				if rc.hdrs[0].Get("Content-Type") != "application/json" {
					t.Errorf("content type %q", rc.hdrs[0].Get("Content-Type"))
				}
				tc.check(t, m, rc.hdrs[0], rc.bodies[0])
				// The test action reaches the same receiver.
				if err := b.n.Test(ctx, ch.ID); err != nil || rc.hits.Load() != 2 {
					t.Fatalf("test send: %v, %d requests", err, rc.hits.Load())
				}
			})
		}
		// The first channel turned the default rules on with it.
		rules, _ := b.alerts.ListRules(ctx)
		on := 0
		for _, r := range rules {
			if r.Enabled && r.IsDefault {
				on++
			}
		}
		if on != 6 {
			t.Errorf("%d default rules on after the first channel, want 6", on)
		}
	})
}

func ptr[T any](v T) *T { return &v }

// TestRetriesThenFailed runs deliveries through a real asynq server: a receiver answering 500,
// one too slow, a refused connection are retried and finally recorded failed; 400 fails at
// once; one that recovers is sent.
func TestRetriesThenFailed(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, be testenv.Backend) {
		b := setup(t, be, loopback, SMTPConfig{})
		ctx := context.Background()
		opt := be.Redis(t, 25)
		srv := asynq.NewServer(opt, asynq.Config{Concurrency: 10, Queues: tasks.Queues(), LogLevel: asynq.FatalLevel,
			RetryDelayFunc: func(int, error, *asynq.Task) time.Duration { return 50 * time.Millisecond }})
		mux := asynq.NewServeMux()
		mux.HandleFunc(tasks.TypeAlertDeliver, b.n.HandleDeliver)
		if err := srv.Start(mux); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Shutdown)
		client := asynq.NewClient(opt)
		t.Cleanup(func() { client.Close() })

		dead, _ := net.Listen("tcp", "127.0.0.1:0")
		deadURL := "http://" + dead.Addr().String() + "/"
		dead.Close()
		cases := []struct {
			name     string
			url      string
			rc       *receiver
			status   string
			attempts int
			errHas   string
		}{
			{name: "500", rc: newReceiver(t, func(int32) int { return 500 }), status: "failed", attempts: tasks.AlertDeliverRetries + 1, errHas: "500"},
			{name: "timeout", rc: newReceiver(t, func(int32) int { return 0 }), status: "failed", attempts: tasks.AlertDeliverRetries + 1, errHas: "Timeout"},
			{name: "refused", url: deadURL, status: "failed", attempts: tasks.AlertDeliverRetries + 1, errHas: "refused"},
			{name: "400", rc: newReceiver(t, func(int32) int { return 400 }), status: "failed", attempts: 1, errHas: "400"},
			{name: "recovers", rc: newReceiver(t, func(n int32) int { return map[bool]int{true: 503, false: 204}[n < 3] }), status: "sent", attempts: 3},
		}
		type job struct{ alert, ch int64 }
		jobs := make([]job, len(cases))
		for i, tc := range cases {
			u := tc.url
			if tc.rc != nil {
				u = tc.rc.URL
			}
			ch, err := b.n.Create(ctx, ChannelInput{Name: ptr(tc.name), Kind: ptr(KindSlack), Config: map[string]any{"url": u}})
			if err != nil {
				t.Fatal(err)
			}
			jobs[i] = job{b.alert(t, ch.ID), ch.ID}
			task, _ := tasks.NewAlertDeliverTask(jobs[i].alert, ch.ID)
			if _, err := client.Enqueue(task); err != nil {
				t.Fatal(err)
			}
		}
		deadline := time.Now().Add(60 * time.Second)
		for i, tc := range cases {
			for {
				st, att, lastErr := b.delivery(t, jobs[i].alert, jobs[i].ch)
				if st != "pending" {
					if st != tc.status || att != tc.attempts || !strings.Contains(lastErr, tc.errHas) {
						t.Errorf("%s: %s after %d attempts (%q), want %s after %d mentioning %q", tc.name, st, att, lastErr, tc.status, tc.attempts, tc.errHas)
					}
					if tc.rc != nil && int(tc.rc.hits.Load()) != tc.attempts {
						t.Errorf("%s: receiver got %d requests, want %d", tc.name, tc.rc.hits.Load(), tc.attempts)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: still pending after %d attempts", tc.name, att)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	})
}

// TestSSRF: forbidden destinations are refused when saved and, for a URL saved under an
// allowance that no longer holds (as with DNS rebinding), when connecting; redirects are
// not followed.
func TestSSRF(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	strict := setup(t, testenv.Backends()[0], &outbound.Policy{}, SMTPConfig{})
	for _, u := range []string{"http://127.0.0.1:9/x", "http://[::1]/x", "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/",
		"http://192.168.1.10/", "http://localhost:8080/", "http://metadata.google.internal/computeMetadata/v1/", "http://0.0.0.0/",
		"http://[fe80::1]/", "http://100.100.100.200/", "file:///etc/passwd", "http://user:pw@example.com/"} {
		_, err := strict.n.Create(ctx, ChannelInput{Name: ptr(u), Kind: ptr(KindWebhook), Config: map[string]any{"url": u, "secret": "0123456789abcdef"}})
		if !errors.Is(err, alerting.ErrInvalid) {
			t.Errorf("%s: got %v, want refused when saved", u, err)
		}
	}
	// Saved while loopback was allowed; delivered under the strict policy: refused at connect.
	rc := newReceiver(t, ok200)
	lenient := setup(t, testenv.Backends()[0], loopback, SMTPConfig{})
	ch, err := lenient.n.Create(ctx, ChannelInput{Name: ptr("l"), Kind: ptr(KindSlack), Config: map[string]any{"url": strings.Replace(rc.URL, "127.0.0.1", "localhost", 1)}})
	if err == nil {
		t.Fatal("localhost by name saved under an address allowance")
	}
	ch, err = lenient.n.Create(ctx, ChannelInput{Name: ptr("l"), Kind: ptr(KindSlack), Config: map[string]any{"url": rc.URL}})
	if err != nil {
		t.Fatal(err)
	}
	later := New(Deps{Store: lenient.st, Alerts: lenient.alerts, Keys: lenient.n.keys, Policy: &outbound.Policy{}, Log: testenv.Logger()})
	id := lenient.alert(t, ch.ID)
	if err := later.Deliver(ctx, id, ch.ID); !errors.Is(err, asynq.SkipRetry) {
		t.Errorf("refused delivery should not be retried: %v", err)
	}
	if st, _, lastErr := lenient.delivery(t, id, ch.ID); st != "failed" || !strings.Contains(lastErr, "loopback") || strings.Contains(lastErr, rc.URL) {
		t.Errorf("delivery %s %q: want failed naming the loopback rule, not the URL", st, lastErr)
	}
	if rc.hits.Load() != 0 {
		t.Errorf("refused receiver got %d requests", rc.hits.Load())
	}
	// A redirect (to the allowed receiver itself) is not followed.
	redir := newReceiver(t, func(int32) int { return 302 })
	rch, err := lenient.n.Create(ctx, ChannelInput{Name: ptr("r"), Kind: ptr(KindDiscord), Config: map[string]any{"url": redir.URL}})
	if err != nil {
		t.Fatal(err)
	}
	rid := lenient.alert(t, rch.ID)
	_ = lenient.n.Deliver(ctx, rid, rch.ID)
	if st, _, lastErr := lenient.delivery(t, rid, rch.ID); st != "failed" || !strings.Contains(lastErr, "302") {
		t.Errorf("redirect: %s %q", st, lastErr)
	}
	if redir.hits.Load() != 1 {
		t.Errorf("redirecting receiver got %d requests", redir.hits.Load())
	}
}

// smtpBackend is a real SMTP server in the test process, keeping what it receives.
type smtpBackend struct {
	mu    sync.Mutex
	msgs  []string
	rcpts []string
	auth  []string
}

type smtpSession struct{ b *smtpBackend }

func (b *smtpBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return &smtpSession{b}, nil }
func (s *smtpSession) AuthMechanisms() []string                    { return []string{sasl.Plain} }
func (s *smtpSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		s.b.mu.Lock()
		defer s.b.mu.Unlock()
		s.b.auth = append(s.b.auth, user+":"+pass)
		if pass != "mail-pass" {
			return errors.New("bad password")
		}
		return nil
	}), nil
}
func (s *smtpSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.b.rcpts = append(s.b.rcpts, to)
	return nil
}
func (s *smtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.b.msgs = append(s.b.msgs, string(b))
	return err
}
func (s *smtpSession) Reset()        {}
func (s *smtpSession) Logout() error { return nil }

func selfSigned(t *testing.T) tls.Certificate {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
}

// TestEmail sends through a real SMTP server with STARTTLS and PLAIN auth and checks both
// parts, the headers, and that the HTML part escapes what came from reports.
func TestEmail(t *testing.T) {
	t.Parallel()
	be := &smtpBackend{}
	srv := smtp.NewServer(be)
	srv.Domain = "localhost"
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	port := ln.Addr().(*net.TCPAddr).Port
	b := setup(t, testenv.Backends()[0], loopback, SMTPConfig{Host: "127.0.0.1", Port: port, Username: "vigil", Password: "mail-pass",
		From: "vigil@example.com", TLS: "starttls", InsecureSkipVerify: true})
	ctx := context.Background()
	ch, err := b.n.Create(ctx, ChannelInput{Name: ptr("mail"), Kind: ptr(KindEmail), Config: map[string]any{"to": []any{"postmaster@example.org", "ops@example.org"}, "subject_prefix": "[Vigil]"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []map[string]any{{"to": []any{}}, {"to": []any{"not an address"}}, {"to": []any{"a@b.c"}, "subject_prefix": "x\r\nBcc: evil@example.com"}, {"url": "http://x"}} {
		if _, err := b.n.Create(ctx, ChannelInput{Name: ptr("bad"), Kind: ptr(KindEmail), Config: bad}); !errors.Is(err, alerting.ErrInvalid) {
			t.Errorf("%v: got %v", bad, err)
		}
	}
	id := b.alert(t, ch.ID)
	if err := b.n.Deliver(ctx, id, ch.ID); err != nil {
		t.Fatal(err)
	}
	if st, _, _ := b.delivery(t, id, ch.ID); st != "sent" {
		t.Fatalf("delivery %s", st)
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	if len(be.msgs) != 1 || len(be.rcpts) != 2 || len(be.auth) != 1 || be.auth[0] != "vigil:mail-pass" {
		t.Fatalf("server got %d messages, recipients %v, auth %v", len(be.msgs), be.rcpts, be.auth)
	}
	m := be.msgs[0]
	for _, want := range []string{"From: <vigil@example.com>", "multipart/alternative", "text/plain", "text/html",
		"[Vigil] [critical] DMARC failure rate 12.5% for <example.org>", "&lt;example.org&gt;", "Detail &amp; more"} {
		if !strings.Contains(strings.ReplaceAll(m, "=\r\n", ""), want) {
			t.Errorf("message lacks %q:\n%s", want, m)
		}
	}
	if strings.Contains(m, "<h2>DMARC failure rate 12.5% for <example.org>") {
		t.Error("HTML part carries unescaped report text")
	}
	// A wrong password is an error the task records (and retries).
	bad := New(Deps{Store: b.st, Alerts: b.alerts, Keys: b.n.keys, Policy: loopback, Log: testenv.Logger(),
		SMTP: SMTPConfig{Host: "127.0.0.1", Port: port, Username: "vigil", Password: "wrong", From: "vigil@example.com", TLS: "starttls", InsecureSkipVerify: true}})
	id2 := b.alert(t, ch.ID)
	be.mu.Unlock()
	err = bad.Deliver(ctx, id2, ch.ID)
	be.mu.Lock()
	if err == nil || errors.Is(err, asynq.SkipRetry) {
		t.Errorf("wrong SMTP password: %v, want a retryable error", err)
	}
}

// smtpServer starts a real SMTP server on loopback (STARTTLS offered, or implicit TLS) and
// returns its port.
func smtpServer(t *testing.T, be *smtpBackend, implicitTLS bool) int {
	t.Helper()
	srv := smtp.NewServer(be)
	srv.Domain = "localhost"
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}
	var ln net.Listener
	var err error
	if implicitTLS {
		ln, err = tls.Listen("tcp", "127.0.0.1:0", srv.TLSConfig)
	} else {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// TestEmailChannelServer: an e-mail channel with its own SMTP server (STARTTLS or implicit
// TLS, PLAIN auth, its own sender) sends there rather than through the shared VIGIL_SMTP_*
// server; its password is sealed and never shown; its host goes through the outbound policy
// when saved and when dialled.
func TestEmailChannelServer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	shared := &smtpBackend{}
	sharedPort := smtpServer(t, shared, false)
	sharedCfg := SMTPConfig{Host: "127.0.0.1", Port: sharedPort, From: "shared@example.com", TLS: "starttls", InsecureSkipVerify: true}
	b := setup(t, testenv.Backends()[0], loopback, sharedCfg)
	for _, mode := range []string{"starttls", "tls"} {
		t.Run(mode, func(t *testing.T) {
			own := &smtpBackend{}
			port := smtpServer(t, own, mode == "tls")
			ch, err := b.n.Create(ctx, ChannelInput{Name: ptr("own-" + mode), Kind: ptr(KindEmail), Config: map[string]any{
				"to": []any{"postmaster@example.org"}, "from": "Vigil <alerts@example.net>", "smtp_host": "127.0.0.1",
				"smtp_port": float64(port), "smtp_tls": mode, "smtp_username": "vigil", "smtp_password": "mail-pass"}})
			if err != nil {
				t.Fatal(err)
			}
			view, _ := json.Marshal(ch)
			if strings.Contains(string(view), "mail-pass") || len(ch.SecretsSet) != 1 || ch.SecretsSet[0] != "smtp_password" ||
				ch.Config["smtp_host"] != "127.0.0.1" || ch.Config["smtp_tls"] != mode {
				t.Errorf("channel view: %s", view)
			}
			id := b.alert(t, ch.ID)
			if err := b.n.Deliver(ctx, id, ch.ID); err != nil {
				t.Fatal(err)
			}
			if st, _, lastErr := b.delivery(t, id, ch.ID); st != "sent" {
				t.Fatalf("delivery %s %q", st, lastErr)
			}
			own.mu.Lock()
			defer own.mu.Unlock()
			if len(own.msgs) != 1 || len(own.auth) != 1 || own.auth[0] != "vigil:mail-pass" || len(own.rcpts) != 1 || own.rcpts[0] != "postmaster@example.org" {
				t.Fatalf("channel's server got %d messages, auth %v, recipients %v", len(own.msgs), own.auth, own.rcpts)
			}
			m := strings.ReplaceAll(own.msgs[0], "=\r\n", "")
			for _, want := range []string{`From: "Vigil" <alerts@example.net>`, "text/plain", "text/html", "Detail &amp; more"} {
				if !strings.Contains(m, want) {
					t.Errorf("message lacks %q:\n%s", want, m)
				}
			}
		})
	}
	shared.mu.Lock()
	if len(shared.msgs) != 0 {
		t.Errorf("the shared server got %d messages meant for channels with their own", len(shared.msgs))
	}
	shared.mu.Unlock()

	// A channel without smtp_host uses the shared server, with its own sender if it has one.
	ch, err := b.n.Create(ctx, ChannelInput{Name: ptr("shared"), Kind: ptr(KindEmail), Config: map[string]any{"to": []any{"ops@example.org"}, "from": "dmarc@example.net"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.n.Deliver(ctx, b.alert(t, ch.ID), ch.ID); err != nil {
		t.Fatal(err)
	}
	shared.mu.Lock()
	if len(shared.msgs) != 1 || !strings.Contains(shared.msgs[0], "From: <dmarc@example.net>") {
		t.Errorf("shared server got %d messages: %v", len(shared.msgs), shared.msgs)
	}
	shared.mu.Unlock()

	// Settings refused when saved.
	base := func(extra map[string]any) map[string]any {
		m := map[string]any{"to": []any{"a@example.org"}}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	strict := setup(t, testenv.Backends()[0], &outbound.Policy{}, SMTPConfig{})
	for _, tc := range []struct {
		svc     *Service
		cfg     map[string]any
		mention string
	}{
		{b.n, base(map[string]any{"smtp_port": float64(25)}), "smtp_host"},
		{b.n, base(map[string]any{"smtp_username": "u", "smtp_password": "p"}), "smtp_host"},
		{b.n, base(map[string]any{"smtp_host": "127.0.0.1", "smtp_tls": "ssl"}), "smtp_tls"},
		{b.n, base(map[string]any{"smtp_host": "127.0.0.1", "smtp_port": float64(70000)}), "smtp_port"},
		{b.n, base(map[string]any{"smtp_host": "127.0.0.1", "smtp_username": "u"}), "smtp_password"},
		{b.n, base(map[string]any{"smtp_host": "127.0.0.1", "smtp_tls": "none", "smtp_username": "u", "smtp_password": "p"}), "clear"},
		{b.n, base(map[string]any{"smtp_host": "smtp://mail.example.com:25"}), "smtp_host"},
		{b.n, base(map[string]any{"from": "not an address"}), "from"},
		{strict.n, base(map[string]any{"smtp_host": "127.0.0.1"}), "loopback"},
		{strict.n, base(map[string]any{"smtp_host": "169.254.169.254", "from": "a@example.net"}), "metadata"},
		{strict.n, base(map[string]any{"smtp_host": "10.0.0.1", "from": "a@example.net"}), "private"},
		{strict.n, base(map[string]any{"smtp_host": "localhost", "from": "a@example.net"}), "loopback"},
		{strict.n, base(map[string]any{"smtp_host": "mail.example.com"}), "from"},
	} {
		_, err := tc.svc.Create(ctx, ChannelInput{Name: ptr("bad"), Kind: ptr(KindEmail), Config: tc.cfg})
		if !errors.Is(err, alerting.ErrInvalid) || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("%v: got %v, want refused mentioning %q", tc.cfg, err, tc.mention)
		}
	}

	// Saved while loopback was allowed, sent under a policy that refuses it: refused when
	// dialled, not retried, the server never reached.
	own := &smtpBackend{}
	port := smtpServer(t, own, false)
	ch, err = b.n.Create(ctx, ChannelInput{Name: ptr("later refused"), Kind: ptr(KindEmail), Config: map[string]any{
		"to": []any{"a@example.org"}, "smtp_host": "127.0.0.1", "smtp_port": float64(port)}})
	if err != nil {
		t.Fatal(err)
	}
	later := New(Deps{Store: b.st, Alerts: b.alerts, Keys: b.n.keys, Policy: &outbound.Policy{}, SMTP: sharedCfg, Log: testenv.Logger()})
	id := b.alert(t, ch.ID)
	if err := later.Deliver(ctx, id, ch.ID); !errors.Is(err, asynq.SkipRetry) {
		t.Errorf("refused SMTP server: %v, want no retry", err)
	}
	if st, _, lastErr := b.delivery(t, id, ch.ID); st != "failed" || !strings.Contains(lastErr, "loopback") {
		t.Errorf("delivery %s %q: want failed naming the loopback rule", st, lastErr)
	}
	own.mu.Lock()
	if len(own.msgs) != 0 {
		t.Errorf("refused server got %d messages", len(own.msgs))
	}
	own.mu.Unlock()
}
