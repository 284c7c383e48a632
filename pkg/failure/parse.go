// Package failure reads, stores and serves DMARC failure (forensic) reports: RFC 6591
// authentication failure reports in the Abuse Reporting Format (RFC 5965 multipart/report with
// a message/feedback-report part of Feedback-Type auth-failure), as DMARC (RFC 7489 §7.3,
// RFC 9991) has receivers send them, and the plain-text reports some MTAs (Exim) send instead.
// pkg/unwrap recognises such a message and pkg/ingest hands it here whole.
//
// # Privacy
//
// A failure report carries a copy of someone's message: its headers name the sender and the
// recipients, its body is their correspondence. Redaction (VIGIL_FAILURE_REDACT, on by
// default) keeps what a domain owner needs to find a spoofer or a misconfigured service (the
// domains, the source IP, the authentication results, the dates, the subject) and stores no
// address local part (every local@domain becomes *@domain, display names of address fields are
// dropped) and no message body (nor the DKIM-Canonicalized-Body and -Header copies). See
// docs/failure-reports.md for the GDPR reasoning.
package failure

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"net/netip"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// ErrInvalid wraps every refusal: the message is no failure report that can be understood.
var ErrInvalid = errors.New("not a DMARC failure report")

// Report is one failure report, normalised (and redacted when Options.Redact).
type Report struct {
	Format                string     `json:"format"` // arf, or text for a report without an ARF part
	FeedbackType          string     `json:"feedback_type"`
	UserAgent             string     `json:"user_agent"`
	Version               string     `json:"version"`
	Domain                string     `json:"domain"` // Reported-Domain
	SourceIP              string     `json:"source_ip"`
	ArrivalDate           *time.Time `json:"arrival_date"`
	AuthFailure           string     `json:"auth_failure"` // dmarc, dkim, spf, bodyhash, signed, adsp, revoked
	ReportedBy            string     `json:"reported_by"`
	OriginalMailFrom      string     `json:"original_mail_from"`
	OriginalRcptTo        []string   `json:"original_rcpt_to"`
	OriginalEnvelopeID    string     `json:"original_envelope_id"`
	AuthenticationResults []string   `json:"authentication_results"`
	DKIMDomain            string     `json:"dkim_domain"`
	DKIMIdentity          string     `json:"dkim_identity"`
	DKIMSelector          string     `json:"dkim_selector"`
	SPFDNS                string     `json:"spf_dns"`
	DeliveryResult        string     `json:"delivery_result"`
	IdentityAlignment     string     `json:"identity_alignment"`
	ReportedURI           []string   `json:"reported_uri"`
	DKIMResult            string     `json:"dkim_result"` // pass, fail or "" (from Authentication-Results)
	SPFResult             string     `json:"spf_result"`
	Disposition           string     `json:"disposition"` // none, quarantine, reject or "" (dis= of the DMARC result)
	Subject               string     `json:"subject"`     // of the report message
	SampleHeaders         []Field    `json:"sample_headers"`
	SampleBody            *string    `json:"sample_body"`
	Redacted              bool       `json:"redacted"`
	Warnings              []string   `json:"warnings"`
	// SHA256 of the report message as received: its identity.
	SHA256 string `json:"-"`
}

// Options say how much of a report is kept.
type Options struct {
	// Redact drops address local parts and the message body (VIGIL_FAILURE_REDACT).
	Redact bool
	// MaxBodyBytes bounds the sample body kept when Redact is off (0: 64 KiB).
	MaxBodyBytes int
	// MaxBytes bounds the whole report message (0: 10 MiB).
	MaxBytes int
}

// maxValueBytes bounds one stored header or field value.
const maxValueBytes = 8 << 10

// Parse reads one failure report message.
func Parse(raw []byte, o Options) (*Report, error) {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 64 << 10
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 10 << 20
	}
	if len(raw) > o.MaxBytes {
		return nil, fmt.Errorf("%w: the message is larger than %d bytes", ErrInvalid, o.MaxBytes)
	}
	sum := sha256.Sum256(raw)
	p := &parser{o: o, r: &Report{SHA256: hex.EncodeToString(sum[:]), Redacted: o.Redact,
		OriginalRcptTo: []string{}, AuthenticationResults: []string{}, ReportedURI: []string{}, SampleHeaders: []Field{}, Warnings: []string{}}}
	outer, body := parseHeader(trimMbox(raw))
	if len(outer) == 0 {
		return nil, fmt.Errorf("%w: no e-mail header", ErrInvalid)
	}
	p.r.Subject = p.text(decodeWords(outer.get("Subject")))
	p.r.ReportedBy = reporter(outer.get("From"))
	var arf, text []byte
	var sample *entity
	for _, e := range leaves(outer, body) {
		e := e
		switch {
		case e.mediaType == "message/feedback-report" && arf == nil:
			arf = e.body
		case (e.mediaType == "message/rfc822" || e.mediaType == "message/global" || e.mediaType == "text/rfc822-headers") && sample == nil:
			sample = &e
		case (e.mediaType == "text/plain" || e.mediaType == "") && text == nil:
			text = e.body
		}
	}
	if arf != nil {
		p.r.Format = "arf"
		p.arf(arf)
	} else {
		p.r.Format = "text"
		sample = p.plain(text, sample)
	}
	if sample != nil {
		p.sample(sample)
	}
	p.derive()
	if p.r.Domain == "" && p.r.SourceIP == "" {
		return nil, fmt.Errorf("%w: it names neither a reported domain nor a source IP", ErrInvalid)
	}
	if p.r.FeedbackType != "" && p.r.FeedbackType != "auth-failure" {
		return nil, fmt.Errorf("%w: ARF Feedback-Type %q is not auth-failure", ErrInvalid, p.r.FeedbackType)
	}
	return p.r, nil
}

type parser struct {
	o Options
	r *Report
}

func (p *parser) warn(format string, args ...any) {
	if len(p.r.Warnings) < 50 {
		p.r.Warnings = append(p.r.Warnings, fmt.Sprintf(format, args...))
	}
}

// text cleans a value for storage: valid UTF-8, no control characters (NUL is refused by
// PostgreSQL), bounded, and redacted when asked.
func (p *parser) text(s string) string {
	s = strings.TrimSpace(strings.ToValidUTF8(s, "\uFFFD"))
	s = strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) > maxValueBytes {
		s = s[:maxValueBytes]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
		s += "…"
	}
	if p.o.Redact {
		s = RedactAddresses(s)
	}
	return s
}

// addrRe finds local@domain: a dot-atom local part (RFC 5322 §3.4.1) before a domain.
var addrRe = regexp.MustCompile("[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9_-]")

// keyPrefix is a "property=" in front of an address, as Authentication-Results
// (smtp.mailfrom=, header.from=) and Received-SPF (envelope-from=) write them; it is kept.
var keyPrefix = regexp.MustCompile(`^(?i)(?:[a-z0-9-]+\.)?[a-z-]+=`)

// RedactAddresses replaces the local part of every e-mail address in s with "*".
func RedactAddresses(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	return addrRe.ReplaceAllStringFunc(s, func(m string) string {
		key := keyPrefix.FindString(m)
		return key + "*" + m[len(m)-2:]
	})
}

// addressFields hold addresses whose display names are personal data too.
var addressFields = map[string]bool{"from": true, "to": true, "cc": true, "bcc": true, "reply-to": true, "sender": true,
	"delivered-to": true, "x-original-to": true, "return-path": true, "resent-from": true, "resent-to": true}

func (p *parser) arf(b []byte) {
	h, _ := parseHeader(b)
	one := func(name string) string { return p.text(h.get(name)) }
	p.r.FeedbackType = strings.ToLower(one("Feedback-Type"))
	p.r.UserAgent = one("User-Agent")
	p.r.Version = one("Version")
	p.r.Domain = domainName(one("Reported-Domain"))
	p.r.SourceIP = p.ip(h.get("Source-IP"))
	p.r.ArrivalDate = p.date("Arrival-Date", h.get("Arrival-Date"))
	if p.r.ArrivalDate == nil && h.get("Received-Date") != "" {
		p.r.ArrivalDate = p.date("Received-Date", h.get("Received-Date"))
	}
	p.r.AuthFailure = strings.ToLower(one("Auth-Failure"))
	p.r.OriginalMailFrom = one("Original-Mail-From")
	for _, v := range h.all("Original-Rcpt-To") {
		p.r.OriginalRcptTo = append(p.r.OriginalRcptTo, p.text(v))
	}
	p.r.OriginalEnvelopeID = one("Original-Envelope-Id")
	for _, v := range h.all("Authentication-Results") {
		p.r.AuthenticationResults = append(p.r.AuthenticationResults, p.text(v))
	}
	p.r.DKIMDomain = one("DKIM-Domain")
	p.r.DKIMIdentity = one("DKIM-Identity")
	p.r.DKIMSelector = one("DKIM-Selector")
	p.r.SPFDNS = one("SPF-DNS")
	p.r.DeliveryResult = strings.ToLower(one("Delivery-Result"))
	p.r.IdentityAlignment = strings.ToLower(one("Identity-Alignment"))
	for _, v := range h.all("Reported-URI") {
		p.r.ReportedURI = append(p.r.ReportedURI, p.text(v))
	}
	if rm := one("Reporting-MTA"); p.r.ReportedBy == "" && rm != "" {
		_, name, _ := strings.Cut(rm, ";")
		p.r.ReportedBy = domainName(strings.TrimSpace(name))
	}
	if p.r.ReportedBy == "" {
		p.r.ReportedBy = p.r.UserAgent
	}
	if !p.o.Redact {
		// RFC 6591 §3.2: copies of the canonicalised header and body the DKIM verifier saw.
		for _, name := range []string{"DKIM-Canonicalized-Header", "DKIM-Canonicalized-Body"} {
			if v := one(name); v != "" {
				p.r.SampleHeaders = append(p.r.SampleHeaders, Field{Name: "X-Vigil-ARF-" + name, Value: v})
			}
		}
	}
}

// plainFields are the labels of the plain-text reports Exim (and others) send.
var plainFields = map[string]string{"sender domain": "domain", "sender ip address": "ip", "received date": "date"}

// plain reads a report without an ARF part: "Label: value" lines of its text, and the copy of
// the original headers that follows the text when there is no separate part for it.
func (p *parser) plain(text []byte, sample *entity) *entity {
	lines := strings.Split(string(text), "\n")
	for i, line := range lines {
		line = strings.TrimSpace(line)
		if sample == nil && strings.Contains(strings.ToLower(line), "copy of the headers") {
			rest := strings.TrimLeft(strings.Join(lines[i+1:], "\n"), "\r\n")
			sample = &entity{mediaType: "text/rfc822-headers", body: []byte(rest)}
			break
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch plainFields[strings.ToLower(strings.TrimSpace(k))] {
		case "domain":
			p.r.Domain = domainName(p.text(v))
		case "ip":
			p.r.SourceIP = p.ip(v)
		case "date":
			p.r.ArrivalDate = p.date("Received date", v)
		}
	}
	if p.r.SourceIP == "" {
		// Subjects such as "... (mail-from=x@example.com, ip=192.0.2.1)" or "IP:192.0.2.1".
		if m := subjectIP.FindStringSubmatch(p.r.Subject); m != nil {
			p.r.SourceIP = p.ip(m[1])
		}
	}
	p.r.AuthFailure = "dmarc"
	return sample
}

var subjectIP = regexp.MustCompile(`(?i)\bip[=:]\s*([0-9a-f:.]+)`)

// sample keeps the original message's header fields (redacted) and, without redaction, its
// body up to MaxBodyBytes.
func (p *parser) sample(e *entity) {
	h, body := parseHeader(e.body)
	for _, f := range h {
		v := decodeWords(f.Value)
		if p.o.Redact && addressFields[strings.ToLower(f.Name)] {
			v = dropDisplayNames(v)
		}
		p.r.SampleHeaders = append(p.r.SampleHeaders, Field{Name: p.text(f.Name), Value: p.text(v)})
	}
	if !p.o.Redact && e.mediaType != "text/rfc822-headers" && len(strings.TrimSpace(string(body))) > 0 {
		s := string(body)
		if len(s) > p.o.MaxBodyBytes {
			s = s[:p.o.MaxBodyBytes]
			p.warn("sample body cut to %d bytes", p.o.MaxBodyBytes)
		}
		s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
		p.r.SampleBody = &s
	}
	if p.r.Domain == "" {
		if a, err := mail.ParseAddress(decodeWords(h.get("From"))); err == nil {
			if _, d, ok := strings.Cut(a.Address, "@"); ok {
				p.r.Domain = domainName(d)
				p.warn("no Reported-Domain: the domain of the sample's From is used")
			}
		}
	}
}

// dropDisplayNames keeps only the addresses of an address list ("Jane <j@x>" → "<j@x>"); a
// value that is no address list is left to the local-part redaction.
func dropDisplayNames(v string) string {
	list, err := mail.ParseAddressList(v)
	if err != nil {
		return v
	}
	out := make([]string, len(list))
	for i, a := range list {
		out[i] = "<" + a.Address + ">"
	}
	return strings.Join(out, ", ")
}

var (
	arResult    = regexp.MustCompile(`(?i)\b(dkim|spf|dmarc)\s*=\s*([a-z]+)`)
	arDis       = regexp.MustCompile(`(?i)\bdis\s*=\s*([a-z]+)`)
	arHeaderFrm = regexp.MustCompile(`(?i)\bheader\.from\s*=\s*([a-z0-9._-]+)`)
)

// derive fills what the report implies but may not state: the DKIM and SPF results and the
// disposition from Authentication-Results, the failed mechanism when Auth-Failure is absent,
// and the reported domain from header.from.
func (p *parser) derive() {
	var dmarc string
	for _, ar := range p.r.AuthenticationResults {
		for _, m := range arResult.FindAllStringSubmatch(ar, -1) {
			res := "fail"
			if strings.EqualFold(m[2], "pass") {
				res = "pass"
			}
			switch strings.ToLower(m[1]) {
			case "dkim":
				if p.r.DKIMResult != "pass" { // one passing signature is a DKIM pass
					p.r.DKIMResult = res
				}
			case "spf":
				if p.r.SPFResult == "" {
					p.r.SPFResult = res
				}
			case "dmarc":
				if dmarc == "" {
					dmarc = res
				}
			}
		}
		if m := arDis.FindStringSubmatch(ar); m != nil && p.r.Disposition == "" {
			switch d := strings.ToLower(m[1]); d {
			case "none", "quarantine", "reject":
				p.r.Disposition = d
			}
		}
		if m := arHeaderFrm.FindStringSubmatch(ar); m != nil && p.r.Domain == "" {
			p.r.Domain = domainName(m[1])
		}
	}
	if p.r.AuthFailure == "" {
		// A DMARC failure report with aligned passes only (Netease reports identifiers
		// that passed but did not align) failed DMARC itself.
		p.r.AuthFailure = "dmarc"
		switch {
		case dmarc == "fail":
			p.r.AuthFailure = "dmarc"
		case p.r.DKIMResult == "fail":
			p.r.AuthFailure = "dkim"
		case p.r.SPFResult == "fail":
			p.r.AuthFailure = "spf"
		}
	}
}

func domainName(s string) string {
	return strings.TrimSuffix(strings.ToLower(strings.Trim(strings.TrimSpace(s), "<>")), ".")
}

// reporter is the domain of the report's From address: who sent the report.
func reporter(from string) string {
	a, err := mail.ParseAddress(decodeWords(from))
	if err != nil {
		if _, d, ok := strings.Cut(from, "@"); ok {
			return domainName(strings.TrimRight(d, "> "))
		}
		return ""
	}
	_, d, _ := strings.Cut(a.Address, "@")
	return domainName(d)
}

func (p *parser) ip(v string) string {
	v = strings.Trim(strings.TrimSpace(v), "[]")
	if v == "" {
		return ""
	}
	a, err := netip.ParseAddr(v)
	if err != nil || a.Zone() != "" {
		p.warn("source IP %q is not an IP address", p.text(v))
		return ""
	}
	return a.Unmap().String()
}

// date reads an RFC 5322 date (comments such as "(GMT)" allowed), in UTC.
func (p *parser) date(field, v string) *time.Time {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil
	}
	if i := strings.Index(v, "("); i > 0 {
		v = strings.TrimSpace(v[:i])
	}
	t, err := mail.ParseDate(v)
	if err != nil {
		p.warn("%s %q is not a date", field, p.text(v))
		return nil
	}
	t = t.UTC()
	return &t
}

func trimMbox(b []byte) []byte {
	s := strings.TrimLeft(string(b[:min(len(b), 5)]), "\r\n")
	if strings.HasPrefix(s, "From ") {
		for i, c := range b {
			if c == '\n' {
				return b[i+1:]
			}
		}
	}
	return b
}
