package dmarc

import (
	"errors"
	"math"
	"net/netip"
	"time"
)

// NamespaceRFC9990 is the XML namespace of RFC 9990 reports. Older reports carry no namespace
// or an XML Schema one; the parser matches elements on local names, so all read the same.
const NamespaceRFC9990 = "urn:ietf:params:xml:ns:dmarc-2.0"

// Report is one aggregate report, normalised (see the package comment for the rules).
type Report struct {
	Namespace        string    // xmlns of <feedback>, "" when none
	Version          string    // <version>, trimmed, "" when absent
	OrgName          string    // org_name; when missing/empty: the domain part of Email; trimmed
	Email            string    // trimmed; surrounding <> stripped
	ExtraContactInfo string    // trimmed
	ReportID         string    // trimmed, surrounding <> stripped
	Generator        string    // RFC 9990 <generator>, in report_metadata or at feedback level
	Errors           []string  // report_metadata/error elements
	DateBegin        time.Time // UTC
	DateEnd          time.Time // UTC
	Policy           Policy
	Records          []Record // filled by Parse; empty when streaming with Decoder
	Warnings         []string // non-fatal problems: skipped records, begin == end, unknown enums
}

// Policy is the policy_published element: the DMARC record the reporter found.
type Policy struct {
	Domain          string // lower-cased, trimmed, trailing dot removed
	P, SP, NP       string // lower-cased; "" when absent (np is RFC 9990)
	ADKIM, ASPF     string // "r"/"s" lower-cased; "" when absent
	Pct             *int   // nil when absent (RFC 9990 dropped pct)
	FO              string
	Testing         string // RFC 9990 "y"/"n"
	DiscoveryMethod string // RFC 9990 "psl"/"treewalk"
}

// Record is one row of the report: a source IP and what happened to its messages.
type Record struct {
	SourceIP     netip.Addr // canonical: IPv4-mapped IPv6 unmapped to IPv4, zone-free
	Count        int64      // never negative
	Disposition  string     // none|quarantine|reject|pass (lower-cased)
	DKIM, SPF    string     // policy_evaluated results, lower-cased (pass|fail), "" when absent
	Reasons      []Reason   // policy override reasons; empty <reason> elements are dropped
	HeaderFrom   string
	EnvelopeFrom string
	EnvelopeTo   string
	DKIMResults  []DKIMResult
	SPFResults   []SPFResult
}

// Reason is a policy override reason (RFC 7489 Appendix C PolicyOverrideReason).
type Reason struct{ Type, Comment string }

// DKIMResult is one auth_results/dkim element; Result is lower-cased.
type DKIMResult struct{ Domain, Selector, Result, HumanResult string }

// SPFResult is one auth_results/spf element; Scope and Result are lower-cased.
type SPFResult struct{ Domain, Scope, Result, HumanResult string }

// Limits are enforced while parsing; zero (or negative) fields take the defaults in
// DefaultLimits.
type Limits struct {
	MaxDepth      int           // element nesting; default 64
	MaxTokenBytes int           // longest single text node/tag with attributes/comment; default 1 MiB
	MaxRecords    int           // <record> elements per report, skipped ones included; default 5,000,000
	MaxFutureSkew time.Duration // how far in the future date_range may reach; default 24h
	// MaxCount bounds one record's message count; default 1,000,000,000. A larger count is
	// no real traffic (one source, one day), and counts summed over years of reports in the
	// rollups must stay far from int64's limit, which a few hostile reports could reach.
	MaxCount int64
}

// DefaultLimits are generous for every real report seen and small enough that a hostile file
// cannot exhaust memory.
var DefaultLimits = Limits{
	MaxDepth:      64,
	MaxTokenBytes: 1 << 20,
	MaxRecords:    5_000_000,
	MaxFutureSkew: 24 * time.Hour,
	MaxCount:      1_000_000_000,
}

func (l Limits) withDefaults() Limits {
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultLimits.MaxDepth
	}
	if l.MaxTokenBytes <= 0 {
		l.MaxTokenBytes = DefaultLimits.MaxTokenBytes
	}
	if l.MaxRecords <= 0 {
		l.MaxRecords = DefaultLimits.MaxRecords
	}
	if l.MaxFutureSkew <= 0 {
		l.MaxFutureSkew = DefaultLimits.MaxFutureSkew
	}
	if l.MaxCount <= 0 {
		l.MaxCount = DefaultLimits.MaxCount
	}
	return l
}

// Sentinel errors callers branch on; returned errors wrap one of them with detail.
var (
	ErrNotReport = errors.New("not a DMARC aggregate report") // empty input, "unused", non-XML, wrong root
	ErrMalformed = errors.New("malformed report")             // broken XML, DOCTYPE, depth/token caps, trailing garbage, bad charset bytes
	ErrInvalid   = errors.New("invalid report")               // XML fine but content unusable: no policy domain, no/invalid date range, timestamps out of range
)

// MessageCount sums Count over Records. Parse skips any record that would make this sum pass
// math.MaxInt64, so for a parsed report it is exact; for a Report built by hand it saturates at
// math.MaxInt64 instead of wrapping.
func (r *Report) MessageCount() int64 {
	var sum int64
	for _, rec := range r.Records {
		if rec.Count > math.MaxInt64-sum {
			return math.MaxInt64
		}
		sum += rec.Count
	}
	return sum
}

// DMARCPass reports whether the messages passed DMARC: policy-evaluated DKIM or SPF is "pass".
// The policy_evaluated results are already aligned results, and one aligned pass is enough
// (RFC 7489 Section 4); rates built on this must weight by Count, not by rows.
func (rec Record) DMARCPass() bool {
	return rec.DKIM == "pass" || rec.SPF == "pass"
}
