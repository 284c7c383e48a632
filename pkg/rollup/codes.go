package rollup

import "strings"

// A record's policy-evaluated results are stored in rollups as one small "outcome" code, so a
// rollup row has one column for them and any filter on them is an IN list of codes:
//
//	outcome = disposition*9 + dkim*3 + spf
//
// with disposition none=0, quarantine=1, reject=2, pass=3 (RFC 9990), anything else 4, and dkim
// and spf pass=0, fail=1, anything else (absent, or an unknown value kept by the parser) 2.
const (
	DispNone = iota
	DispQuarantine
	DispReject
	DispPass
	DispOther
)

// Policy-evaluated DKIM / SPF result codes.
const (
	ResultPass = iota
	ResultFail
	ResultOther
)

// Outcomes is the number of outcome codes (5 dispositions × 3 DKIM × 3 SPF).
const Outcomes = 45

// Dispositions names the disposition codes, in code order.
var Dispositions = [5]string{"none", "quarantine", "reject", "pass", "other"}

func dispCode(s string) int {
	switch s {
	case "none":
		return DispNone
	case "quarantine":
		return DispQuarantine
	case "reject":
		return DispReject
	case "pass":
		return DispPass
	}
	return DispOther
}

func resultCode(s string) int {
	switch s {
	case "pass":
		return ResultPass
	case "fail":
		return ResultFail
	}
	return ResultOther
}

// Outcome is the code of a record's disposition and policy-evaluated DKIM and SPF results
// (as stored: lower-cased by the parser).
func Outcome(disposition, dkim, spf string) int8 {
	return int8(dispCode(disposition)*9 + resultCode(dkim)*3 + resultCode(spf))
}

// OutcomeDisposition, OutcomeDKIM and OutcomeSPF take a code apart.
func OutcomeDisposition(o int8) int { return int(o) / 9 }
func OutcomeDKIM(o int8) int        { return int(o) / 3 % 3 }
func OutcomeSPF(o int8) int         { return int(o) % 3 }

// DKIMPass and SPFPass: the policy-evaluated (aligned) result is pass.
func DKIMPass(o int8) bool { return OutcomeDKIM(o) == ResultPass }
func SPFPass(o int8) bool  { return OutcomeSPF(o) == ResultPass }

// DMARCPass is DMARC's verdict for the record: aligned DKIM or aligned SPF passed (RFC 7489
// §3.1, §6.6.2; RFC 9989).
func DMARCPass(o int8) bool { return DKIMPass(o) || SPFPass(o) }

// OutcomeFilter lists the codes a record filter admits: dkim and spf are the dkim_result and
// spf_result filter values (pass|fail) and disposition the disposition one; "" does not
// filter. Nil means every code (no filter at all).
func OutcomeFilter(dkim, spf, disposition string) []int8 {
	if dkim == "" && spf == "" && disposition == "" {
		return nil
	}
	out := []int8{}
	for o := int8(0); o < Outcomes; o++ {
		if dkim != "" && OutcomeDKIM(o) != resultCode(dkim) {
			continue
		}
		if spf != "" && OutcomeSPF(o) != resultCode(spf) {
			continue
		}
		if disposition != "" && OutcomeDisposition(o) != dispCode(disposition) {
			continue
		}
		out = append(out, o)
	}
	return out
}

// Mask is the bit set of codes, the form report-count rollups keep per report: bit o is set
// when the report has a record with outcome o.
func Mask(codes []int8) int64 {
	var m int64
	for _, o := range codes {
		m |= 1 << o
	}
	return m
}

// Published policy codes, kept on message rollups so the policy view can tell what was asked.
const (
	PolicyNone = iota
	PolicyQuarantine
	PolicyReject
	PolicyOther // absent or unknown
)

// Policies names the policy codes, in code order.
var Policies = [4]string{"none", "quarantine", "reject", "other"}

// PolicyCode is the code of a published p= (or sp=) value.
func PolicyCode(p string) int8 {
	switch p {
	case "none":
		return PolicyNone
	case "quarantine":
		return PolicyQuarantine
	case "reject":
		return PolicyReject
	}
	return PolicyOther
}

// PublishedPolicy is what a report says the domain owner published, as far as compliance
// is concerned.
type PublishedPolicy struct {
	Domain  string // policy domain, lower-cased
	P, SP   string
	Pct     *int   // nil when absent: 100
	Testing string // RFC 9990 t=: "y" means testing
}

// Applicable is the policy that governs mail whose RFC5322.From domain is headerFrom: sp= for
// a strict subdomain of the policy domain when sp= is published, else p= (RFC 7489 §6.3).
// The np= of RFC 9990 (non-existent subdomains) is not used: a report cannot tell whether a
// subdomain exists.
func (p PublishedPolicy) Applicable(headerFrom string) string {
	hf := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(headerFrom)), ".")
	if p.SP != "" && hf != p.Domain && strings.HasSuffix(hf, "."+p.Domain) {
		return p.SP
	}
	return p.P
}

// Matched says whether a record's disposition is what the published policy asks for. This is
// the definition behind the policy compliance view:
//
//   - Mail that passes DMARC (aligned DKIM or SPF pass) should be delivered: disposition none,
//     or pass (RFC 9990), matches; quarantine or reject does not.
//   - Mail that fails DMARC should get the applicable policy (p=, or sp= for a subdomain, see
//     Applicable): none for p=none or an absent/unknown p; quarantine for p=quarantine; reject
//     for p=reject.
//   - When only part of the mail is subject to the policy (pct below 100, RFC 7489 §6.6.4) or the
//     owner is testing (t=y, RFC 9990), receivers apply the next less strict policy to the rest:
//     for p=quarantine none also matches, for p=reject quarantine also matches.
//   - Anything else does not match, including receiver overrides (forwarded, mailing_list,
//     local_policy…): those are the receiver deliberately not applying the published policy,
//     which is what this view exists to show.
func (p PublishedPolicy) Matched(headerFrom string, outcome int8) bool {
	disp := OutcomeDisposition(outcome)
	if DMARCPass(outcome) {
		return disp == DispNone || disp == DispPass
	}
	relaxed := (p.Pct != nil && *p.Pct < 100) || p.Testing == "y"
	switch PolicyCode(p.Applicable(headerFrom)) {
	case PolicyQuarantine:
		return disp == DispQuarantine || (relaxed && disp == DispNone)
	case PolicyReject:
		return disp == DispReject || (relaxed && disp == DispQuarantine)
	}
	return disp == DispNone
}
