package advisor

import (
	"strings"
	"testing"
)

var (
	ownServers = Source{Name: "mail.example.com", IPs: 2, Messages: 5000, Passed: 4990, DKIMAligned: 4980, SPFAligned: 4985}
	googleWS   = Source{Name: "Google Workspace", Known: true, IPs: 10, Messages: 20000, Passed: 19990, DKIMAligned: 19990, SPFAligned: 19000}
	// An ESP sending as the domain with its own bounce domain and d= signature: nothing aligns.
	unalignedESP = Source{Name: "Mailchimp", Known: true, IPs: 4, Messages: 3000, Passed: 30, DKIMAligned: 30, SPFAligned: 0}
	// An ESP that aligns SPF only.
	spfOnlyESP = Source{Name: "SendGrid", Known: true, IPs: 2, Messages: 2000, Passed: 1990, DKIMAligned: 0, SPFAligned: 1990}
	spoofer    = Source{Name: "198.51.100.7", IPs: 1, Messages: 800, Passed: 0}
	spoofer2   = Source{Name: "bad.example.net", IPs: 3, Messages: 300, Passed: 2}
)

func TestAdvise(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		in     Input
		stage  string
		next   Step
		record string
		hurt   []string // senders listed as hurt, in order
		fixHas string   // a word the first hurt sender's fix must contain
		unauth int64
	}{
		{name: "fully aligned domain at p=none moves to quarantine 25%",
			in:    Input{Domain: "example.com", Policy: "none", Days: 30, Sources: []Source{ownServers, googleWS, spoofer}},
			stage: StageReady, next: Step{"quarantine", 25}, record: "v=DMARC1; p=quarantine; pct=25", unauth: 800},
		{name: "fully aligned at quarantine 50% ramps to 100%",
			in:    Input{Domain: "example.com", Policy: "quarantine", Pct: 50, Days: 30, Sources: []Source{ownServers, googleWS}},
			stage: StageReady, next: Step{"quarantine", 100}, record: "v=DMARC1; p=quarantine"},
		{name: "fully aligned at quarantine moves to reject 25%",
			in:    Input{Domain: "example.com", Policy: "quarantine", Days: 30, Sources: []Source{ownServers, googleWS}},
			stage: StageReady, next: Step{"reject", 25}, record: "v=DMARC1; p=reject; pct=25"},
		{name: "an off-ladder pct moves to the next ladder step",
			in:    Input{Domain: "example.com", Policy: "quarantine", Pct: 10, Days: 30, Sources: []Source{ownServers}},
			stage: StageReady, next: Step{"quarantine", 25}, record: "v=DMARC1; p=quarantine; pct=25"},
		{name: "unaligned ESP holds the domain at none and is named with a fix",
			in:    Input{Domain: "example.com", Policy: "none", Days: 30, Sources: []Source{ownServers, unalignedESP, spoofer}},
			stage: StageFix, next: Step{"none", 100}, record: "v=DMARC1; p=none", hurt: []string{"Mailchimp"}, fixHas: "DKIM", unauth: 800},
		{name: "an ESP aligning SPF only is ready but listed, told to sign with DKIM",
			in:    Input{Domain: "example.com", Policy: "none", Days: 30, Sources: []Source{googleWS, spfOnlyESP}},
			stage: StageReady, next: Step{"quarantine", 25}, record: "v=DMARC1; p=quarantine; pct=25", hurt: []string{"SendGrid"}, fixHas: "enable DKIM"},
		{name: "spoofing only goes straight to reject",
			in:    Input{Domain: "parked.example", Policy: "none", Days: 20, Sources: []Source{spoofer, spoofer2}},
			stage: StageReady, next: Step{"reject", 100}, record: "v=DMARC1; p=reject", unauth: 1100},
		{name: "too little data",
			in:    Input{Domain: "new.example", Policy: "none", Days: 2, Sources: []Source{ownServers}},
			stage: StageCollect, next: Step{"none", 100}, record: "v=DMARC1; p=none"},
		{name: "too few messages",
			in:    Input{Domain: "small.example", Policy: "none", Days: 30, Sources: []Source{{Name: "x", Messages: 20, Passed: 20, DKIMAligned: 20}}},
			stage: StageCollect, next: Step{"none", 100}, record: "v=DMARC1; p=none"},
		{name: "already at reject 100%",
			in:    Input{Domain: "example.com", Policy: "reject", Days: 30, Sources: []Source{ownServers, unalignedESP}},
			stage: StageAtTarget, next: Step{"reject", 100}, record: "v=DMARC1; p=reject", hurt: []string{"Mailchimp"}, fixHas: "DKIM"},
		{name: "unknown published policy counts as none",
			in:    Input{Domain: "example.com", Policy: "", Days: 30, Sources: []Source{ownServers}},
			stage: StageReady, next: Step{"quarantine", 25}, record: "v=DMARC1; p=quarantine; pct=25"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			a := Advise(c.in, Thresholds{})
			if a.Stage != c.stage || a.Next != c.next || a.Record != c.record {
				t.Errorf("stage %s next %+v record %q; want %s %+v %q (reasons %v)", a.Stage, a.Next, a.Record, c.stage, c.next, c.record, a.Reasons)
			}
			if a.Ready != (c.stage == StageReady) {
				t.Errorf("ready %v at stage %s", a.Ready, a.Stage)
			}
			var got []string
			for _, h := range a.Hurt {
				got = append(got, h.Sender)
			}
			if strings.Join(got, ",") != strings.Join(c.hurt, ",") {
				t.Errorf("hurt senders %v, want %v", got, c.hurt)
			}
			if c.fixHas != "" && (len(a.Hurt) == 0 || !strings.Contains(a.Hurt[0].Fix, c.fixHas)) {
				t.Errorf("fix %+v does not say %q", a.Hurt, c.fixHas)
			}
			if a.Unauthenticated != c.unauth {
				t.Errorf("unauthenticated %d, want %d", a.Unauthenticated, c.unauth)
			}
			if len(a.Reasons) == 0 {
				t.Error("no reason given")
			}
		})
	}
}

// TestAlignedShare: the share counts legitimate volume only, spoofing left out.
func TestAlignedShare(t *testing.T) {
	t.Parallel()
	a := Advise(Input{Domain: "example.com", Days: 30, Sources: []Source{ownServers, unalignedESP, spoofer}}, Thresholds{})
	want := float64(ownServers.Passed+unalignedESP.Passed) / float64(ownServers.Messages+unalignedESP.Messages)
	if a.AlignedShare == nil || *a.AlignedShare != want {
		t.Errorf("aligned share %v, want %v", a.AlignedShare, want)
	}
	if a.LegitMessages != ownServers.Messages+unalignedESP.Messages {
		t.Errorf("legitimate messages %d", a.LegitMessages)
	}
	// A stricter threshold turns a ready domain into one to fix.
	b := Advise(Input{Domain: "example.com", Days: 30, Sources: []Source{googleWS, spfOnlyESP}}, Thresholds{AlignedShare: 0.9999})
	if b.Stage != StageFix {
		t.Errorf("with a 99.99%% requirement: stage %s", b.Stage)
	}
}
