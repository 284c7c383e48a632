package alerting

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/vigilhq/vigil/pkg/rollup"
)

// finding is one condition a rule found: the domain, what identifies it within the rule (the
// source address, the reporter, the day; "" when the rule has one condition per domain), and
// the words and figures of the alert.
type finding struct {
	domain string
	key    string
	title  string
	detail string
	data   map[string]any
}

// scope is the domains one evaluation covers: ids to names, and whether that is every domain
// (no filter in the queries).
type scope struct {
	names map[int32]string
	all   bool
	// explicit are the domain names the evaluation covers when not all, whether or not they
	// have DMARC rollups (rules over SMTP TLS reports use them).
	explicit []string
}

func (sc scope) ids() []int32 {
	out := make([]int32, 0, len(sc.names))
	for id := range sc.names {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// where adds the domain filter to q (none when the scope is every domain).
func (sc scope) where(q *gorm.DB, col string) *gorm.DB {
	if sc.all {
		return q
	}
	return q.Where(col+" IN ?", sc.ids())
}

// RunResult counts what one evaluation did.
type RunResult struct {
	Rules      int           `json:"rules"`
	Domains    int           `json:"domains"`
	Findings   int           `json:"findings"`
	Raised     int           `json:"raised"`
	Suppressed int           `json:"suppressed"`
	Duration   time.Duration `json:"duration_ns"`
}

// Evaluate runs every enabled rule over domains (nil: every domain) and raises what they
// find. It is safe to run concurrently with itself, in any number of processes: each
// fingerprint raises one alert per cooldown whoever gets there first.
func (s *Service) Evaluate(ctx context.Context, domains []string) (RunResult, error) {
	start := s.now()
	var res RunResult
	rules, err := s.ListRules(ctx)
	if err != nil {
		return res, err
	}
	all, err := s.domainNames(ctx)
	if err != nil {
		return res, err
	}
	wanted := map[string]bool{}
	for _, d := range domains {
		wanted[strings.ToLower(d)] = true
	}
	today := rollup.DayOf(s.now())
	seen := map[int32]bool{}
	// The maintenance windows, read once per run rather than once per finding.
	sups, err := s.suppressions(ctx)
	if err != nil {
		return res, err
	}
	for _, r := range rules {
		if !r.Enabled {
			continue
		}
		sc := scope{names: map[int32]string{}, all: domains == nil && r.Domain == nil}
		for id, name := range all {
			if (domains == nil || wanted[name]) && (r.Domain == nil || *r.Domain == name) {
				sc.names[id] = name
			}
		}
		// TLS reports name their own domains, which need not have DMARC rollups: the rule's
		// domain, or the domains asked about, are taken as they are.
		switch {
		case r.Domain != nil && (domains == nil || wanted[*r.Domain]):
			sc.explicit = []string{*r.Domain}
		case r.Domain == nil && domains != nil:
			sc.explicit = slices.Sorted(maps.Keys(wanted))
		}
		if len(sc.names) == 0 && (r.Type != TypeTLSFailure || !sc.all && len(sc.explicit) == 0) {
			continue
		}
		for id := range sc.names {
			seen[id] = true
		}
		res.Rules++
		fs, err := s.evaluate(ctx, r, sc, today)
		if err != nil {
			return res, fmt.Errorf("rule %d (%s): %w", r.ID, r.Type, err)
		}
		res.Findings += len(fs)
		if len(fs) > s.maxRun {
			s.log.Warn("alerting: rule found more than the per-run limit; the rest wait for the next run", "rule_id", r.ID, "found", len(fs), "limit", s.maxRun)
			fs = fs[:s.maxRun]
		}
		fresh, err := s.coolingDown(ctx, r, fs)
		if err != nil {
			return res, err
		}
		for _, f := range fs {
			if fresh[Fingerprint(r.ID, r.Type, f.domain, f.key)] {
				continue // raised within the cooldown: the usual case of an hourly run
			}
			out, err := s.raise(ctx, r, f, sups)
			if err != nil {
				return res, err
			}
			switch out {
			case StatusOpen:
				res.Raised++
			case StatusSuppressed:
				res.Suppressed++
			}
		}
	}
	res.Domains = len(seen)
	res.Duration = s.now().Sub(start)
	return res, nil
}

// coolingDown returns the fingerprints of fs that raised an alert within the rule's cooldown.
// It only spares the raise transactions of what is certainly cooling down (one query per rule
// instead of one transaction per finding); the conditional upsert in raise stays the judge.
func (s *Service) coolingDown(ctx context.Context, r Rule, fs []finding) (map[string]bool, error) {
	out := map[string]bool{}
	fps := make([]string, 0, len(fs))
	for _, f := range fs {
		fps = append(fps, Fingerprint(r.ID, r.Type, f.domain, f.key))
	}
	since := s.now().Add(-r.cooldown).Unix()
	for start := 0; start < len(fps); start += 1000 {
		var hot []string
		if err := s.db.WithContext(ctx).Table("alert_cooldowns").Where("fingerprint IN ? AND raised_at > ?", fps[start:min(start+1000, len(fps))], since).
			Pluck("fingerprint", &hot).Error; err != nil {
			return nil, fmt.Errorf("read cooldowns: %w", err)
		}
		for _, fp := range hot {
			out[fp] = true
		}
	}
	return out, nil
}

func (s *Service) domainNames(ctx context.Context) (map[int32]string, error) {
	var rows []struct {
		ID   int32
		Name string
	}
	if err := s.db.WithContext(ctx).Raw("SELECT id, name FROM rollup_domains").Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("read domains: %w", err)
	}
	out := make(map[int32]string, len(rows))
	for _, r := range rows {
		out[r.ID] = r.Name
	}
	return out, nil
}

func (s *Service) evaluate(ctx context.Context, r Rule, sc scope, today int32) ([]finding, error) {
	switch r.Type {
	case TypeFailureRate:
		return s.failureRate(ctx, r, sc, today)
	case TypeVolumeSpike, TypeVolumeDrop:
		return s.volume(ctx, r, sc, today)
	case TypeNewSource:
		return s.newSources(ctx, r, sc, today)
	case TypePolicyViolation:
		return s.policyViolation(ctx, r, sc, today)
	case TypeMissingReports:
		return s.missingReports(ctx, r, sc, today)
	case TypeTLSFailure:
		return s.tlsFailure(ctx, r, sc, today)
	case TypeAnomaly:
		return s.anomalies(ctx, r, sc)
	}
	return nil, nil
}

// anomalies: the sources the latest ML scoring run (pkg/ml, table ml_predictions) called
// anomalous with an Isolation Forest score s(x, n) of at least min_score, one finding per
// source, for the domain it sent most mail as. A run is a day's scoring, so the rule's
// cooldown keeps an anomaly that persists from alerting at every hourly check.
func (s *Service) anomalies(ctx context.Context, r Rule, sc scope) ([]finding, error) {
	var run sql.NullInt64
	if err := s.db.WithContext(ctx).Raw("SELECT MAX(run_id) FROM ml_predictions").Row().Scan(&run); err != nil {
		return nil, err
	}
	if !run.Valid {
		return nil, nil
	}
	var rows []struct {
		IP           string
		Domain       string
		Score        float64
		AnomalyScore float64
		ModelID      int64
		DetectedAt   int64
		Features     string
	}
	if err := s.db.WithContext(ctx).Raw(`SELECT ip, domain, score, anomaly_score, model_id, detected_at, features FROM ml_predictions
		WHERE run_id = ? AND is_anomaly AND anomaly_score >= ? ORDER BY anomaly_score DESC, ip`, run.Int64, r.num["min_score"]).Scan(&rows).Error; err != nil {
		return nil, err
	}
	names := make(map[string]bool, len(sc.names))
	for _, n := range sc.names {
		names[n] = true
	}
	var out []finding
	for _, row := range rows {
		if !names[row.Domain] {
			continue
		}
		var feat map[string]any
		_ = json.Unmarshal([]byte(row.Features), &feat)
		out = append(out, finding{domain: row.Domain, key: row.IP,
			title: fmt.Sprintf("Anomalous sender %s for %s (score %.2f)", row.IP, row.Domain, row.AnomalyScore),
			detail: fmt.Sprintf("The anomaly model (model %d) scored %s at %.3f on %s, at or above the rule's %.2f: it sends unlike the domain's other sources. Features: %s.",
				row.ModelID, row.IP, row.AnomalyScore, time.Unix(row.DetectedAt, 0).UTC().Format(time.DateOnly), r.num["min_score"], row.Features),
			data: map[string]any{"ip": row.IP, "anomaly_score": row.AnomalyScore, "score": row.Score, "model_id": row.ModelID, "features": feat}})
	}
	return out, nil
}

// passCodes are the outcome codes DMARC passes (aligned DKIM or aligned SPF).
func passCodes() []int {
	var out []int
	for o := range rollup.Outcomes {
		if rollup.DMARCPass(int8(o)) {
			out = append(out, o)
		}
	}
	return out
}

// dispCodes are the outcome codes whose disposition is one of disps.
func dispCodes(disps ...int) []int {
	var out []int
	for o := range rollup.Outcomes {
		if slices.Contains(disps, rollup.OutcomeDisposition(int8(o))) {
			out = append(out, o)
		}
	}
	return out
}

func day(d int32) string { return rollup.DayTime(d).Format(time.DateOnly) }

// failureRate: messages failing DMARC over the window_days UTC days ending today, as a share
// of all messages, above threshold with at least min_messages messages.
func (s *Service) failureRate(ctx context.Context, r Rule, sc scope, today int32) ([]finding, error) {
	from := today - int32(r.num["window_days"]) + 1
	var rows []struct {
		DomainID int32
		Total    int64
		Passed   int64
	}
	q := s.db.WithContext(ctx).Table("rollup_domain_day").
		Select("domain_id, SUM(messages) AS total, SUM(CASE WHEN outcome IN ? THEN messages ELSE 0 END) AS passed", passCodes()).
		Where("period >= ? AND period <= ?", from, today)
	if err := sc.where(q, "domain_id").Group("domain_id").Scan(&rows).Error; err != nil {
		return nil, err
	}
	var out []finding
	for _, row := range rows {
		name, ok := sc.names[row.DomainID]
		if !ok || row.Total == 0 || row.Total < int64(r.num["min_messages"]) {
			continue
		}
		failed := row.Total - row.Passed
		rate := float64(failed) / float64(row.Total)
		if rate <= r.num["threshold"] {
			continue
		}
		out = append(out, finding{domain: name,
			title: fmt.Sprintf("DMARC failure rate %.1f%% for %s", rate*100, name),
			detail: fmt.Sprintf("%d of %d messages failed DMARC from %s to %s (threshold %.1f%%).",
				failed, row.Total, day(from), day(today), r.num["threshold"]*100),
			data: map[string]any{"failure_rate": rate, "failed": failed, "messages": row.Total, "from": day(from), "to": day(today)}})
	}
	return out, nil
}

// tlsFailure finds policy domains whose share of failed TLS sessions in the SMTP TLS reports
// (pkg/tlsrpt's tables, by the UTC day a report's period begins) is above the threshold, with
// the failure type and MX host that failed most in the detail.
func (s *Service) tlsFailure(ctx context.Context, r Rule, sc scope, today int32) ([]finding, error) {
	from := today - int32(r.num["window_days"]) + 1
	var rows []struct {
		Domain     string
		Ok, Failed int64
	}
	q := s.db.WithContext(ctx).Table("tls_report_policies").
		Select("policy_domain AS domain, SUM(successful_sessions) AS ok, SUM(failed_sessions) AS failed").
		Where("day >= ? AND day <= ? AND policy_domain <> ''", from, today)
	if !sc.all {
		q = q.Where("policy_domain IN ?", sc.explicit)
	}
	if err := q.Group("policy_domain").Scan(&rows).Error; err != nil {
		return nil, err
	}
	var out []finding
	for _, row := range rows {
		total := row.Ok + row.Failed
		if total == 0 || total < int64(r.num["min_sessions"]) {
			continue
		}
		rate := float64(row.Failed) / float64(total)
		if rate <= r.num["threshold"] {
			continue
		}
		var top struct {
			ResultType          string
			ReceivingMXHostname string
			Failed              int64
		}
		if err := s.db.WithContext(ctx).Table("tls_report_failures").
			Select("result_type, receiving_mx_hostname, SUM(failed_session_count) AS failed").
			Where("day >= ? AND day <= ? AND policy_domain = ?", from, today, row.Domain).
			Group("result_type, receiving_mx_hostname").Order("failed DESC, result_type, receiving_mx_hostname").Limit(1).Scan(&top).Error; err != nil {
			return nil, err
		}
		detail := fmt.Sprintf("%d of %d TLS sessions to %s failed from %s to %s (threshold %.1f%%).",
			row.Failed, total, row.Domain, day(from), day(today), r.num["threshold"]*100)
		if top.ResultType != "" {
			detail += fmt.Sprintf(" Most: %s at %s (%d sessions).", top.ResultType, cmp.Or(top.ReceivingMXHostname, "an unnamed MX"), top.Failed)
		}
		out = append(out, finding{domain: row.Domain,
			title:  fmt.Sprintf("SMTP TLS failure rate %.1f%% for %s", rate*100, row.Domain),
			detail: detail,
			data: map[string]any{"failure_rate": rate, "failed_sessions": row.Failed, "sessions": total, "top_result_type": top.ResultType,
				"top_mx_host": top.ReceivingMXHostname, "from": day(from), "to": day(today)}})
	}
	return out, nil
}

// volume compares yesterday (the last whole UTC day) with the baseline: the median of the same
// weekday over the weeks before it. A domain with no message in any baseline day has no
// baseline and raises nothing (a new domain, or one day of data).
func (s *Service) volume(ctx context.Context, r Rule, sc scope, today int32) ([]finding, error) {
	d := today - 1
	weeks := int(r.num["weeks"])
	days := []int32{d}
	for w := 1; w <= weeks; w++ {
		days = append(days, d-int32(7*w))
	}
	var rows []struct {
		DomainID int32
		Period   int32
		Total    int64
	}
	q := s.db.WithContext(ctx).Table("rollup_domain_day").Select("domain_id, period, SUM(messages) AS total").Where("period IN ?", days)
	if err := sc.where(q, "domain_id").Group("domain_id, period").Scan(&rows).Error; err != nil {
		return nil, err
	}
	per := map[int32]map[int32]int64{}
	for _, row := range rows {
		if per[row.DomainID] == nil {
			per[row.DomainID] = map[int32]int64{}
		}
		per[row.DomainID][row.Period] = row.Total
	}
	var out []finding
	for id, byDay := range per {
		name, ok := sc.names[id]
		if !ok {
			continue
		}
		base := make([]int64, 0, weeks)
		hasBase := false
		for _, bd := range days[1:] {
			v, has := byDay[bd]
			hasBase = hasBase || has
			base = append(base, v) // a day without rows sent nothing: 0
		}
		if !hasBase {
			continue
		}
		med := median(base)
		v := byDay[d]
		data := map[string]any{"day": day(d), "messages": v, "baseline": med, "baseline_days": len(base)}
		switch r.Type {
		case TypeVolumeSpike:
			if v < int64(r.num["min_messages"]) || float64(v) <= r.num["factor"]*med {
				continue
			}
			out = append(out, finding{domain: name, key: day(d),
				title:  fmt.Sprintf("Volume spike for %s on %s", name, day(d)),
				detail: fmt.Sprintf("%d messages on %s against a baseline of %.0f (median of the same weekday over %d weeks).", v, day(d), med, weeks),
				data:   data})
		case TypeVolumeDrop:
			if med < r.num["min_baseline"] || float64(v) >= r.num["ratio"]*med {
				continue
			}
			out = append(out, finding{domain: name, key: day(d),
				title:  fmt.Sprintf("Volume drop for %s on %s", name, day(d)),
				detail: fmt.Sprintf("%d messages on %s against a baseline of %.0f (median of the same weekday over %d weeks).", v, day(d), med, weeks),
				data:   data})
		}
	}
	sortFindings(out)
	return out, nil
}

func median(v []int64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return float64(s[n/2])
	}
	return float64(s[n/2-1]+s[n/2]) / 2
}

func sortFindings(fs []finding) {
	sort.Slice(fs, func(i, j int) bool {
		if fs[i].domain != fs[j].domain {
			return fs[i].domain < fs[j].domain
		}
		return fs[i].key < fs[j].key
	})
}

// newSources: source addresses seen for a domain in the window_days days ending today and in
// none of the lookback_days days before. A domain with no mail at all in the lookback has no
// history to compare with and raises nothing.
func (s *Service) newSources(ctx context.Context, r Rule, sc scope, today int32) ([]finding, error) {
	from := today - int32(r.num["window_days"]) + 1
	back := from - int32(r.num["lookback_days"])
	if r.num["named_sender"] != 0 {
		return s.newSenders(ctx, r, sc, from, back, today)
	}
	var rows []struct {
		DomainID int32
		IP       []byte `gorm:"column:ip"`
		Total    int64
	}
	q := s.db.WithContext(ctx).Table("rollup_src_domain_day AS n").
		Select("n.domain_id, i.ip, SUM(n.messages) AS total").
		Joins("JOIN rollup_ips i ON i.id = n.ip_id").
		Where("n.period >= ? AND n.period <= ?", from, today).
		Where("NOT EXISTS (SELECT 1 FROM rollup_src_domain_day o WHERE o.ip_id = n.ip_id AND o.domain_id = n.domain_id AND o.period >= ? AND o.period < ?)", back, from).
		Where("EXISTS (SELECT 1 FROM rollup_domain_day h WHERE h.domain_id = n.domain_id AND h.period >= ? AND h.period < ?)", back, from)
	if err := sc.where(q, "n.domain_id").Group("n.domain_id, i.ip").Having("SUM(n.messages) >= ?", int64(r.num["min_messages"])).Scan(&rows).Error; err != nil {
		return nil, err
	}
	var out []finding
	for _, row := range rows {
		name, ok := sc.names[row.DomainID]
		if !ok {
			continue
		}
		ip := ipString(row.IP)
		out = append(out, finding{domain: name, key: ip,
			title:  fmt.Sprintf("New source %s for %s", ip, name),
			detail: fmt.Sprintf("%s sent %d messages as %s from %s to %s and none in the %d days before.", ip, row.Total, name, day(from), day(today), int(r.num["lookback_days"])),
			data:   map[string]any{"source_ip": ip, "messages": row.Total, "from": day(from), "to": day(today)}})
	}
	sortFindings(out)
	return out, nil
}

// newSenders is new_source with named_sender: a named sender (a known service, as
// sender_sources groups each enriched source today) that sent for a domain in the window and
// from none of its addresses in the lookback. A new address of a sender the domain already
// uses raises nothing; a source not enriched yet has no sender and waits for its enrichment
// (the next check names it). The grouping is today's: a mapping an admin adds names the past
// too, so a sender mapped today is new only if its addresses are.
func (s *Service) newSenders(ctx context.Context, r Rule, sc scope, from, back, today int32) ([]finding, error) {
	var rows []struct {
		DomainID int32
		Sender   string
		Total    int64
		IPs      int64
	}
	q := s.db.WithContext(ctx).Table("rollup_src_domain_day AS n").
		Select("n.domain_id, g.sender, SUM(n.messages) AS total, COUNT(DISTINCT n.ip_id) AS ips").
		Joins("JOIN sender_sources ss ON ss.ip_id = n.ip_id").
		Joins("JOIN sender_groups g ON g.id = ss.group_id").
		Where("g.sender IS NOT NULL AND n.period >= ? AND n.period <= ?", from, today).
		Where(`NOT EXISTS (SELECT 1 FROM sender_sources so JOIN rollup_src_domain_day o ON o.ip_id = so.ip_id
			WHERE so.group_id = ss.group_id AND o.domain_id = n.domain_id AND o.period >= ? AND o.period < ?)`, back, from).
		Where("EXISTS (SELECT 1 FROM rollup_domain_day h WHERE h.domain_id = n.domain_id AND h.period >= ? AND h.period < ?)", back, from)
	if err := sc.where(q, "n.domain_id").Group("n.domain_id, g.sender").Having("SUM(n.messages) >= ?", int64(r.num["min_messages"])).Scan(&rows).Error; err != nil {
		return nil, err
	}
	var out []finding
	for _, row := range rows {
		name, ok := sc.names[row.DomainID]
		if !ok {
			continue
		}
		out = append(out, finding{domain: name, key: "sender:" + row.Sender,
			title: fmt.Sprintf("New sender %s for %s", row.Sender, name),
			detail: fmt.Sprintf("%s sent %d messages as %s from %d addresses from %s to %s, and none in the %d days before. If you did not set it up, someone uses it to send as %s.",
				row.Sender, row.Total, name, row.IPs, day(from), day(today), int(r.num["lookback_days"]), name),
			data: map[string]any{"sender": row.Sender, "messages": row.Total, "ips": row.IPs, "from": day(from), "to": day(today)}})
	}
	sortFindings(out)
	return out, nil
}

func ipString(b []byte) string {
	if a, ok := netip.AddrFromSlice(b); ok {
		return a.Unmap().String()
	}
	return fmt.Sprintf("%x", b)
}

// policyViolation: messages quarantined or rejected in the window (the receivers applied the
// domain's policy: someone sends as the domain and fails), and, with policy_change, a
// published p= in the window that differs from the one before it (each day's policy is the
// one most of its messages were reported under).
func (s *Service) policyViolation(ctx context.Context, r Rule, sc scope, today int32) ([]finding, error) {
	from := today - int32(r.num["window_days"]) + 1
	var out []finding
	var rows []struct {
		DomainID    int32
		Quarantined int64
		Rejected    int64
	}
	q := s.db.WithContext(ctx).Table("rollup_domain_day").
		Select("domain_id, SUM(CASE WHEN outcome IN ? THEN messages ELSE 0 END) AS quarantined, SUM(CASE WHEN outcome IN ? THEN messages ELSE 0 END) AS rejected",
			dispCodes(rollup.DispQuarantine), dispCodes(rollup.DispReject)).
		Where("period >= ? AND period <= ?", from, today)
	if err := sc.where(q, "domain_id").Group("domain_id").Scan(&rows).Error; err != nil {
		return nil, err
	}
	for _, row := range rows {
		name, ok := sc.names[row.DomainID]
		n := row.Quarantined + row.Rejected
		if !ok || n == 0 || n < int64(r.num["min_messages"]) {
			continue
		}
		out = append(out, finding{domain: name, key: "disposition",
			title:  fmt.Sprintf("%d messages quarantined or rejected for %s", n, name),
			detail: fmt.Sprintf("Receivers quarantined %d and rejected %d messages claiming to be from %s between %s and %s.", row.Quarantined, row.Rejected, name, day(from), day(today)),
			data:   map[string]any{"quarantined": row.Quarantined, "rejected": row.Rejected, "from": day(from), "to": day(today)}})
	}
	if r.num["policy_change"] == 0 {
		sortFindings(out)
		return out, nil
	}
	back := from - int32(r.num["lookback_days"])
	var prow []struct {
		DomainID int32
		Period   int32
		Policy   int8
		Total    int64
	}
	q = s.db.WithContext(ctx).Table("rollup_domain_day").Select("domain_id, period, policy, SUM(messages) AS total").
		Where("period >= ? AND period <= ?", back, today)
	if err := sc.where(q, "domain_id").Group("domain_id, period, policy").Scan(&prow).Error; err != nil {
		return nil, err
	}
	type dayPol struct {
		period int32
		policy int8
		total  int64
	}
	// The dominant policy of each domain's days.
	dom := map[int32]map[int32]dayPol{}
	for _, p := range prow {
		if dom[p.DomainID] == nil {
			dom[p.DomainID] = map[int32]dayPol{}
		}
		cur, ok := dom[p.DomainID][p.Period]
		if !ok || p.Total > cur.total || (p.Total == cur.total && p.Policy < cur.policy) {
			dom[p.DomainID][p.Period] = dayPol{p.Period, p.Policy, p.Total}
		}
	}
	for id, days := range dom {
		name, ok := sc.names[id]
		if !ok {
			continue
		}
		var before, latest *dayPol
		for _, dp := range days {
			dp := dp
			if dp.period >= from {
				if latest == nil || dp.period > latest.period {
					latest = &dp
				}
			} else if before == nil || dp.period > before.period {
				before = &dp
			}
		}
		if before == nil || latest == nil || before.policy == latest.policy {
			continue
		}
		was, now := rollup.Policies[before.policy], rollup.Policies[latest.policy]
		verb := "changed"
		if latest.policy < before.policy && latest.policy != rollup.PolicyOther && before.policy != rollup.PolicyOther {
			verb = "weakened"
		}
		out = append(out, finding{domain: name, key: "policy:" + was + "->" + now + ":" + day(latest.period),
			title:  fmt.Sprintf("Published DMARC policy of %s %s: p=%s → p=%s", name, verb, was, now),
			detail: fmt.Sprintf("Reports for %s said p=%s (last on %s) and now p=%s (on %s).", name, was, day(before.period), now, day(latest.period)),
			data:   map[string]any{"previous_policy": was, "policy": now, "previous_day": day(before.period), "day": day(latest.period)}})
	}
	sortFindings(out)
	return out, nil
}

// missingReports: a reporter that sent reports for a domain on at least min_active_days of
// the lookback_days days before the silence, and whose last report began more than
// silent_days days ago. Reports arrive a day after the day they cover, so silent_days counts
// from that: a daily reporter's report for yesterday is normal, for the day before is late.
func (s *Service) missingReports(ctx context.Context, r Rule, sc scope, today int32) ([]finding, error) {
	silent := int32(r.num["silent_days"])
	cut := today - silent // last report beginning before cut: silent
	from := cut - int32(r.num["lookback_days"])
	var rows []struct {
		DomainID int32
		OrgID    int32
		OrgName  string
		Active   int64
		Last     int32
	}
	q := s.db.WithContext(ctx).Table("rollup_rep_full_day AS p").
		Select("p.domain_id, p.org_id, o.org_name, COUNT(DISTINCT CASE WHEN p.period < ? THEN p.period END) AS active, MAX(p.period) AS last", cut).
		Joins("JOIN rollup_orgs o ON o.id = p.org_id").
		Where("p.period >= ? AND p.period <= ?", from, today)
	if err := sc.where(q, "p.domain_id").Group("p.domain_id, p.org_id, o.org_name").
		Having("MAX(p.period) < ?", cut).Scan(&rows).Error; err != nil {
		return nil, err
	}
	var out []finding
	for _, row := range rows {
		name, ok := sc.names[row.DomainID]
		if !ok || row.Active < int64(r.num["min_active_days"]) {
			continue
		}
		out = append(out, finding{domain: name, key: fmt.Sprintf("org:%d:%d", row.OrgID, row.Last),
			title:  fmt.Sprintf("%s stopped sending reports for %s", row.OrgName, name),
			detail: fmt.Sprintf("%s reported on %d of the %d days before %s; its last report began on %s.", row.OrgName, row.Active, int(r.num["lookback_days"]), day(cut), day(row.Last)),
			data:   map[string]any{"reporter": row.OrgName, "active_days": row.Active, "last_report_day": day(row.Last)}})
	}
	sortFindings(out)
	return out, nil
}
