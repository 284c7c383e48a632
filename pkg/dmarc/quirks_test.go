package dmarc

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

// rfc9990Report uses the RFC 9990 elements; %s is the root element's opening and closing
// names (prefix included), so the same report can be written with and without a prefix.
const rfc9990Report = `<{{p}}feedback {{ns}}>
  <{{p}}version>1.0</{{p}}version>
  <{{p}}report_metadata>
    <{{p}}org_name>Sample Reporter</{{p}}org_name>
    <{{p}}email>report_sender@example-reporter.com</{{p}}email>
    <{{p}}report_id>rfc9990-1</{{p}}report_id>
    <{{p}}date_range><{{p}}begin>1700000000</{{p}}begin><{{p}}end>1700086399</{{p}}end></{{p}}date_range>
    <{{p}}generator>Example Reporter v1.2</{{p}}generator>
  </{{p}}report_metadata>
  <{{p}}policy_published>
    <{{p}}domain>example.com</{{p}}domain><{{p}}p>quarantine</{{p}}p><{{p}}sp>none</{{p}}sp><{{p}}np>reject</{{p}}np>
    <{{p}}testing>n</{{p}}testing><{{p}}discovery_method>treewalk</{{p}}discovery_method>
  </{{p}}policy_published>
  <{{p}}record>
    <{{p}}row><{{p}}source_ip>192.0.2.123</{{p}}source_ip><{{p}}count>123</{{p}}count>
      <{{p}}policy_evaluated><{{p}}disposition>pass</{{p}}disposition><{{p}}dkim>pass</{{p}}dkim><{{p}}spf>fail</{{p}}spf></{{p}}policy_evaluated>
    </{{p}}row>
    <{{p}}identifiers><{{p}}envelope_from>example.com</{{p}}envelope_from><{{p}}header_from>example.com</{{p}}header_from></{{p}}identifiers>
    <{{p}}auth_results>
      <{{p}}dkim><{{p}}domain>example.com</{{p}}domain><{{p}}result>pass</{{p}}result><{{p}}selector>abc123</{{p}}selector><{{p}}human_result>good</{{p}}human_result></{{p}}dkim>
      <{{p}}spf><{{p}}domain>example.com</{{p}}domain><{{p}}result>fail</{{p}}result></{{p}}spf>
    </{{p}}auth_results>
    <{{p}}extensions><{{p}}extension><{{p}}name>x</{{p}}name></{{p}}extension></{{p}}extensions>
  </{{p}}record>
</{{p}}feedback>`

func rfc9990(prefix, nsAttr string) string {
	return strings.NewReplacer("{{p}}", prefix, "{{ns}}", nsAttr).Replace(rfc9990Report)
}

func checkRFC9990(t *testing.T, rep *Report) {
	t.Helper()
	if rep.Namespace != NamespaceRFC9990 {
		t.Errorf("namespace %q, want %q", rep.Namespace, NamespaceRFC9990)
	}
	pol := Policy{Domain: "example.com", P: "quarantine", SP: "none", NP: "reject", Testing: "n",
		DiscoveryMethod: "treewalk"}
	if !reflect.DeepEqual(rep.Policy, pol) {
		t.Errorf("policy %+v, want %+v", rep.Policy, pol)
	}
	if rep.Generator != "Example Reporter v1.2" || rep.Version != "1.0" {
		t.Errorf("generator %q version %q", rep.Generator, rep.Version)
	}
	want := Record{SourceIP: netip.MustParseAddr("192.0.2.123"), Count: 123, Disposition: "pass",
		DKIM: "pass", SPF: "fail", HeaderFrom: "example.com", EnvelopeFrom: "example.com",
		DKIMResults: []DKIMResult{{"example.com", "abc123", "pass", "good"}},
		SPFResults:  []SPFResult{{Domain: "example.com", Result: "fail"}}}
	if len(rep.Records) != 1 || !reflect.DeepEqual(rep.Records[0], want) {
		t.Errorf("records %+v, want [%+v]", rep.Records, want)
	}
	if len(rep.Warnings) != 0 {
		t.Errorf("unexpected warnings %q", rep.Warnings)
	}
}

func TestQuirks(t *testing.T) {
	t.Parallel()
	base := report(record("192.0.2.1", "5"))
	tests := []struct {
		name  string
		doc   string
		check func(t *testing.T, rep *Report)
	}{
		{"windows-1252", strings.Replace(strings.Replace(base, "UTF-8", "windows-1252", 1),
			"Example Org", "Soci\xe9t\xe9 \x93G\xe9n\xe9rale\x94", 1), func(t *testing.T, rep *Report) {
			if want := "Société “Générale”"; rep.OrgName != want {
				t.Errorf("org_name %q, want %q", rep.OrgName, want)
			}
		}},
		{"ISO-8859-1", strings.Replace(strings.Replace(base, "UTF-8", "ISO-8859-1", 1),
			"Example Org", "Caf\xe9", 1), orgIs("Café")},
		{"latin1 label, any case", strings.Replace(strings.Replace(base, "UTF-8", "LaTiN1", 1),
			"Example Org", "Caf\xe9", 1), orgIs("Café")},
		{"us-ascii", strings.Replace(base, "UTF-8", "US-ASCII", 1), orgIs("Example Org")},
		{"utf8 alias", strings.Replace(base, "UTF-8", "utf8", 1), orgIs("Example Org")},
		{"UTF-16 declared over UTF-8 bytes", strings.Replace(strings.Replace(base, "UTF-8", "UTF-16", 1),
			"Example Org", "Société", 1), func(t *testing.T, rep *Report) {
			if rep.OrgName != "Société" || !hasWarning(rep, `declared encoding "UTF-16"`) {
				t.Errorf("org_name %q, warnings %q", rep.OrgName, rep.Warnings)
			}
		}},
		{"UTF-8 byte order mark", "\xef\xbb\xbf" + base, orgIs("Example Org")},
		{"whitespace before the declaration", "\n  \n" + base, orgIs("Example Org")},
		{"CRLF line endings", strings.ReplaceAll(base, "\n", "\r\n"), orgIs("Example Org")},
		{"upper-case enums", strings.NewReplacer("<p>none", "<p>REJECT", "<adkim>r", "<adkim>S",
			"<disposition>none", "<disposition>Quarantine", "<dkim>pass</dkim>", "<dkim>Pass</dkim>",
			"<spf>fail</spf>", "<spf>FAIL</spf>", "<result>pass", "<result>PASS").Replace(base),
			func(t *testing.T, rep *Report) {
				r := rep.Records[0]
				if rep.Policy.P != "reject" || rep.Policy.ADKIM != "s" || r.Disposition != "quarantine" ||
					r.DKIM != "pass" || r.SPF != "fail" || r.DKIMResults[0].Result != "pass" {
					t.Errorf("not lower-cased: policy %+v record %+v", rep.Policy, r)
				}
				if !r.DMARCPass() || len(rep.Warnings) != 0 {
					t.Errorf("DMARCPass %v, warnings %q", r.DMARCPass(), rep.Warnings)
				}
			}},
		{"whitespace around values", strings.NewReplacer("<domain>example.com", "<domain>\n Example.COM. \t",
			"<source_ip>192.0.2.1", "<source_ip> 192.0.2.1\n", "<count>5", "<count>\t5 ",
			"<begin>1704067200", "<begin>\n1704067200 ", "<p>none", "<p> none ",
			"<org_name>Example Org", "<org_name>  Example Org ").Replace(base),
			func(t *testing.T, rep *Report) {
				r := rep.Records[0]
				if rep.Policy.Domain != "example.com" || rep.Policy.P != "none" || rep.OrgName != "Example Org" ||
					r.SourceIP != netip.MustParseAddr("192.0.2.1") || r.Count != 5 || rep.DateBegin.Unix() != 1704067200 {
					t.Errorf("untrimmed: %+v", rep)
				}
			}},
		{"<> around report_id and email", strings.NewReplacer("<report_id>r-1", "<report_id> &lt;r-1@example.org&gt; ",
			"<email>dmarc@example.org", "<email><![CDATA[<dmarc@example.org>]]>").Replace(base),
			func(t *testing.T, rep *Report) {
				if rep.ReportID != "r-1@example.org" || rep.Email != "dmarc@example.org" {
					t.Errorf("report_id %q, email %q", rep.ReportID, rep.Email)
				}
			}},
		{"missing org_name", strings.Replace(base, "<org_name>Example Org</org_name>", "", 1), orgIs("example.org")},
		{"empty org_name", strings.Replace(base, "<org_name>Example Org</org_name>", "<org_name> </org_name>", 1),
			orgIs("example.org")},
		{"no org_name, no email", strings.NewReplacer("<org_name>Example Org</org_name>", "",
			"<email>dmarc@example.org</email>", "").Replace(base), func(t *testing.T, rep *Report) {
			if rep.OrgName != "" || !hasWarning(rep, "neither org_name nor email") {
				t.Errorf("org_name %q, warnings %q", rep.OrgName, rep.Warnings)
			}
		}},
		{"RFC 9990 default namespace", rfc9990("", `xmlns="`+NamespaceRFC9990+`"`), checkRFC9990},
		{"RFC 9990 prefixed namespace", rfc9990("d:", `xmlns:d="`+NamespaceRFC9990+`"`), checkRFC9990},
		{"RFC 9990 namespace from a wrapper", `<w:wrap xmlns="` + NamespaceRFC9990 + `" xmlns:w="urn:x">` +
			rfc9990("", "") + `</w:wrap>`, checkRFC9990},
		{"generator at feedback level", strings.Replace(base, "<report_metadata>",
			"<generator>Gen 2.0</generator><report_metadata>", 1), func(t *testing.T, rep *Report) {
			if rep.Generator != "Gen 2.0" {
				t.Errorf("generator %q", rep.Generator)
			}
		}},
		{"unclosed xs:schema wrapper", `<?xml version="1.0"?> <xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">` +
			"\n" + strings.SplitN(base, "?>", 2)[1], recordsAre(1, 5)},
		{"closed wrapper", `<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">` +
			strings.SplitN(base, "?>", 2)[1] + "</xs:schema>\n<!-- end -->\n", recordsAre(1, 5)},
		{"zero records", report(), func(t *testing.T, rep *Report) {
			if rep.Records != nil || rep.MessageCount() != 0 || len(rep.Warnings) != 0 {
				t.Errorf("records %v, count %d, warnings %q", rep.Records, rep.MessageCount(), rep.Warnings)
			}
		}},
		{"pct present", base, func(t *testing.T, rep *Report) {
			if rep.Policy.Pct == nil || *rep.Policy.Pct != 100 {
				t.Errorf("pct %v, want 100", rep.Policy.Pct)
			}
		}},
		{"pct absent", strings.Replace(base, "<pct>100</pct>", "", 1), func(t *testing.T, rep *Report) {
			if rep.Policy.Pct != nil {
				t.Errorf("pct %d, want nil", *rep.Policy.Pct)
			}
		}},
		{"fractional timestamps", strings.NewReplacer("<begin>1704067200", "<begin>1704067200.0",
			"<end>1704153599", "<end>1704153599.999").Replace(base), func(t *testing.T, rep *Report) {
			if !rep.DateBegin.Equal(time.Unix(1704067200, 0)) || rep.DateEnd.Unix() != 1704153599 {
				t.Errorf("dates %v .. %v", rep.DateBegin, rep.DateEnd)
			}
			if rep.DateBegin.Location() != time.UTC {
				t.Errorf("date in %v, want UTC", rep.DateBegin.Location())
			}
		}},
		{"begin == end", strings.Replace(base, "<end>1704153599", "<end>1704067200", 1), func(t *testing.T, rep *Report) {
			if !hasWarning(rep, "begin == end") || len(rep.Records) != 1 {
				t.Errorf("warnings %q, %d records", rep.Warnings, len(rep.Records))
			}
		}},
		{"records before metadata", `<feedback>` + record("192.0.2.1", "1") + record("192.0.2.2", "2") +
			strings.SplitN(strings.SplitN(base, "<feedback>", 2)[1], "<record>", 2)[0] +
			"<record>" + strings.SplitN(record("192.0.2.3", "3"), "<record>", 2)[1] + "</feedback>",
			recordsAre(3, 6, "192.0.2.1", "192.0.2.2", "192.0.2.3")},
		{"IPv4-mapped IPv6 unmapped, IPv6 canonical", report(record("::ffff:192.0.2.7", "1"),
			record("2001:DB8::1", "2"), record("2001:0db8:0000:0000:0000:0000:0000:0002", "3")),
			recordsAre(3, 6, "192.0.2.7", "2001:db8::1", "2001:db8::2")},
		{"comments and processing instructions anywhere", strings.NewReplacer("?>\n<feedback>", "?><!-- c --><?pi x?>\n<feedback>",
			"<count>5</count>", "<count><!-- c -->5<?pi y?></count>",
			"<report_metadata>", "<report_metadata><!-- c -->").Replace(base) + "<!-- after --><?pi z?>\n",
			recordsAre(1, 5)},
		{"unknown elements ignored", strings.NewReplacer("<row>", "<row><extra a='1'><deep><deeper/></deep></extra>",
			"<report_metadata>", "<report_metadata><unknown>x</unknown>",
			"<policy_published>", "<policy_published><psd>n</psd>",
			"<org_name>Example Org", "<org_name>Example <b>bold</b>Org").Replace(base),
			func(t *testing.T, rep *Report) {
				if rep.OrgName != "Example Org" || len(rep.Records) != 1 || len(rep.Warnings) != 0 {
					t.Errorf("org %q, %d records, warnings %q", rep.OrgName, len(rep.Records), rep.Warnings)
				}
			}},
		{"self-closing elements", strings.Replace(base, "<p>none</p>", "<p/><fo />", 1), func(t *testing.T, rep *Report) {
			if rep.Policy.P != "" || len(rep.Records) != 1 {
				t.Errorf("policy %+v", rep.Policy)
			}
		}},
		{"reasons, several auth results, envelope fields, errors", strings.NewReplacer(
			"</policy_evaluated>", "<reason><type></type><comment></comment></reason>"+
				"<reason><type>Forwarded</type><comment> via list </comment></reason><reason><type>local_policy</type></reason></policy_evaluated>",
			"<header_from>example.com</header_from>", "<envelope_to>example.net</envelope_to><envelope_from>bounce.example.com</envelope_from><header_from>example.com</header_from>",
			"</auth_results>", "<dkim><domain>esp.example</domain><selector>k2</selector><result>fail</result><human_result>bad sig</human_result></dkim>"+
				"<spf><domain>bounce.example.com</domain><scope>mfrom</scope><result>softfail</result></spf><spf><domain>mx.example</domain><scope>helo</scope><result>pass</result></spf></auth_results>",
			"<report_id>", "<error>first problem</error><error></error><error>second</error><report_id>").Replace(base),
			func(t *testing.T, rep *Report) {
				r := rep.Records[0]
				wantReasons := []Reason{{"forwarded", "via list"}, {"local_policy", ""}}
				wantDKIM := []DKIMResult{{"example.com", "s1", "pass", ""}, {"esp.example", "k2", "fail", "bad sig"}}
				wantSPF := []SPFResult{{"bounce.example.com", "mfrom", "softfail", ""}, {"mx.example", "helo", "pass", ""}}
				if !reflect.DeepEqual(r.Reasons, wantReasons) || !reflect.DeepEqual(r.DKIMResults, wantDKIM) ||
					!reflect.DeepEqual(r.SPFResults, wantSPF) {
					t.Errorf("reasons %+v dkim %+v spf %+v", r.Reasons, r.DKIMResults, r.SPFResults)
				}
				if r.EnvelopeTo != "example.net" || r.EnvelopeFrom != "bounce.example.com" {
					t.Errorf("envelope to %q from %q", r.EnvelopeTo, r.EnvelopeFrom)
				}
				if !reflect.DeepEqual(rep.Errors, []string{"first problem", "second"}) {
					t.Errorf("errors %q", rep.Errors)
				}
			}},
		{"unknown enum values kept with a warning", strings.NewReplacer("<disposition>none", "<disposition>Discard",
			"<result>pass", "<result>HardFail", "<p>none", "<p>monitor").Replace(base),
			func(t *testing.T, rep *Report) {
				r := rep.Records[0]
				if r.Disposition != "discard" || r.DKIMResults[0].Result != "hardfail" || rep.Policy.P != "monitor" {
					t.Errorf("values not kept lower-cased: %+v %+v", rep.Policy, r)
				}
				for _, w := range []string{`unknown disposition "discard"`, `unknown dkim result "hardfail"`, `unknown policy p "monitor"`} {
					if !hasWarning(rep, w) {
						t.Errorf("no warning %q in %q", w, rep.Warnings)
					}
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.check(t, mustParse(t, tc.doc))
		})
	}
}

func orgIs(want string) func(*testing.T, *Report) {
	return func(t *testing.T, rep *Report) {
		t.Helper()
		if rep.OrgName != want {
			t.Errorf("org_name %q, want %q", rep.OrgName, want)
		}
	}
}

// recordsAre checks the number of records, the message total and, if given, the source IPs
// in order (in their canonical string form).
func recordsAre(n int, total int64, ips ...string) func(*testing.T, *Report) {
	return func(t *testing.T, rep *Report) {
		t.Helper()
		if len(rep.Records) != n || rep.MessageCount() != total {
			t.Fatalf("%d records, %d messages; want %d, %d (warnings %q)", len(rep.Records),
				rep.MessageCount(), n, total, rep.Warnings)
		}
		for i, ip := range ips {
			got := rep.Records[i].SourceIP
			if got.String() != ip || got.Is4In6() || got.Zone() != "" {
				t.Errorf("record %d source IP %v, want %s", i, got, ip)
			}
		}
		if rep.Policy.Domain != "example.com" || rep.DateBegin.IsZero() {
			t.Errorf("metadata lost: %+v", rep)
		}
	}
}

func TestRecordHelpers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		dkim, spf string
		pass      bool
	}{{"pass", "fail", true}, {"fail", "pass", true}, {"pass", "pass", true}, {"fail", "fail", false}, {"", "", false}}
	for _, tc := range tests {
		if got := (Record{DKIM: tc.dkim, SPF: tc.spf}).DMARCPass(); got != tc.pass {
			t.Errorf("DMARCPass(dkim %q, spf %q) = %v, want %v", tc.dkim, tc.spf, got, tc.pass)
		}
	}
	rep := &Report{Records: []Record{{Count: 1 << 62}, {Count: 1 << 62}, {Count: 1 << 62}}}
	if got := rep.MessageCount(); got != 1<<63-1 {
		t.Errorf("MessageCount of a hand-built overflowing report = %d, want it saturated at MaxInt64", got)
	}
}

func TestLimitsDefaults(t *testing.T) {
	t.Parallel()
	if got := (Limits{}).withDefaults(); got != DefaultLimits {
		t.Errorf("zero Limits became %+v, want %+v", got, DefaultLimits)
	}
	if got := (Limits{MaxDepth: -1, MaxRecords: 7}).withDefaults(); got.MaxDepth != 64 || got.MaxRecords != 7 {
		t.Errorf("got %+v", got)
	}
	want := Limits{MaxDepth: 64, MaxTokenBytes: 1 << 20, MaxRecords: 5_000_000, MaxFutureSkew: 24 * time.Hour, MaxCount: 1_000_000_000}
	if DefaultLimits != want {
		t.Errorf("DefaultLimits %+v, documented %+v", DefaultLimits, want)
	}
}
