package ml

import (
	"context"
	"fmt"
	"math"
	"math/bits"
	"net/netip"
	"strings"

	"github.com/vigilhq/vigil/pkg/analytics"
	"github.com/vigilhq/vigil/pkg/rollup"
)

// FeatureNames are the columns of a source's feature vector, in order. Volumes are per day of
// the window and counts are log-scaled, so a model trained on 90 days scores a 7-day window on
// the same scale.
var FeatureNames = []string{
	"volume_per_day",  // log(1 + messages per day of the window)
	"failure_rate",    // share of messages failing DMARC
	"domains",         // log(1 + distinct policy domains it sent as)
	"dkim_aligned",    // share of messages with aligned DKIM pass
	"spf_aligned",     // share of messages with aligned SPF pass
	"active_days",     // share of the window's days with mail
	"weekday_entropy", // Shannon entropy of its mail over weekdays, normalised to [0, 1]
	"weekend_share",   // share of its mail on Saturdays and Sundays (UTC)
	"reporters",       // log(1 + distinct reporters that saw it)
	"enforced_share",  // share of messages receivers quarantined or rejected
	"known_sender",    // 1 when the sender catalogue names it (pkg/senders), else 0
	"asn_changed",     // 1 when its ASN differs from the one of its previous scoring, else 0
}

// Sample is one source's features over a window.
type Sample struct {
	IP       netip.Addr
	Domain   string // the policy domain it sent most mail as
	Messages int64
	Sender   string // the catalogue's name, if any
	ASN      *int64
	Vector   []float64
}

// Features is the JSON form of a sample kept with its prediction.
func (s Sample) Features() map[string]any {
	m := make(map[string]any, len(FeatureNames)+3)
	for i, n := range FeatureNames {
		m[n] = s.Vector[i]
	}
	m["messages"] = s.Messages
	m["asn"] = s.ASN
	if s.Sender != "" {
		m["sender"] = s.Sender
	} else {
		m["sender"] = nil
	}
	return m
}

// acc accumulates one source's rollup rows.
type acc struct {
	msgs, passed, dkim, spf, enforced int64
	weekday                           [7]int64
	days                              [6]uint64 // bit per day of the window (≤ 366)
	domains                           map[int32]int64
	orgs                              int
}

// Describer is enrichment's view of addresses (pkg/enrich.Service.Describe): the named
// sender and the ASN.
type Describer func(ctx context.Context, ips []netip.Addr) (map[netip.Addr]analytics.SourceInfo, error)

// samples reads the features of every source with mail in the UTC days [from, to]. prevASN, when
// set, gives each address's ASN at its previous scoring.
func (s *Service) samples(ctx context.Context, from, to int32, prevASN map[netip.Addr]int64) ([]Sample, error) {
	db := s.db.WithContext(ctx)
	accs := map[int32]*acc{}
	rows, err := db.Raw(`SELECT ip_id, period, domain_id, outcome, messages FROM rollup_src_domain_day WHERE period >= ? AND period <= ?`, from, to).Rows()
	if err != nil {
		return nil, fmt.Errorf("ml: read sources: %w", err)
	}
	for rows.Next() {
		var ip, period, dom int32
		var outcome int8
		var n int64
		if err := rows.Scan(&ip, &period, &dom, &outcome, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("ml: read sources: %w", err)
		}
		a := accs[ip]
		if a == nil {
			a = &acc{domains: map[int32]int64{}}
			accs[ip] = a
		}
		a.msgs += n
		if rollup.DMARCPass(outcome) {
			a.passed += n
		}
		if rollup.DKIMPass(outcome) {
			a.dkim += n
		}
		if rollup.SPFPass(outcome) {
			a.spf += n
		}
		if d := rollup.OutcomeDisposition(outcome); d == rollup.DispQuarantine || d == rollup.DispReject {
			a.enforced += n
		}
		a.weekday[rollup.DayTime(period).Weekday()] += n
		if off := period - from; off >= 0 && off < 384 {
			a.days[off/64] |= 1 << (off % 64)
		}
		a.domains[dom] += n
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("ml: read sources: %w", err)
	}
	if err := s.countReporters(ctx, from, to, accs); err != nil {
		return nil, err
	}
	addrs, err := s.addresses(ctx, accs)
	if err != nil {
		return nil, err
	}
	names, err := s.domainNames(ctx)
	if err != nil {
		return nil, err
	}
	ips := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		ips = append(ips, a)
	}
	info := map[netip.Addr]analytics.SourceInfo{}
	if s.describe != nil {
		for lo := 0; lo < len(ips); lo += 5000 {
			part, err := s.describe(ctx, ips[lo:min(lo+5000, len(ips))])
			if err != nil {
				return nil, fmt.Errorf("ml: describe sources: %w", err)
			}
			for k, v := range part {
				info[k] = v
			}
		}
	}
	window := float64(to - from + 1)
	out := make([]Sample, 0, len(accs))
	for id, a := range accs {
		ip, ok := addrs[id]
		if !ok || a.msgs <= 0 {
			continue
		}
		smp := Sample{IP: ip, Messages: a.msgs}
		var top int32
		var topN int64 = -1
		for d, n := range a.domains {
			if n > topN || n == topN && d < top {
				top, topN = d, n
			}
		}
		smp.Domain = names[top]
		var active int
		for _, w := range a.days {
			active += bits.OnesCount64(w)
		}
		m := float64(a.msgs)
		var ent float64
		for _, n := range a.weekday {
			if n > 0 {
				p := float64(n) / m
				ent -= p * math.Log(p)
			}
		}
		known, changed := 0.0, 0.0
		if si, ok := info[ip]; ok {
			if si.Sender != nil && *si.Sender != "" {
				known, smp.Sender = 1, *si.Sender
			}
			smp.ASN = si.ASN
			if prev, had := prevASN[ip]; had && si.ASN != nil && *si.ASN != prev {
				changed = 1
			}
		}
		smp.Vector = []float64{
			math.Log1p(m / window),
			1 - float64(a.passed)/m,
			math.Log1p(float64(len(a.domains))),
			float64(a.dkim) / m,
			float64(a.spf) / m,
			float64(active) / window,
			ent / math.Log(7),
			float64(a.weekday[0]+a.weekday[6]) / m,
			math.Log1p(float64(a.orgs)),
			float64(a.enforced) / m,
			known,
			changed,
		}
		out = append(out, smp)
	}
	// Map order is random: sort so training sees the same rows in the same order, and a seed
	// gives the same model.
	sortSamples(out)
	return out, nil
}

func (s *Service) countReporters(ctx context.Context, from, to int32, accs map[int32]*acc) error {
	rows, err := s.db.WithContext(ctx).Raw(`SELECT DISTINCT ip_id, org_id FROM rollup_src_org_day WHERE period >= ? AND period <= ?`, from, to).Rows()
	if err != nil {
		return fmt.Errorf("ml: read reporters: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var ip, org int32
		if err := rows.Scan(&ip, &org); err != nil {
			return fmt.Errorf("ml: read reporters: %w", err)
		}
		if a := accs[ip]; a != nil {
			a.orgs++
		}
	}
	return rows.Err()
}

// addresses maps the rollup ids of accs to addresses.
func (s *Service) addresses(ctx context.Context, accs map[int32]*acc) (map[int32]netip.Addr, error) {
	ids := make([]int32, 0, len(accs))
	for id := range accs {
		ids = append(ids, id)
	}
	out := make(map[int32]netip.Addr, len(ids))
	for lo := 0; lo < len(ids); lo += 1000 {
		var rows []struct {
			ID int32
			IP []byte
		}
		if err := s.db.WithContext(ctx).Raw(`SELECT id, ip FROM rollup_ips WHERE id IN ?`, ids[lo:min(lo+1000, len(ids))]).Scan(&rows).Error; err != nil {
			return nil, fmt.Errorf("ml: read addresses: %w", err)
		}
		for _, r := range rows {
			if len(r.IP) == 16 {
				out[r.ID] = netip.AddrFrom16([16]byte(r.IP)).Unmap()
			}
		}
	}
	return out, nil
}

func (s *Service) domainNames(ctx context.Context) (map[int32]string, error) {
	var rows []struct {
		ID   int32
		Name string
	}
	if err := s.db.WithContext(ctx).Raw(`SELECT id, name FROM rollup_domains`).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("ml: read domains: %w", err)
	}
	out := make(map[int32]string, len(rows))
	for _, r := range rows {
		out[r.ID] = r.Name
	}
	return out, nil
}

func (s *Service) domainID(ctx context.Context, name string) (int32, error) {
	var ids []int32
	if err := s.db.WithContext(ctx).Raw(`SELECT id FROM rollup_domains WHERE name = ?`, strings.ToLower(name)).Scan(&ids).Error; err != nil {
		return 0, fmt.Errorf("ml: read domain: %w", err)
	}
	if len(ids) == 0 {
		return 0, ErrNotFound
	}
	return ids[0], nil
}
