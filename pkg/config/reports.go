package config

import "github.com/vigilhq/vigil/pkg/ratelimit"

// Reports are the settings of the report kinds besides aggregate reports: SMTP TLS reports
// (pkg/tlsrpt) and failure reports (pkg/failure).
type Reports struct {
	// FailureRedact keeps address local parts and message bodies out of stored failure
	// reports (docs/failure-reports.md says why it is on by default).
	FailureRedact bool
	// TLSRPTMaxBytes bounds one POST /tlsrpt body as sent; TLSRPTMaxDecompressed one TLS
	// report after decompression, by POST or by mail.
	TLSRPTMaxBytes        int64
	TLSRPTMaxDecompressed int64
	// TLSRPTRate limits POST /tlsrpt per client address (IPv6 per VIGIL_CLIENT_IPV6_PREFIX).
	TLSRPTRate ratelimit.Rate
}

// DefaultRateTLSRPT lets a large sender post a report for each of its domains in a burst
// (they send once a day) while a flood from one address is cut off.
const DefaultRateTLSRPT = "600/1h burst 120"

func loadReports(e *env) Reports {
	return Reports{
		FailureRedact:         e.boolean("VIGIL_FAILURE_REDACT", true),
		TLSRPTMaxBytes:        e.size("VIGIL_TLSRPT_MAX_BYTES", mib),
		TLSRPTMaxDecompressed: e.size("VIGIL_TLSRPT_MAX_DECOMPRESSED_BYTES", 16*mib),
		TLSRPTRate:            e.rate("VIGIL_RATE_LIMIT_TLSRPT", DefaultRateTLSRPT),
	}
}

// boolean reads true/false (also 1/0, yes/no, on/off).
func (e *env) boolean(name string, def bool) bool {
	v := e.str(name, "")
	switch v {
	case "":
		return def
	case "true", "TRUE", "True", "1", "yes", "on":
		return true
	case "false", "FALSE", "False", "0", "no", "off":
		return false
	}
	e.fail(name, v, "want true or false")
	return def
}
