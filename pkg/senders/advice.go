package senders

import (
	"fmt"
	"math"
)

// Advice is one thing to fix (or to know) about a sender of a domain.
type Advice struct {
	Code string `json:"code"`
	Text string `json:"text"`
}

// Advice codes.
const (
	AdviceAligned         = "aligned"          // nothing to fix
	AdviceCustomDKIM      = "set_custom_dkim"  // DKIM does not align: the provider signs with its own domain
	AdviceReturnPath      = "set_return_path"  // SPF does not align while DKIM does: a custom return-path adds a fallback
	AdviceNotAuthorized   = "not_authorized"   // a known service fails both: not set up for the domain
	AdvicePartial         = "partial_failures" // some of this sender's mail fails
	AdviceLikelySpoofing  = "likely_spoofing"  // never passes and is no known service
	AdviceForwarded       = "forwarded"        // a gateway or mailbox provider relaying mail: failures may be forwarding
	AdviceInvestigate     = "investigate"      // an unknown source that sometimes passes
	AdviceEnrichmentStale = "enrichment_pending"
)

// Facts are what advice is computed from: one sender's sums for one domain.
type Facts struct {
	Domain     string
	Sender     string // "" for an unknown sender
	Type       string
	Messages   int64
	DMARCPass  int64
	DKIMPass   int64 // aligned DKIM pass
	SPFPass    int64 // aligned SPF pass
	PendingIPs int64 // sources not enriched yet
}

// passShare under which a sender is treated as failing, and over which as passing: a few
// failures of a good sender are forwarding noise, not a configuration problem.
const (
	goodShare = 0.98
	badShare  = 0.02
)

// Advise computes the advice for one sender of a domain from its aligned DKIM and SPF
// results (the policy-evaluated results reporters send: aligned pass or not).
func Advise(f Facts) []Advice {
	if f.Messages <= 0 {
		return nil
	}
	share := func(n int64) float64 { return float64(n) / float64(f.Messages) }
	pass, dkim, spf := share(f.DMARCPass), share(f.DKIMPass), share(f.SPFPass)
	pct := func(x float64) string { return fmt.Sprintf("%.0f%%", math.Round(x*100)) }
	var out []Advice
	add := func(code, format string, args ...any) {
		out = append(out, Advice{Code: code, Text: fmt.Sprintf(format, args...)})
	}
	known := f.Sender != "" && f.Type != TypeISP && f.Type != TypeHosting && f.Type != TypeUnknown
	who := f.Sender
	if who == "" {
		who = "this source"
	}
	switch {
	case !known && pass <= badShare:
		if f.Type == TypeISP {
			add(AdviceLikelySpoofing, "Residential or dynamic addresses sending as %s never pass DMARC: likely spoofing or infected machines. Safe to reject (p=reject) once your own senders pass.", f.Domain)
		} else {
			add(AdviceLikelySpoofing, "%s is not a known sending service and none of its %d messages pass DMARC for %s: likely spoofing. Safe to reject (p=reject) once your own senders pass.", capitalise(who), f.Messages, f.Domain)
		}
	case !known && pass < goodShare:
		add(AdviceInvestigate, "%s is not a known sending service and passes DMARC for only %s of its messages: find out whether it is yours (then authorise it with DKIM d=%s or SPF) or spoofing.", capitalise(who), pct(pass), f.Domain)
	case known && pass <= badShare && f.Type == TypeSecurity:
		add(AdviceForwarded, "%s relays mail it received (a filtering gateway): forwarding breaks SPF and rewriting breaks DKIM. If this is not your own gateway the messages are forwarded copies; if it is yours, sign with DKIM d=%s after filtering.", f.Sender, f.Domain)
	case known && pass <= badShare:
		add(AdviceNotAuthorized, "%s sends as %s but neither DKIM nor SPF aligns for any message: if you use %s, set up custom DKIM signing with d=%s in its settings and a custom return-path (envelope from) in your domain; if you do not, this is spoofing through %s.", f.Sender, f.Domain, f.Sender, f.Domain, f.Sender)
	default:
		if known && dkim < goodShare {
			if spf >= goodShare {
				add(AdviceCustomDKIM, "%s passes DMARC through SPF only: DKIM does not align (it signs with its own domain, or not at all). Set up custom DKIM with d=%s in %s so mail still passes when forwarded.", f.Sender, f.Domain, f.Sender)
			} else {
				add(AdviceCustomDKIM, "DKIM aligns for only %s of %s's messages: set up custom DKIM with d=%s in %s (it signs with its own domain otherwise).", pct(dkim), f.Sender, f.Domain, f.Sender)
			}
		}
		if known && dkim >= goodShare && spf < goodShare {
			add(AdviceReturnPath, "SPF does not align for %s (its return-path is in the provider's domain): mail passes through DKIM; optionally set a custom return-path (bounce domain) under %s as a fallback.", f.Sender, f.Domain)
		}
		if pass < goodShare && pass > badShare {
			code := AdvicePartial
			if f.Type == TypeMailbox || f.Type == TypeSecurity {
				code = AdviceForwarded
			}
			add(code, "%s of %s's messages fail DMARC for %s: check every server and account of this sender is set up (custom DKIM d=%s), or these are forwarded copies.", pct(1-pass), capitalise(who), f.Domain, f.Domain)
		}
		if len(out) == 0 {
			add(AdviceAligned, "%s passes DMARC with aligned DKIM and SPF for %s of its messages: nothing to fix.", capitalise(who), pct(pass))
		}
	}
	if f.PendingIPs > 0 {
		add(AdviceEnrichmentStale, "%d of this group's sources are not enriched yet; the grouping may change once they are.", f.PendingIPs)
	}
	return out
}

func capitalise(s string) string {
	if s == "" {
		return s
	}
	if s[0] >= 'a' && s[0] <= 'z' {
		return string(s[0]-'a'+'A') + s[1:]
	}
	return s
}
