// Package advisor tells a domain owner how ready a domain is for the next DMARC policy step
// (none → quarantine → reject, with pct ramps), from what the aggregate reports say of its
// senders: the share of legitimate volume that is aligned, the legitimate senders a stricter
// policy would hurt with what to fix for each, and the DMARC record to publish next.
//
// It is pure: pkg/ml reads the rollups and the sender catalogue into an Input, Advise decides.
// "Legitimate" follows RFC 7489 §10.5's advice to move on only once the domain's own mail
// authenticates: a source is legitimate when the sender catalogue names it (a known ESP or
// provider) or when most of its mail already passes DMARC (the domain's own servers); the rest
// is unauthenticated mail, most of it forwarding damage or spoofing, that a stricter policy is
// meant to stop.
package advisor

import (
	"fmt"
	"slices"
	"strings"
)

// Stages of a domain on the way to p=reject.
const (
	StageCollect  = "collect_data" // too little data to judge
	StageFix      = "fix_senders"  // legitimate senders would be hurt: fix them first
	StageReady    = "ready"        // publish Next
	StageAtTarget = "at_target"    // p=reject at 100%: nothing further
)

// Thresholds of the advice; zero fields take the defaults.
type Thresholds struct {
	// AlignedShare of legitimate messages must pass DMARC before the next step (default 0.98).
	AlignedShare float64
	// MinMessages and MinDays of data before any advice but "collect data" (defaults 100, 7).
	MinMessages int64
	MinDays     int
	// LegitPassShare: a source the catalogue does not name is legitimate when at least this share
	// of its mail passes DMARC (default 0.5).
	LegitPassShare float64
}

func (t Thresholds) withDefaults() Thresholds {
	if t.AlignedShare <= 0 {
		t.AlignedShare = 0.98
	}
	if t.MinMessages <= 0 {
		t.MinMessages = 100
	}
	if t.MinDays <= 0 {
		t.MinDays = 7
	}
	if t.LegitPassShare <= 0 {
		t.LegitPassShare = 0.5
	}
	return t
}

// Source is one sender of the domain's mail over the window: a named sender (all its
// addresses), or an unnamed address.
type Source struct {
	Name        string // the catalogue's sender name, else the PTR base domain or the address
	Known       bool   // named by the sender catalogue
	IPs         int
	Messages    int64
	Passed      int64 // DMARC pass (aligned DKIM or aligned SPF)
	DKIMAligned int64
	SPFAligned  int64
}

// Input is what the reports say of one domain.
type Input struct {
	Domain  string
	Policy  string // the published p= of the latest report: none, quarantine, reject ("" unknown)
	Pct     int    // its pct= (0: not given, meaning 100)
	Days    int    // days with data in the window
	Sources []Source
}

// Step is one policy step.
type Step struct {
	Policy string `json:"policy"`
	Pct    int    `json:"pct"`
}

// Ladder is the path to p=reject: each stricter policy ramped in over pct 25 and 50 before 100
// (RFC 7489 §6.6.4: pct lets a domain owner apply a policy to a share of failing mail first).
var Ladder = []Step{{"none", 100}, {"quarantine", 25}, {"quarantine", 50}, {"quarantine", 100},
	{"reject", 25}, {"reject", 50}, {"reject", 100}}

// Hurt is a legitimate sender that a stricter policy would hurt.
type Hurt struct {
	Sender          string  `json:"sender"`
	Known           bool    `json:"known"`
	IPs             int     `json:"ips"`
	Messages        int64   `json:"messages"`
	FailingMessages int64   `json:"failing_messages"`
	DKIMAlignedRate float64 `json:"dkim_aligned_rate"`
	SPFAlignedRate  float64 `json:"spf_aligned_rate"`
	Fix             string  `json:"fix"`
}

// Advice is the answer for one domain.
type Advice struct {
	Domain          string   `json:"domain"`
	Current         Step     `json:"current"`
	Stage           string   `json:"stage"`
	Ready           bool     `json:"ready"`
	Next            Step     `json:"next"`
	Record          string   `json:"record"`
	LegitMessages   int64    `json:"legitimate_messages"`
	AlignedMessages int64    `json:"aligned_legitimate_messages"`
	AlignedShare    *float64 `json:"aligned_share"` // nil without legitimate mail
	Unauthenticated int64    `json:"unauthenticated_messages"`
	Hurt            []Hurt   `json:"hurt_senders"`
	Reasons         []string `json:"reasons"`
	RequiredShare   float64  `json:"required_aligned_share"`
}

// current places the published policy on the ladder (an unknown or absent one counts as none).
func current(policy string, pct int) Step {
	p := strings.ToLower(strings.TrimSpace(policy))
	if p != "quarantine" && p != "reject" {
		p = "none"
	}
	if pct <= 0 || pct > 100 {
		pct = 100
	}
	if p == "none" {
		pct = 100
	}
	return Step{p, pct}
}

func rank(s Step) int {
	base := map[string]int{"none": 0, "quarantine": 1000, "reject": 2000}[s.Policy]
	return base + s.Pct
}

// NextStep is the first ladder step stricter than s.
func NextStep(s Step) (Step, bool) {
	for _, l := range Ladder {
		if rank(l) > rank(s) {
			return l, true
		}
	}
	return s, false
}

// Record is the DMARC TXT record of a step. Reporting addresses are the owner's: the advice says
// to keep the rua/ruf tags already published.
func Record(s Step) string {
	r := "v=DMARC1; p=" + s.Policy
	if s.Pct != 100 {
		r += fmt.Sprintf("; pct=%d", s.Pct)
	}
	return r
}

func share(n, d int64) float64 {
	if d == 0 {
		return 0
	}
	return float64(n) / float64(d)
}

// fix says what to change for one sender, from which of DKIM and SPF align.
func fix(domain string, s Source) string {
	dkim, spf := share(s.DKIMAligned, s.Messages), share(s.SPFAligned, s.Messages)
	who := s.Name
	switch {
	case dkim < 0.5 && spf < 0.5:
		return fmt.Sprintf("Neither DKIM nor SPF aligns for %s: have it sign with DKIM as d=%s (publish its selector's public key) and send with a bounce address under %s authorised in your SPF record.", who, domain, domain)
	case dkim < 0.5:
		return fmt.Sprintf("Only SPF aligns for %s, which breaks when mail is forwarded: enable DKIM signing as d=%s.", who, domain)
	case spf < 0.5:
		return fmt.Sprintf("DKIM aligns for most of %s's mail but not all: make every stream of %s sign as d=%s (SPF does not align, so unsigned messages fail).", who, who, domain)
	}
	return fmt.Sprintf("Some of %s's mail fails both DKIM and SPF alignment: check each of its streams and addresses signs as d=%s.", who, domain)
}

// Advise decides the domain's next step.
func Advise(in Input, th Thresholds) Advice {
	th = th.withDefaults()
	cur := current(in.Policy, in.Pct)
	a := Advice{Domain: in.Domain, Current: cur, Next: cur, RequiredShare: th.AlignedShare, Hurt: []Hurt{}, Reasons: []string{}}
	var total int64
	for _, s := range in.Sources {
		total += s.Messages
		legit := s.Known || share(s.Passed, s.Messages) >= th.LegitPassShare
		if !legit {
			a.Unauthenticated += s.Messages
			continue
		}
		a.LegitMessages += s.Messages
		a.AlignedMessages += s.Passed
		// Hurt: failing now, or passing on SPF alone, which a forwarder breaks (RFC 7489 §4.2:
		// forwarding keeps DKIM, not SPF), so a stricter policy would cost it forwarded mail.
		if s.Messages > 0 && (share(s.Passed, s.Messages) < th.AlignedShare || share(s.DKIMAligned, s.Messages) < 0.5) {
			a.Hurt = append(a.Hurt, Hurt{Sender: s.Name, Known: s.Known, IPs: s.IPs, Messages: s.Messages,
				FailingMessages: s.Messages - s.Passed, DKIMAlignedRate: share(s.DKIMAligned, s.Messages),
				SPFAlignedRate: share(s.SPFAligned, s.Messages), Fix: fix(in.Domain, s)})
		}
	}
	slices.SortFunc(a.Hurt, func(x, y Hurt) int {
		if x.FailingMessages != y.FailingMessages {
			if x.FailingMessages > y.FailingMessages {
				return -1
			}
			return 1
		}
		return strings.Compare(x.Sender, y.Sender)
	})
	if a.LegitMessages > 0 {
		v := share(a.AlignedMessages, a.LegitMessages)
		a.AlignedShare = &v
	}
	next, more := NextStep(cur)
	switch {
	case !more:
		a.Stage = StageAtTarget
		a.Reasons = append(a.Reasons, "p=reject at 100% is published: nothing stricter to move to; keep watching new senders")
	case total < th.MinMessages || in.Days < th.MinDays:
		a.Stage = StageCollect
		a.Reasons = append(a.Reasons, fmt.Sprintf("%d messages over %d days: wait for at least %d messages over %d days of reports before changing policy",
			total, in.Days, th.MinMessages, th.MinDays))
	case a.LegitMessages == 0:
		// Nothing legitimate sends as the domain: every message is unauthenticated, so the
		// strictest policy hurts no one (a parked or non-sending domain).
		a.Stage, a.Ready, a.Next = StageReady, true, Ladder[len(Ladder)-1]
		a.Reasons = append(a.Reasons, fmt.Sprintf("no legitimate mail seen: all %d messages are unauthenticated (spoofing or forwarding), so p=reject hurts no sender of yours", a.Unauthenticated))
	case *a.AlignedShare >= th.AlignedShare:
		a.Stage, a.Ready, a.Next = StageReady, true, next
		a.Reasons = append(a.Reasons, fmt.Sprintf("%.2f%% of legitimate mail passes DMARC (at least %.0f%% needed)", *a.AlignedShare*100, th.AlignedShare*100))
		if len(a.Hurt) > 0 {
			a.Reasons = append(a.Reasons, "a few legitimate senders still fail part of their mail: see hurt_senders")
		}
	default:
		a.Stage = StageFix
		a.Reasons = append(a.Reasons, fmt.Sprintf("only %.2f%% of legitimate mail passes DMARC (at least %.0f%% needed): fix the senders listed before tightening",
			*a.AlignedShare*100, th.AlignedShare*100))
	}
	a.Record = Record(a.Next)
	if a.Next != cur {
		a.Reasons = append(a.Reasons, "publish the record at _dmarc."+in.Domain+", keeping your rua/ruf tags")
	}
	return a
}
