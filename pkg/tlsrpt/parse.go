package tlsrpt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Sentinel errors: every error of Parse wraps one of them.
var (
	// ErrInvalid: the input is not an SMTP TLS report that can be understood (not JSON, a
	// required field missing, a value of the wrong type or out of range).
	ErrInvalid = errors.New("invalid SMTP TLS report")
	// ErrLimit: the input exceeds one of the Limits.
	ErrLimit = errors.New("SMTP TLS report limit exceeded")
)

// Limits bound what one report may cost; a zero field takes its DefaultLimits value.
type Limits struct {
	MaxBytes          int64 // the JSON document, after any decompression
	MaxDepth          int   // nesting of objects and arrays (the schema needs 5)
	MaxPolicies       int   // policies of one report
	MaxFailureDetails int   // failure details of one report, all policies together
	MaxValues         int   // array elements and objects of the whole document
	MaxStringBytes    int   // one string value
}

// DefaultLimits are far above what real reporters send (a few KiB, a handful of policies and
// failure details) and far below what would hurt a worker.
var DefaultLimits = Limits{
	MaxBytes:          16 << 20,
	MaxDepth:          32,
	MaxPolicies:       1000,
	MaxFailureDetails: 10000,
	MaxValues:         200000,
	MaxStringBytes:    8 << 10,
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	pick := func(v, def int) int {
		if v <= 0 {
			return def
		}
		return v
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = d.MaxBytes
	}
	l.MaxDepth = pick(l.MaxDepth, d.MaxDepth)
	l.MaxPolicies = pick(l.MaxPolicies, d.MaxPolicies)
	l.MaxFailureDetails = pick(l.MaxFailureDetails, d.MaxFailureDetails)
	l.MaxValues = pick(l.MaxValues, d.MaxValues)
	l.MaxStringBytes = pick(l.MaxStringBytes, d.MaxStringBytes)
	return l
}

// maxSessions bounds one count: no sender makes 2^53 sessions a day, and a bound that fits a
// float64 exactly keeps sums over years of reports exact in every JSON client.
const maxSessions = 1 << 53

// Read parses the report in r, reading at most MaxBytes (more is an ErrLimit error).
func Read(r io.Reader, lim Limits) (*Report, error) {
	lim = lim.withDefaults()
	b, err := io.ReadAll(io.LimitReader(r, lim.MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: read: %w", ErrInvalid, err)
	}
	return parse(b, lim)
}

// Parse parses one report held in memory (RFC 8460 §4.4 JSON).
func Parse(b []byte, lim Limits) (*Report, error) { return parse(b, lim.withDefaults()) }

func parse(b []byte, lim Limits) (*Report, error) {
	if int64(len(b)) > lim.MaxBytes {
		return nil, fmt.Errorf("%w: report is larger than %d bytes", ErrLimit, lim.MaxBytes)
	}
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, fmt.Errorf("%w: empty input", ErrInvalid)
	}
	if err := scan(b, lim); err != nil {
		return nil, err
	}
	var raw rawReport
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalid, jsonError(err))
	}
	p := &parser{lim: lim}
	rep := p.report(&raw)
	if p.err != nil {
		return nil, p.err
	}
	rep.Warnings = p.warnings
	return rep, nil
}

// scan checks the nesting depth and the number of values before the document is decoded, so
// that a deep or huge array costs one pass over the bytes and no allocation.
func scan(b []byte, lim Limits) error {
	depth, values := 0, 0
	inStr, esc := false, false
	for _, c := range b {
		if inStr {
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
			continue
		}
		switch c {
		case '"':
			inStr = true
		case '{', '[':
			if depth++; depth > lim.MaxDepth {
				return fmt.Errorf("%w: JSON nested deeper than %d levels", ErrLimit, lim.MaxDepth)
			}
			values++
		case '}', ']':
			depth--
		case ',':
			values++
		}
		if values > lim.MaxValues {
			return fmt.Errorf("%w: more than %d JSON values", ErrLimit, lim.MaxValues)
		}
	}
	return nil
}

// jsonError turns encoding/json's messages into ones that name the field in the report's terms.
func jsonError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %q: want %s, got JSON %s", strings.ReplaceAll(te.Field, ".", "/"), te.Type, te.Value)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("not valid JSON at byte %d: %v", se.Offset, se)
	}
	return err.Error()
}

// The raw schema: field names as RFC 8460 §4.4 spells them, with the quirks reporters add.
type rawReport struct {
	OrganizationName *string `json:"organization-name"`
	DateRange        *struct {
		Start *string `json:"start-datetime"`
		End   *string `json:"end-datetime"`
	} `json:"date-range"`
	ContactInfo *string      `json:"contact-info"`
	ReportID    *flexString  `json:"report-id"`
	Policies    *[]rawPolicy `json:"policies"`
}

type rawPolicy struct {
	Policy *struct {
		Type          *string     `json:"policy-type"`
		String        flexStrings `json:"policy-string"`
		Domain        *string     `json:"policy-domain"`
		MXHost        flexStrings `json:"mx-host"`
		MXHostPattern flexStrings `json:"mx-host-pattern"` // Google and others
	} `json:"policy"`
	Summary *struct {
		Success *flexCount `json:"total-successful-session-count"`
		Failure *flexCount `json:"total-failure-session-count"`
	} `json:"summary"`
	FailureDetails []rawFailure `json:"failure-details"`
}

type rawFailure struct {
	ResultType        *string    `json:"result-type"`
	SendingMTAIP      *string    `json:"sending-mta-ip"`
	ReceivingMX       *string    `json:"receiving-mx-hostname"`
	ReceivingMXHelo   *string    `json:"receiving-mx-helo"`
	ReceivingIP       *string    `json:"receiving-ip"`
	Count             *flexCount `json:"failed-session-count"`
	AdditionalInfo    *string    `json:"additional-information"`
	FailureReasonCode *string    `json:"failure-reason-code"`
}

// flexCount is a session count sent as a number (as RFC 8460 says) or as a string of digits
// (as some reporters do).
type flexCount struct {
	n      int64
	quoted bool
	bad    string
}

func (c *flexCount) UnmarshalJSON(b []byte) error {
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		c.quoted = true
		s = strings.TrimSpace(s)
	}
	if s == "null" && !c.quoted {
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		// 5.0 is a whole number a JSON encoder may write; 5.5 and 1e400 are not counts.
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || f != math.Trunc(f) || math.Abs(f) > maxSessions {
			c.bad = s
			return nil
		}
		n = int64(f)
	}
	c.n = n
	return nil
}

// flexStrings is a list of strings sent as an array, or as one string (RFC 8460's own example
// sends mx-host as one pattern).
type flexStrings struct {
	v   []string
	one bool
}

func (f *flexStrings) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		f.v, f.one = []string{s}, true
		return nil
	}
	return json.Unmarshal(b, &f.v)
}

// flexString is a string sent as a string or as a number (a numeric report-id).
type flexString struct{ s string }

func (f *flexString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &f.s)
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	f.s = n.String()
	return nil
}

// parser normalises a decoded report, collecting warnings and the first fatal problem.
type parser struct {
	lim      Limits
	warnings []string
	err      error
	details  int
}

func (p *parser) warn(format string, args ...any) {
	if len(p.warnings) < 100 {
		p.warnings = append(p.warnings, fmt.Sprintf(format, args...))
	}
}

func (p *parser) fail(kind error, format string, args ...any) {
	if p.err == nil {
		p.err = fmt.Errorf("%w: %s", kind, fmt.Sprintf(format, args...))
	}
}

// str cleans a string value: valid UTF-8, no NUL (PostgreSQL refuses it in text) or other
// control characters but tab, trimmed, and within MaxStringBytes.
func (p *parser) str(field string, v *string) string {
	if v == nil {
		return ""
	}
	s := strings.TrimSpace(*v)
	if len(s) > p.lim.MaxStringBytes {
		p.fail(ErrLimit, "field %q is longer than %d bytes", field, p.lim.MaxStringBytes)
		return ""
	}
	if !utf8.ValidString(s) || strings.ContainsFunc(s, isControl) {
		s = strings.Map(func(r rune) rune {
			if isControl(r) {
				return -1
			}
			return r
		}, strings.ToValidUTF8(s, "\uFFFD"))
	}
	return s
}

func isControl(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }

func domainName(s string) string { return strings.TrimSuffix(strings.ToLower(s), ".") }

func (p *parser) report(raw *rawReport) *Report {
	r := &Report{
		OrganizationName: p.str("organization-name", raw.OrganizationName),
		ContactInfo:      p.str("contact-info", raw.ContactInfo),
	}
	if raw.ReportID != nil {
		r.ReportID = p.str("report-id", &raw.ReportID.s)
	}
	if r.OrganizationName == "" {
		// Be liberal, as with aggregate reports: the contact's domain names the reporter.
		if _, dom, ok := strings.Cut(strings.TrimPrefix(r.ContactInfo, "mailto:"), "@"); ok && dom != "" {
			r.OrganizationName = domainName(dom)
			p.warn("organization-name missing: taken from contact-info")
		} else {
			p.fail(ErrInvalid, "organization-name is missing")
		}
	}
	if r.ReportID == "" {
		p.fail(ErrInvalid, "report-id is missing")
	}
	if raw.DateRange == nil {
		p.fail(ErrInvalid, "date-range is missing")
	} else {
		r.DateBegin = p.time("date-range/start-datetime", raw.DateRange.Start)
		r.DateEnd = p.time("date-range/end-datetime", raw.DateRange.End)
		if p.err == nil && r.DateEnd.Before(r.DateBegin) {
			p.fail(ErrInvalid, "date-range ends (%s) before it starts (%s)", r.DateEnd.Format(time.RFC3339), r.DateBegin.Format(time.RFC3339))
		}
	}
	if raw.Policies == nil {
		p.fail(ErrInvalid, "policies is missing")
		return r
	}
	if len(*raw.Policies) > p.lim.MaxPolicies {
		p.fail(ErrLimit, "more than %d policies", p.lim.MaxPolicies)
		return r
	}
	if len(*raw.Policies) == 0 {
		p.warn("the report has no policies")
	}
	var okSum, failSum int64
	r.Policies = make([]Policy, 0, len(*raw.Policies))
	for i := range *raw.Policies {
		pol := p.policy(i, &(*raw.Policies)[i])
		okSum, failSum = p.add(okSum, pol.SuccessfulSessions), p.add(failSum, pol.FailedSessions)
		r.Policies = append(r.Policies, pol)
		if p.err != nil {
			break
		}
	}
	return r
}

// add sums session counts, refusing a total past maxSessions.
func (p *parser) add(a, b int64) int64 {
	if a+b > maxSessions {
		p.fail(ErrInvalid, "session counts add up to more than %d", int64(maxSessions))
		return 0
	}
	return a + b
}

// timeLayouts are tried in order: RFC 3339 as the RFC says, then without a zone (Microsoft
// sends "2023-01-10T00:00:00"), read as UTC.
var timeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05Z07:00", "2006-01-02"}

// minTime and maxTime bound a report date: before RFC 8460 existed, or after 9999, is no date
// a reporter meant.
var (
	minTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
)

func (p *parser) time(field string, v *string) time.Time {
	s := p.str(field, v)
	if s == "" {
		p.fail(ErrInvalid, "%s is missing", field)
		return time.Time{}
	}
	for i, layout := range timeLayouts {
		t, err := time.Parse(layout, s)
		if err != nil {
			continue
		}
		if i > 0 && i != 2 {
			p.warn("%s %q has no time zone: read as UTC", field, s)
		}
		t = t.UTC()
		if t.Before(minTime) || t.After(maxTime) {
			p.fail(ErrInvalid, "%s %q: timestamp out of range", field, s)
		}
		return t
	}
	p.fail(ErrInvalid, "%s %q: want an RFC 3339 date-time such as 2016-04-01T00:00:00Z", field, s)
	return time.Time{}
}

func (p *parser) count(field string, c *flexCount, missing string) int64 {
	if c == nil {
		if missing != "" {
			p.warn("%s missing: counted as 0", field)
		}
		return 0
	}
	switch {
	case c.bad != "":
		p.fail(ErrInvalid, "%s %q: want a whole number", field, c.bad)
		return 0
	case c.n < 0:
		p.fail(ErrInvalid, "%s %d: a count cannot be negative", field, c.n)
		return 0
	case c.n > maxSessions:
		p.fail(ErrInvalid, "%s %d: more sessions than any sender makes", field, c.n)
		return 0
	case c.quoted:
		p.warn("%s sent as a string", field)
	}
	return c.n
}

func (p *parser) strings(field string, f flexStrings, oneOK bool) []string {
	out := make([]string, 0, len(f.v))
	for i := range f.v {
		if s := p.str(field, &f.v[i]); s != "" {
			out = append(out, s)
		}
	}
	if f.one && len(f.v) > 0 && !oneOK {
		p.warn("%s sent as one string, not a list", field)
	}
	return out
}

func (p *parser) policy(i int, raw *rawPolicy) Policy {
	at := fmt.Sprintf("policies[%d]", i)
	pol := Policy{PolicyString: []string{}, MXHosts: []string{}, FailureDetails: []FailureDetail{}}
	if raw.Policy == nil {
		p.fail(ErrInvalid, "%s/policy is missing", at)
		return pol
	}
	pp := raw.Policy
	pol.PolicyType = strings.ToLower(p.str(at+"/policy/policy-type", pp.Type))
	switch pol.PolicyType {
	case PolicySTS, PolicyTLSA, PolicyNoPolicyFound:
	case "":
		p.fail(ErrInvalid, "%s/policy/policy-type is missing", at)
	default:
		p.warn("%s/policy/policy-type %q is not one of sts, tlsa, no-policy-found", at, pol.PolicyType)
	}
	if pp.Type != nil && strings.ToLower(strings.TrimSpace(*pp.Type)) != strings.TrimSpace(*pp.Type) {
		p.warn("%s/policy/policy-type %q is not lower-case", at, *pp.Type)
	}
	pol.PolicyString = p.strings(at+"/policy/policy-string", pp.String, false)
	pol.PolicyDomain = domainName(p.str(at+"/policy/policy-domain", pp.Domain))
	if pol.PolicyDomain == "" {
		p.warn("%s/policy/policy-domain is missing", at)
	}
	for _, h := range append(p.strings(at+"/policy/mx-host", pp.MXHost, true), p.strings(at+"/policy/mx-host-pattern", pp.MXHostPattern, true)...) {
		if h = domainName(h); !slices.Contains(pol.MXHosts, h) {
			pol.MXHosts = append(pol.MXHosts, h)
		}
	}
	if raw.Summary == nil {
		p.warn("%s/summary is missing: counted as 0 sessions", at)
	} else {
		pol.SuccessfulSessions = p.count(at+"/summary/total-successful-session-count", raw.Summary.Success, "missing")
		pol.FailedSessions = p.count(at+"/summary/total-failure-session-count", raw.Summary.Failure, "missing")
	}
	if p.details += len(raw.FailureDetails); p.details > p.lim.MaxFailureDetails {
		p.fail(ErrLimit, "more than %d failure details", p.lim.MaxFailureDetails)
		return pol
	}
	for j := range raw.FailureDetails {
		pol.FailureDetails = append(pol.FailureDetails, p.failure(fmt.Sprintf("%s/failure-details[%d]", at, j), &raw.FailureDetails[j]))
	}
	return pol
}

func (p *parser) failure(at string, raw *rawFailure) FailureDetail {
	d := FailureDetail{
		ResultType:            strings.ToLower(p.str(at+"/result-type", raw.ResultType)),
		SendingMTAIP:          p.ip(at+"/sending-mta-ip", raw.SendingMTAIP),
		ReceivingMXHostname:   domainName(p.str(at+"/receiving-mx-hostname", raw.ReceivingMX)),
		ReceivingMXHelo:       p.str(at+"/receiving-mx-helo", raw.ReceivingMXHelo),
		ReceivingIP:           p.ip(at+"/receiving-ip", raw.ReceivingIP),
		FailedSessionCount:    p.count(at+"/failed-session-count", raw.Count, "missing"),
		AdditionalInformation: p.str(at+"/additional-information", raw.AdditionalInfo),
		FailureReasonCode:     p.str(at+"/failure-reason-code", raw.FailureReasonCode),
	}
	switch {
	case d.ResultType == "":
		p.warn("%s/result-type is missing", at)
	case !slices.Contains(ResultTypes, d.ResultType):
		p.warn("%s/result-type %q is not a result type of RFC 8460", at, d.ResultType)
	}
	return d
}

// ip stores an address canonically (IPv4-mapped IPv6 unmapped, IPv6 compressed); a value that
// is no address is kept as sent, with a warning, since it is only shown.
func (p *parser) ip(field string, v *string) string {
	s := p.str(field, v)
	if s == "" {
		return ""
	}
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil || a.Zone() != "" {
		p.warn("%s %q is not an IP address", field, s)
		return s
	}
	return a.Unmap().String()
}
