package export

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/vigilhq/vigil/pkg/analytics"
	"github.com/vigilhq/vigil/pkg/store"
)

// Summary is what the PDF and the digest e-mail show: the rollup answers for one filter set.
type Summary struct {
	Scope      string // "example.com" or "All domains"
	Filters    string // the filters in words
	Generated  time.Time
	KPIs       analytics.Summary
	Breakdown  analytics.Breakdown
	Timeline   analytics.Timeline
	Sources    []analytics.Source // top by messages
	Failing    []analytics.Source // top by DMARC-failing messages
	Senders    []Sender
	Reporters  []analytics.Organization
	Policy     []analytics.PolicyDomain
	Advice     []string
	TopN       int
	SourcesAll int64 // sources in scope
}

// Sender is a named sending service (pkg/senders, through the sources' enrichment) or the
// base domain of unnamed sources, with its volume.
type Sender struct {
	Name     string
	Sources  int
	Messages int64
	Pass     int64
}

// PassRate is the sender's DMARC pass rate (0 without messages).
func (s Sender) PassRate() float64 {
	if s.Messages == 0 {
		return 0
	}
	return float64(s.Pass) / float64(s.Messages)
}

// summaryTop is how many rows each table of the summary shows; failing sources and senders
// are found among the summaryScan largest sources.
const (
	summaryTop  = 25
	summaryScan = 2000
)

// Collect gathers the summary for f.
func (s *Service) Collect(ctx context.Context, f store.Filter) (*Summary, error) {
	q, err := s.analytics.Query(ctx, f)
	if err != nil {
		return nil, err
	}
	out := &Summary{Scope: "All domains", Filters: filterSummary(f), Generated: s.now().UTC(), TopN: summaryTop}
	if f.Domain != "" {
		out.Scope = f.Domain
	}
	if out.KPIs, err = q.Summary(ctx); err != nil {
		return nil, fmt.Errorf("export: summary: %w", err)
	}
	if out.Breakdown, err = q.Breakdown(ctx); err != nil {
		return nil, fmt.Errorf("export: alignment: %w", err)
	}
	if out.Timeline, err = q.Timeline(ctx, "day"); err != nil {
		return nil, fmt.Errorf("export: timeline: %w", err)
	}
	// A long window reads better by week or month: at most ~60 bars fit the chart.
	for _, iv := range []string{"week", "month"} {
		if len(out.Timeline.Points) <= 62 {
			break
		}
		if out.Timeline, err = q.Timeline(ctx, iv); err != nil {
			return nil, fmt.Errorf("export: timeline: %w", err)
		}
	}
	srcs, err := q.Sources(ctx, 1, summaryScan)
	if err != nil {
		return nil, fmt.Errorf("export: sources: %w", err)
	}
	out.SourcesAll = srcs.Total
	out.Sources = srcs.Items[:min(summaryTop, len(srcs.Items))]
	failing := slices.Clone(srcs.Items)
	failing = slices.DeleteFunc(failing, func(s analytics.Source) bool { return s.DMARCFailMessages == 0 })
	slices.SortStableFunc(failing, func(a, b analytics.Source) int { return cmp.Compare(b.DMARCFailMessages, a.DMARCFailMessages) })
	out.Failing = failing[:min(summaryTop, len(failing))]
	out.Senders = senders(srcs.Items)
	orgs, err := q.TopOrganizations(ctx, 1, summaryTop)
	if err != nil {
		return nil, fmt.Errorf("export: reporters: %w", err)
	}
	out.Reporters = orgs.Items
	pol, err := q.Policy(ctx, 1, summaryTop)
	if err != nil {
		return nil, fmt.Errorf("export: policy: %w", err)
	}
	out.Policy = pol.Items
	out.Advice = advice(out)
	return out, nil
}

func senders(items []analytics.Source) []Sender {
	by := map[string]*Sender{}
	for _, it := range items {
		name := "(unidentified)"
		switch {
		case it.Sender != nil && *it.Sender != "":
			name = *it.Sender
		case it.BaseDomain != nil && *it.BaseDomain != "":
			name = *it.BaseDomain
		}
		s := by[name]
		if s == nil {
			s = &Sender{Name: name}
			by[name] = s
		}
		s.Sources++
		s.Messages += it.Messages
		s.Pass += it.DMARCPassMessages
	}
	out := make([]Sender, 0, len(by))
	for _, s := range by {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b Sender) int {
		return cmp.Or(cmp.Compare(b.Messages, a.Messages), cmp.Compare(a.Name, b.Name))
	})
	return out[:min(summaryTop, len(out))]
}

// advice turns the numbers into the few steps a postmaster would take next (the seed
// product's "recommendations"): tighten a monitoring policy once mail passes, fix failing
// senders before that.
func advice(s *Summary) []string {
	var out []string
	k := s.KPIs
	if k.TotalMessages == 0 {
		return []string{"No DMARC aggregate data in this period: check that the domain's rua= address reaches Vigil."}
	}
	rate := 0.0
	if k.DMARCPassRate != nil {
		rate = *k.DMARCPassRate
	}
	for _, p := range s.Policy {
		for _, pub := range p.Published {
			if pub.Policy == "none" && pub.Messages > 0 {
				if rate >= 0.98 {
					out = append(out, fmt.Sprintf("%s publishes p=none while %.1f%% of mail passes DMARC: move to p=quarantine, then p=reject.", p.Domain, rate*100))
				} else {
					out = append(out, fmt.Sprintf("%s publishes p=none: fix the failing sources below, then enforce (p=quarantine).", p.Domain))
				}
				break
			}
		}
	}
	if rate < 0.95 {
		out = append(out, fmt.Sprintf("DMARC pass rate is %.1f%%: review the failing sources; legitimate senders need aligned DKIM signatures or SPF.", rate*100))
	}
	if s.Breakdown.Messages > 0 && s.Breakdown.SPFOnly.Messages > s.Breakdown.Both.Messages/10 {
		out = append(out, "Much mail passes on SPF alone: sign it with DKIM so it survives forwarding.")
	}
	if len(s.Failing) > 0 {
		f := s.Failing[0]
		out = append(out, fmt.Sprintf("The largest failing source is %s (%d failing messages).", f.SourceIP, f.DMARCFailMessages))
	}
	if len(out) == 0 {
		out = append(out, "Authentication looks healthy: keep monitoring for new sources.")
	}
	return out
}
