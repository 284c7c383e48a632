package senders

import (
	"database/sql"
	"slices"
	"strings"
	"testing"
)

func codes(as []Advice) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.Code
	}
	return out
}

// TestAdvise pins each advice rule on crafted sums.
func TestAdvise(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		f     Facts
		want  []string
		words []string // the text must say these
	}{
		{"aligned service", Facts{Domain: "example.com", Sender: "Google Workspace", Type: TypeMailbox, Messages: 1000, DMARCPass: 1000, DKIMPass: 1000, SPFPass: 995},
			[]string{AdviceAligned}, []string{"nothing to fix"}},
		{"spf only: custom dkim", Facts{Domain: "example.com", Sender: "SendGrid", Type: TypeESP, Messages: 100, DMARCPass: 100, DKIMPass: 0, SPFPass: 100},
			[]string{AdviceCustomDKIM}, []string{"custom DKIM", "d=example.com", "SendGrid"}},
		{"dkim only: return-path", Facts{Domain: "example.com", Sender: "Mailchimp", Type: TypeMarketing, Messages: 100, DMARCPass: 100, DKIMPass: 100, SPFPass: 0},
			[]string{AdviceReturnPath}, []string{"return-path", "example.com"}},
		{"known service fails both", Facts{Domain: "example.com", Sender: "Microsoft 365", Type: TypeMailbox, Messages: 7, DMARCPass: 0},
			[]string{AdviceNotAuthorized}, []string{"custom DKIM", "d=example.com", "return-path", "spoofing through Microsoft 365"}},
		{"gateway relaying", Facts{Domain: "example.com", Sender: "Mimecast", Type: TypeSecurity, Messages: 50, DMARCPass: 0},
			[]string{AdviceForwarded}, []string{"gateway"}},
		{"unknown never passes", Facts{Domain: "example.com", Sender: "evil.example", Type: TypeUnknown, Messages: 40, DMARCPass: 0},
			[]string{AdviceLikelySpoofing}, []string{"likely spoofing", "Safe to reject", "Evil.example"}},
		{"residential never passes", Facts{Domain: "example.com", Sender: ISPName, Type: TypeISP, Messages: 3, DMARCPass: 0},
			[]string{AdviceLikelySpoofing}, []string{"Residential", "Safe to reject"}},
		{"hosting network never passes", Facts{Domain: "example.com", Sender: "Amazon Web Services", Type: TypeHosting, Messages: 9, DMARCPass: 0},
			[]string{AdviceLikelySpoofing}, []string{"Amazon Web Services is not a known sending service"}},
		{"unknown sometimes passes", Facts{Domain: "example.com", Type: TypeUnknown, Messages: 10, DMARCPass: 5, DKIMPass: 5},
			[]string{AdviceInvestigate}, []string{"50%", "This source"}},
		{"unknown always passes", Facts{Domain: "example.com", Sender: "mail.example.org", Type: TypeUnknown, Messages: 10, DMARCPass: 10, DKIMPass: 10, SPFPass: 10},
			[]string{AdviceAligned}, nil},
		{"service with partial failures", Facts{Domain: "example.com", Sender: "Amazon SES", Type: TypeESP, Messages: 100, DMARCPass: 80, DKIMPass: 80, SPFPass: 80},
			[]string{AdviceCustomDKIM, AdvicePartial}, []string{"80%", "20% of Amazon SES"}},
		{"mailbox provider with forwarded failures", Facts{Domain: "example.com", Sender: "Google Workspace", Type: TypeMailbox, Messages: 100, DMARCPass: 90, DKIMPass: 99, SPFPass: 90},
			[]string{AdviceReturnPath, AdviceForwarded}, []string{"forwarded"}},
		{"pending enrichment", Facts{Domain: "example.com", Sender: "Google Workspace", Type: TypeMailbox, Messages: 10, DMARCPass: 10, DKIMPass: 10, SPFPass: 10, PendingIPs: 2},
			[]string{AdviceAligned, AdviceEnrichmentStale}, []string{"2 of this group's sources"}},
		{"no messages", Facts{Domain: "example.com", Messages: 0}, []string{}, nil},
	}
	for _, tc := range tests {
		got := Advise(tc.f)
		if !slices.Equal(codes(got), tc.want) {
			t.Errorf("%s: codes %v, want %v (%+v)", tc.name, codes(got), tc.want, got)
			continue
		}
		all := ""
		for _, a := range got {
			all += a.Text + " "
		}
		for _, w := range tc.words {
			if !strings.Contains(all, w) {
				t.Errorf("%s: advice %q does not say %q", tc.name, all, w)
			}
		}
	}
}

func ns(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// TestGroup: enrichment groups of a domain merge into named senders; unknown ones stay apart
// by base domain, then by network.
func TestGroup(t *testing.T) {
	t.Parallel()
	c, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	// The groups as sync derives them (sender_groups): a named group shows what all its
	// sources share (here the AS, not the base domain: one Google source has no PTR).
	gw := classify(c, "google.com", 15169, "GOOGLE", false)
	gw.BaseDomain = ""
	if gw2 := classify(c, "", 15169, "GOOGLE", false); gw2.Key != gw.Key {
		t.Fatalf("Google by AS is %q, by PTR %q", gw2.Key, gw.Key)
	}
	g := func(domain string, grp group, msgs, pass, dkim, spf, both, ips int64, first, last int32) Row {
		return Row{Domain: domain, Group: grp, Sums: Sums{Messages: msgs, DMARCPass: pass, DKIMPass: dkim, SPFPass: spf, BothPass: both, IPs: ips, First: first, Last: last}}
	}
	pending := group{Key: PendingKey, Type: TypeUnknown, Pending: true}
	items := Group([]Row{
		g("example.com", gw, 150, 150, 150, 110, 110, 5, 19990, 20010),
		g("example.com", classify(c, "evil.example", 64500, "EVIL", false), 30, 0, 0, 0, 0, 4, 20001, 20002),
		g("example.com", classify(c, "", 64501, "SOMENET", false), 5, 0, 0, 0, 0, 1, 20001, 20001),
		g("example.com", classify(c, "isp.example", 64502, "ISP", true), 2, 0, 0, 0, 0, 2, 20003, 20003),
		g("example.com", pending, 1, 0, 0, 0, 0, 1, 20004, 20004),
		g("other.org", gw, 10, 10, 10, 10, 10, 1, 20000, 20000),
	})
	type row struct {
		domain, label string
		msgs, ips     int64
		typ           string
	}
	var got []row
	for _, it := range items {
		got = append(got, row{it.Domain, label(&it), it.Messages, it.IPs, it.SenderType})
	}
	want := []row{
		{"example.com", "Google Workspace", 150, 5, TypeMailbox},
		{"example.com", "evil.example", 30, 4, TypeUnknown},
		{"other.org", "Google Workspace", 10, 1, TypeMailbox},
		{"example.com", "SOMENET", 5, 1, TypeUnknown},
		{"example.com", ISPName, 2, 2, TypeISP},
		{"example.com", "", 1, 1, TypeUnknown},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("groups:\n got %v\nwant %v", got, want)
	}
	first := items[0]
	if first.FirstSeen != "2024-09-24" || first.LastSeen != "2024-10-14" {
		t.Errorf("first/last seen %s %s", first.FirstSeen, first.LastSeen)
	}
	if first.Alignment != (Alignment{Both: 110, DKIMOnly: 40, SPFOnly: 0, Neither: 0}) || first.DKIMAlignedMessages != 150 || first.SPFAlignedMessages != 110 {
		t.Errorf("alignment %+v", first.Alignment)
	}
	if first.BaseDomain != nil || first.ASN == nil || *first.ASN != 15169 {
		t.Errorf("a named group keeps only what all its sources share: base %v asn %v", first.BaseDomain, first.ASN)
	}
	if got := codes(items[1].Advice); !slices.Equal(got, []string{AdviceLikelySpoofing}) {
		t.Errorf("unknown sender advice %v", got)
	}
	if got := codes(items[5].Advice); !slices.Contains(got, AdviceEnrichmentStale) {
		t.Errorf("unenriched source advice %v", got)
	}
}
