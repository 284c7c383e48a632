package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	gomail "github.com/wneessen/go-mail"

	"github.com/vigilhq/vigil/pkg/alerting"
	"github.com/vigilhq/vigil/pkg/outbound"
)

type (
	httpRequest  = http.Request
	httpResponse = http.Response
)

type httpClient struct{ c *http.Client }

func (h httpClient) Do(req *http.Request) (*http.Response, error) { return h.c.Do(req) }

// SMTPConfig is a mail server: the operator's (VIGIL_SMTP_*), which is exempt from the
// outbound policy as the env mailbox is, or an e-mail channel's own, dialled through it.
type SMTPConfig struct {
	Host     string
	Port     int
	Username string
	Password string
	From     string
	TLS      string // starttls (default), tls, none
	// InsecureSkipVerify is for tests against a server with a self-signed certificate.
	InsecureSkipVerify bool
	// RootCAs verify the server's certificate; nil: the system's roots.
	RootCAs *x509.CertPool
	// Dial opens the TCP connection; nil: a plain dialer. An e-mail channel's own server is
	// dialled with the outbound policy's.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// ErrPermanent marks a failure a retry cannot fix (the receiver refused the request as
// malformed or unauthorised, the policy refused the address, the channel is gone).
var ErrPermanent = errors.New("permanent")

// Signature headers of the generic webhook. The signature is HMAC-SHA256 with the channel's
// secret over "<timestamp>.<body>", hex, prefixed "sha256="; receivers recompute it, compare
// in constant time and reject timestamps older than a few minutes (replays) and event ids
// they have seen.
const (
	HeaderEventID   = "X-Vigil-Event-Id"
	HeaderTimestamp = "X-Vigil-Timestamp"
	HeaderSignature = "X-Vigil-Signature"
)

// Sign is the webhook signature of body at timestamp ts (Unix seconds).
func Sign(secret string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte("."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// send delivers a to one channel. eventID is stable across retries of the same delivery, so
// receivers can drop duplicates.
func (s *Service) send(ctx context.Context, kind string, st settings, a alerting.Alert, eventID string) error {
	switch kind {
	case KindTeams:
		return s.postJSON(ctx, st.URL, teamsCard(a), nil)
	case KindSlack:
		return s.postJSON(ctx, st.URL, slackBlocks(a), nil)
	case KindDiscord:
		return s.postJSON(ctx, st.URL, discordEmbed(a), nil)
	case KindWebhook:
		event := "alert." + a.Status
		if a.ID == 0 { // the "send test" action's sample
			event = "alert.test"
		}
		body, err := json.Marshal(webhookEvent{EventID: eventID, Event: event, SentAt: s.now().UTC(), Alert: a})
		if err != nil {
			return err
		}
		ts := s.now().Unix()
		return s.post(ctx, st.URL, body, map[string]string{HeaderEventID: eventID, HeaderTimestamp: strconv.FormatInt(ts, 10),
			HeaderSignature: Sign(st.Secret, ts, body)})
	case KindEmail:
		return s.sendMail(ctx, st, a)
	}
	return fmt.Errorf("%w: unknown channel kind %q", ErrPermanent, kind)
}

type webhookEvent struct {
	EventID string         `json:"event_id"`
	Event   string         `json:"event"`
	SentAt  time.Time      `json:"sent_at"`
	Alert   alerting.Alert `json:"alert"`
}

func (s *Service) postJSON(ctx context.Context, url string, v any, hdr map[string]string) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.post(ctx, url, body, hdr)
}

// post sends body and reads the answer: 2xx is delivered; 408, 429 and 5xx are worth a
// retry; other statuses are permanent. Errors name the status, never the body, which could
// carry whatever the far end wants to show us.
func (s *Service) post(ctx context.Context, url string, body []byte, hdr map[string]string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrPermanent, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Vigil-Alerts/1")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		if errors.Is(err, outbound.ErrRefused) || errors.Is(err, outbound.ErrRedirect) {
			return fmt.Errorf("%w: %v", ErrPermanent, redactURL(err, url))
		}
		return redactURL(err, url)
	}
	defer resp.Body.Close()
	outbound.ReadBody(resp.Body)
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return fmt.Errorf("%w: receiver answered %d (redirects are not followed)", ErrPermanent, resp.StatusCode)
	case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return fmt.Errorf("receiver answered %d", resp.StatusCode)
	}
	return fmt.Errorf("%w: receiver answered %d", ErrPermanent, resp.StatusCode)
}

// redactURL keeps a webhook URL (a credential for Teams, Slack and Discord) out of errors
// that are stored and shown.
func redactURL(err error, url string) error {
	msg := strings.ReplaceAll(err.Error(), url, "<channel url>")
	if i := strings.Index(url, "?"); i > 0 {
		msg = strings.ReplaceAll(msg, url[:i], "<channel url>")
	}
	if errors.Is(err, ErrPermanent) {
		return fmt.Errorf("%w: %s", ErrPermanent, strings.TrimPrefix(msg, ErrPermanent.Error()+": "))
	}
	return errors.New(msg)
}

func severityColor(sev string) (teams string, rgb int) {
	switch sev {
	case alerting.SeverityCritical:
		return "Attention", 0xD13438
	case alerting.SeverityWarning:
		return "Warning", 0xF2C744
	}
	return "Accent", 0x2F80ED
}

func facts(a alerting.Alert) [][2]string {
	return [][2]string{{"Domain", a.Domain}, {"Severity", a.Severity}, {"Type", a.Type}, {"Status", a.Status},
		{"Raised", a.CreatedAt.UTC().Format(time.RFC3339)}, {"Alert", "#" + strconv.FormatInt(a.ID, 10)}}
}

// clip cuts s to at most n bytes, on a character boundary, marking the cut with "…".
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := max(n-len("…"), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// teamsCard is the message a Teams Workflows webhook ("When a Teams webhook request is
// received" → "Post card in a chat or channel") expects: a message whose attachment is an
// Adaptive Card (schema 1.4, what Teams renders).
func teamsCard(a alerting.Alert) map[string]any {
	color, _ := severityColor(a.Severity)
	fs := []map[string]string{}
	for _, f := range facts(a) {
		fs = append(fs, map[string]string{"title": f[0], "value": f[1]})
	}
	return map[string]any{
		"type": "message",
		"attachments": []any{map[string]any{
			"contentType": "application/vnd.microsoft.card.adaptive",
			"contentUrl":  nil,
			"content": map[string]any{
				"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
				"type":    "AdaptiveCard",
				"version": "1.4",
				"body": []any{
					map[string]any{"type": "TextBlock", "size": "Large", "weight": "Bolder", "wrap": true, "color": color, "text": a.Title},
					map[string]any{"type": "TextBlock", "wrap": true, "text": a.Detail},
					map[string]any{"type": "FactSet", "facts": fs},
				},
				"msteams": map[string]any{"width": "Full"},
			},
		}},
	}
}

// slackEscaper escapes what Slack's mrkdwn treats as markup. Built once: a Replacer builds
// its tables on first use, which was a visible share of a delivery's CPU when built per call.
var slackEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

func slackEscape(s string) string { return slackEscaper.Replace(s) }

// slackBlocks is an incoming-webhook message in Block Kit, with text as the notification
// fallback.
func slackBlocks(a alerting.Alert) map[string]any {
	fields := []any{}
	for _, f := range facts(a)[:4] {
		fields = append(fields, map[string]any{"type": "mrkdwn", "text": "*" + f[0] + "*\n" + slackEscape(f[1])})
	}
	return map[string]any{
		"text": clip(fmt.Sprintf("[%s] %s", a.Severity, a.Title), 3000),
		"blocks": []any{
			map[string]any{"type": "header", "text": map[string]any{"type": "plain_text", "text": clip(a.Title, 150), "emoji": false}},
			map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": clip(slackEscape(a.Detail), 3000)}, "fields": fields},
			map[string]any{"type": "context", "elements": []any{map[string]any{"type": "mrkdwn",
				"text": fmt.Sprintf("Vigil alert #%d · %s", a.ID, a.CreatedAt.UTC().Format(time.RFC3339))}}},
		},
	}
}

// discordEmbed is a webhook message with one embed (limits: title 256, description 4096).
func discordEmbed(a alerting.Alert) map[string]any {
	_, rgb := severityColor(a.Severity)
	fields := []any{}
	for _, f := range facts(a)[:4] {
		fields = append(fields, map[string]any{"name": f[0], "value": clip(f[1], 1024), "inline": true})
	}
	return map[string]any{
		"username":         "Vigil",
		"allowed_mentions": map[string]any{"parse": []string{}},
		"embeds": []any{map[string]any{
			"title":       clip(a.Title, 256),
			"description": clip(a.Detail, 4096),
			"color":       rgb,
			"fields":      fields,
			"timestamp":   a.CreatedAt.UTC().Format(time.RFC3339),
			"footer":      map[string]any{"text": fmt.Sprintf("Vigil alert #%d", a.ID)},
		}},
	}
}

var mailHTML = template.Must(template.New("alert").Parse(`<!doctype html>
<html><body style="font-family:sans-serif">
<h2>{{.Title}}</h2>
<p>{{.Detail}}</p>
<table cellpadding="4">{{range .Facts}}<tr><th align="left">{{index . 0}}</th><td>{{index . 1}}</td></tr>{{end}}</table>
</body></html>`))

// mailBodies are the plain-text and HTML parts; the HTML template escapes everything, so a
// reporter's name cannot inject markup.
func mailBodies(a alerting.Alert) (string, string, error) {
	var txt strings.Builder
	fmt.Fprintf(&txt, "%s\n\n%s\n\n", a.Title, a.Detail)
	for _, f := range facts(a) {
		fmt.Fprintf(&txt, "%s: %s\n", f[0], f[1])
	}
	var html bytes.Buffer
	if err := mailHTML.Execute(&html, map[string]any{"Title": a.Title, "Detail": a.Detail, "Facts": facts(a)}); err != nil {
		return "", "", err
	}
	return txt.String(), html.String(), nil
}

// smtpFor is the server an e-mail channel sends through: its own when it names one (dialled
// through the outbound policy, trusting what the shared configuration trusts), else the
// shared VIGIL_SMTP_* server; the channel's from replaces the shared sender.
func (s *Service) smtpFor(st settings) SMTPConfig {
	c := s.smtp
	if st.SMTPHost != "" {
		c = SMTPConfig{Host: st.SMTPHost, Port: st.SMTPPort, Username: st.SMTPUsername, Password: st.SMTPPassword,
			From: c.From, TLS: st.SMTPTLS, InsecureSkipVerify: c.InsecureSkipVerify, RootCAs: c.RootCAs, Dial: s.policy.DialContext}
	}
	if st.From != "" {
		c.From = st.From
	}
	return c
}

func (s *Service) sendMail(ctx context.Context, st settings, a alerting.Alert) error {
	c := s.smtpFor(st)
	if c.Host == "" || c.From == "" {
		return fmt.Errorf("%w: this e-mail channel names no smtp_host (and from) and VIGIL_SMTP_HOST (and VIGIL_SMTP_FROM) is not set", ErrPermanent)
	}
	m := gomail.NewMsg()
	if err := m.From(c.From); err != nil {
		return fmt.Errorf("%w: sender %q: %v", ErrPermanent, c.From, err)
	}
	if err := m.To(st.To...); err != nil {
		return fmt.Errorf("%w: recipients: %v", ErrPermanent, err)
	}
	subject := strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, strings.TrimSpace(st.Subject+" ["+a.Severity+"] "+a.Title))
	m.Subject(clip(subject, 200))
	txt, html, err := mailBodies(a)
	if err != nil {
		return err
	}
	m.SetBodyString(gomail.TypeTextPlain, txt)
	m.AddAlternativeString(gomail.TypeTextHTML, html)
	return c.Send(ctx, m)
}

// Send delivers m through the server: alert e-mail and digests (pkg/digest) share this one
// client set-up. An unusable configuration, or a destination the outbound policy refuses,
// is ErrPermanent.
func (c SMTPConfig) Send(ctx context.Context, m *gomail.Msg) error {
	m.SetMessageID()
	m.SetDate()
	tlsCfg := &tls.Config{ServerName: c.Host, MinVersion: tls.VersionTLS12, RootCAs: c.RootCAs, InsecureSkipVerify: c.InsecureSkipVerify} //nolint:gosec // tests only
	dial := c.Dial
	if dial == nil {
		d := &net.Dialer{Timeout: outbound.Timeout}
		dial = d.DialContext
	}
	opts := []gomail.Option{gomail.WithPort(c.Port), gomail.WithTimeout(outbound.Timeout),
		gomail.WithDialContextFunc(func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// One deadline for the whole conversation: a server that never greets (or speaks
			// plain SMTP where TLS is expected) must not hold a worker past the task's timeout.
			_ = conn.SetDeadline(time.Now().Add(2 * outbound.Timeout))
			if c.TLS != "tls" {
				return conn, nil
			}
			// Implicit TLS is ours to do: go-mail skips its own TLS dialer when it is given a
			// dial function, and would speak plain SMTP to port 465.
			tc := tls.Client(conn, tlsCfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				conn.Close()
				return nil, fmt.Errorf("tls: %w", err)
			}
			return tc, nil
		}),
		gomail.WithTLSConfig(tlsCfg),
	}
	switch c.TLS {
	case "tls":
		opts = append(opts, gomail.WithSSL())
	case "none":
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	}
	if c.Username != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthPlain), gomail.WithUsername(c.Username), gomail.WithPassword(c.Password))
	}
	client, err := gomail.NewClient(c.Host, opts...)
	if err != nil {
		return fmt.Errorf("%w: smtp: %v", ErrPermanent, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*outbound.Timeout)
	defer cancel()
	if err := client.DialAndSendWithContext(ctx, m); err != nil {
		if errors.Is(err, outbound.ErrRefused) {
			return fmt.Errorf("%w: smtp %s: %v", ErrPermanent, c.Host, err)
		}
		return fmt.Errorf("smtp %s: %w", c.Host, err)
	}
	return nil
}
