// Package tlsrpt reads, stores and serves SMTP TLS reports (RFC 8460): the JSON reports that
// sending mail servers send to a domain's owner about the TLS sessions they attempted with its
// MX hosts under its MTA-STS or DANE policy. Reports arrive by mail (an
// application/tlsrpt+gzip or +json attachment, routed here by pkg/ingest) or by HTTPS POST to
// /tlsrpt (RFC 8460 §3, no login), which goes through the same pipeline: the original kept with
// its SHA-256, parsed on a worker, the same report from both channels stored once.
//
// The parser (Parse) reads the RFC 8460 §4 schema in full and is liberal where real reporters
// are quirky (counts as strings, policy-string as one string, mx-host or mx-host-pattern,
// upper-case policy types, domains with a trailing dot, times without a zone) and strict where
// input is hostile: a size cap, a nesting cap, caps on policies, failure details and strings,
// and checked sums of session counts.
package tlsrpt

import "time"

// Report is one SMTP TLS report (RFC 8460 §4.4), normalised.
type Report struct {
	OrganizationName string    `json:"organization_name"`
	ContactInfo      string    `json:"contact_info"`
	ReportID         string    `json:"report_id"`
	DateBegin        time.Time `json:"date_begin"`
	DateEnd          time.Time `json:"date_end"`
	Policies         []Policy  `json:"policies"`
	// Warnings name what was accepted only by being liberal (an unknown result type, a
	// count sent as a string); they are kept with the report.
	Warnings []string `json:"warnings"`
}

// Policy is one policy the sender evaluated with its session counts (RFC 8460 §4.3, §4.4).
type Policy struct {
	PolicyType         string          `json:"policy_type"` // sts, tlsa or no-policy-found
	PolicyString       []string        `json:"policy_string"`
	PolicyDomain       string          `json:"policy_domain"`
	MXHosts            []string        `json:"mx_host"` // MX host patterns of an STS policy
	SuccessfulSessions int64           `json:"successful_sessions"`
	FailedSessions     int64           `json:"failed_sessions"`
	FailureDetails     []FailureDetail `json:"failure_details"`
}

// FailureDetail is one kind of failed session from one sending MTA to one MX (RFC 8460 §4.3).
type FailureDetail struct {
	ResultType            string `json:"result_type"`
	SendingMTAIP          string `json:"sending_mta_ip"`
	ReceivingMXHostname   string `json:"receiving_mx_hostname"`
	ReceivingMXHelo       string `json:"receiving_mx_helo"`
	ReceivingIP           string `json:"receiving_ip"`
	FailedSessionCount    int64  `json:"failed_session_count"`
	AdditionalInformation string `json:"additional_information"`
	FailureReasonCode     string `json:"failure_reason_code"`
}

// Policy types (RFC 8460 §4.3).
const (
	PolicySTS           = "sts"
	PolicyTLSA          = "tlsa"
	PolicyNoPolicyFound = "no-policy-found"
)

// ResultTypes are the result types RFC 8460 §4.3 defines; others are kept as sent, with a
// warning, since the registry may grow.
var ResultTypes = []string{
	"starttls-not-supported", "certificate-host-mismatch", "certificate-expired", "certificate-not-trusted",
	"validation-failure", "tlsa-invalid", "dnssec-invalid", "dane-required",
	"sts-policy-fetch-error", "sts-policy-invalid", "sts-webpki-invalid",
}

// Totals are the report's session counts over all its policies.
func (r *Report) Totals() (ok, failed int64) {
	for _, p := range r.Policies {
		ok += p.SuccessfulSessions
		failed += p.FailedSessions
	}
	return ok, failed
}

// Domains lists the distinct policy domains in order of appearance.
func (r *Report) Domains() []string {
	out := []string{}
	seen := map[string]bool{}
	for _, p := range r.Policies {
		if !seen[p.PolicyDomain] {
			seen[p.PolicyDomain] = true
			out = append(out, p.PolicyDomain)
		}
	}
	return out
}
