package alerting

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"gorm.io/gorm"
)

// Rule types (DESIGN.md). anomaly reads the ML scoring runs (pkg/ml); tls_failure is declared
// for TLS reports and until they exist a rule of that type is kept but raises nothing.
const (
	TypeFailureRate     = "failure_rate"
	TypeVolumeSpike     = "volume_spike"
	TypeVolumeDrop      = "volume_drop"
	TypeNewSource       = "new_source"
	TypePolicyViolation = "policy_violation"
	TypeMissingReports  = "missing_reports"
	TypeAnomaly         = "anomaly"
	TypeTLSFailure      = "tls_failure"
)

// param describes one parameter of a rule type: its default and bounds. Whole numbers are
// marked so 1.5 days is refused rather than rounded.
type param struct {
	def      float64
	min, max float64
	whole    bool
	boolean  bool
	doc      string
}

// paramSpecs lists every type's parameters; a parameter not listed is refused.
var paramSpecs = map[string]map[string]param{
	TypeFailureRate: {
		"threshold":    {def: 0.05, min: 0.0001, max: 1, doc: "alert when the DMARC failure share exceeds this fraction"},
		"window_days":  {def: 7, min: 1, max: 365, whole: true, doc: "UTC days ending today"},
		"min_messages": {def: 100, min: 0, max: 1e12, whole: true, doc: "ignore domains with fewer messages in the window"},
	},
	TypeVolumeSpike: {
		"factor":       {def: 3, min: 1.01, max: 1000, doc: "alert when yesterday's messages exceed factor × the baseline"},
		"weeks":        {def: 4, min: 1, max: 12, whole: true, doc: "baseline: median of the same weekday over this many weeks"},
		"min_messages": {def: 100, min: 0, max: 1e12, whole: true, doc: "ignore days with fewer messages"},
	},
	TypeVolumeDrop: {
		"ratio":        {def: 0.5, min: 0, max: 0.99, doc: "alert when yesterday's messages fall below ratio × the baseline"},
		"weeks":        {def: 4, min: 1, max: 12, whole: true, doc: "baseline: median of the same weekday over this many weeks"},
		"min_baseline": {def: 100, min: 1, max: 1e12, whole: true, doc: "ignore domains whose baseline is smaller"},
	},
	TypeNewSource: {
		"window_days":   {def: 1, min: 1, max: 30, whole: true, doc: "a source first seen in these UTC days ending today"},
		"lookback_days": {def: 90, min: 1, max: 3650, whole: true, doc: "…and not seen in this many days before"},
		"min_messages":  {def: 1, min: 1, max: 1e12, whole: true, doc: "ignore new sources with fewer messages"},
		"named_sender":  {def: 0, boolean: true, doc: "alert on a named sender (Google Workspace, SendGrid, …: the sender group of pkg/senders) new for the domain, not on each new address"},
	},
	TypePolicyViolation: {
		"window_days":   {def: 1, min: 1, max: 365, whole: true, doc: "UTC days ending today"},
		"min_messages":  {def: 1, min: 1, max: 1e12, whole: true, doc: "quarantined or rejected messages that raise an alert"},
		"policy_change": {def: 1, boolean: true, doc: "also alert when the published p= changed"},
		"lookback_days": {def: 30, min: 1, max: 3650, whole: true, doc: "how far back the previous policy is looked for"},
	},
	TypeMissingReports: {
		"silent_days":     {def: 2, min: 1, max: 60, whole: true, doc: "alert when a reporter's last report began more than this many days ago"},
		"lookback_days":   {def: 14, min: 2, max: 365, whole: true, doc: "the period before the silence the reporter's habit is read from"},
		"min_active_days": {def: 7, min: 1, max: 365, whole: true, doc: "days with a report in the lookback that make a reporter regular"},
	},
	TypeAnomaly: {"min_score": {def: 0.6, min: 0, max: 1, doc: "Isolation Forest score s(x, n) of the latest ML scoring run (0.5 is average; anomalies score higher)"}},
	TypeTLSFailure: {
		"threshold":    {def: 0.05, min: 0.0001, max: 1, doc: "failed TLS session share (SMTP TLS reports, RFC 8460)"},
		"window_days":  {def: 2, min: 1, max: 365, whole: true, doc: "UTC days ending today (reports cover the day before they arrive)"},
		"min_sessions": {def: 10, min: 1, max: 1e12, whole: true, doc: "ignore domains with fewer sessions in the window"},
	},
}

// Types lists the rule types in a stable order.
func Types() []string {
	out := make([]string, 0, len(paramSpecs))
	for t := range paramSpecs {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Cooldown bounds (the issue: 1–24 h per rule).
const (
	MinCooldown     = time.Hour
	MaxCooldown     = 24 * time.Hour
	DefaultCooldown = 6 * time.Hour
)

// Rule is one alert rule as the API shows it.
type Rule struct {
	ID         int64          `json:"id"`
	Name       string         `json:"name"`
	Type       string         `json:"type"`
	Domain     *string        `json:"domain"` // nil: every domain
	Params     map[string]any `json:"params"`
	Severity   string         `json:"severity"`
	Cooldown   string         `json:"cooldown"`
	ChannelIDs []int64        `json:"channel_ids"`
	Enabled    bool           `json:"enabled"`
	IsDefault  bool           `json:"is_default"`
	CreatedAt  time.Time      `json:"created_at"`
	UpdatedAt  time.Time      `json:"updated_at"`

	cooldown time.Duration
	num      map[string]float64
}

// RuleInput is a create or PATCH body: nil fields are left alone (PATCH) or defaulted
// (create). Domain "" on PATCH means every domain again.
type RuleInput struct {
	Name       *string         `json:"name"`
	Type       *string         `json:"type"`
	Domain     *string         `json:"domain"`
	Params     json.RawMessage `json:"params"`
	Severity   *string         `json:"severity"`
	Cooldown   *string         `json:"cooldown"`
	ChannelIDs *[]int64        `json:"channel_ids"`
	Enabled    *bool           `json:"enabled"`
}

type ruleRow struct {
	ID              int64 `gorm:"primaryKey"`
	Name            string
	Type            string
	Domain          *string
	Params          string
	Severity        string
	CooldownSeconds int64
	ChannelIDs      string `gorm:"column:channel_ids"`
	Enabled         bool
	IsDefault       bool
	CreatedAt       int64 `gorm:"autoCreateTime:false"`
	UpdatedAt       int64 `gorm:"autoUpdateTime:false"`
}

func (ruleRow) TableName() string { return "alert_rules" }

// normParams checks raw against the type's parameters and fills defaults.
func normParams(typ string, raw map[string]any) (map[string]any, map[string]float64, error) {
	spec, ok := paramSpecs[typ]
	if !ok {
		return nil, nil, invalid("type: want one of %s", strings.Join(Types(), ", "))
	}
	out, num := map[string]any{}, map[string]float64{}
	for k := range raw {
		if _, ok := spec[k]; !ok {
			names := make([]string, 0, len(spec))
			for n := range spec {
				names = append(names, n)
			}
			sort.Strings(names)
			return nil, nil, invalid("params.%s: not a parameter of %s rules (they take %s)", k, typ, strings.Join(names, ", "))
		}
	}
	for name, p := range spec {
		v, given := raw[name]
		if p.boolean {
			b := p.def != 0
			if given {
				bv, ok := v.(bool)
				if !ok {
					return nil, nil, invalid("params.%s: want true or false", name)
				}
				b = bv
			}
			out[name] = b
			num[name] = map[bool]float64{false: 0, true: 1}[b]
			continue
		}
		f := p.def
		if given {
			fv, ok := v.(float64)
			if !ok || math.IsNaN(fv) || math.IsInf(fv, 0) {
				return nil, nil, invalid("params.%s: want a number", name)
			}
			f = fv
		}
		if f < p.min || f > p.max || (p.whole && f != math.Trunc(f)) {
			kind := "a number"
			if p.whole {
				kind = "a whole number"
			}
			return nil, nil, invalid("params.%s: want %s from %g to %g", name, kind, p.min, p.max)
		}
		out[name], num[name] = f, f
	}
	if typ == TypeMissingReports && num["min_active_days"] > num["lookback_days"] {
		return nil, nil, invalid("params.min_active_days: cannot exceed lookback_days")
	}
	return out, num, nil
}

// ParseCooldown reads "6h", "90m"; 1–24 h.
func ParseCooldown(s string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil || d < MinCooldown || d > MaxCooldown {
		return 0, invalid("cooldown: want a duration from 1h to 24h, such as \"6h\"")
	}
	return d, nil
}

func formatCooldown(d time.Duration) string {
	if d%time.Hour == 0 {
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return strings.TrimSuffix(d.String(), "0s")
}

func normDomain(s string) (string, error) {
	d := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
	if len(d) > 253 || strings.ContainsAny(d, " \t\r\n/\\@") {
		return "", invalid("domain: want a domain name")
	}
	return d, nil
}

func (r ruleRow) rule() (Rule, error) {
	var raw map[string]any
	if err := json.Unmarshal([]byte(r.Params), &raw); err != nil {
		return Rule{}, fmt.Errorf("rule %d params: %w", r.ID, err)
	}
	params, num, err := normParams(r.Type, raw)
	if err != nil {
		return Rule{}, fmt.Errorf("rule %d: %w", r.ID, err)
	}
	ids := []int64{}
	if err := json.Unmarshal([]byte(r.ChannelIDs), &ids); err != nil {
		return Rule{}, fmt.Errorf("rule %d channel ids: %w", r.ID, err)
	}
	cd := time.Duration(r.CooldownSeconds) * time.Second
	return Rule{ID: r.ID, Name: r.Name, Type: r.Type, Domain: r.Domain, Params: params, Severity: r.Severity,
		Cooldown: formatCooldown(cd), ChannelIDs: ids, Enabled: r.Enabled, IsDefault: r.IsDefault,
		CreatedAt: time.Unix(r.CreatedAt, 0).UTC(), UpdatedAt: time.Unix(r.UpdatedAt, 0).UTC(), cooldown: cd, num: num}, nil
}

// apply writes in's fields onto r, checking each.
func (s *Service) apply(ctx context.Context, r *ruleRow, in RuleInput, create bool) error {
	if err := SetName(&r.Name, in.Name, create); err != nil {
		return err
	}
	if in.Type == nil && create {
		return invalid("type: required; one of %s", strings.Join(Types(), ", "))
	}
	if err := SetFixed("type", "rule", &r.Type, in.Type, create); err != nil {
		return err
	}
	if _, ok := paramSpecs[r.Type]; !ok {
		return invalid("type: want one of %s", strings.Join(Types(), ", "))
	}
	if in.Domain != nil {
		d, err := normDomain(*in.Domain)
		if err != nil {
			return err
		}
		r.Domain = nil
		if d != "" {
			r.Domain = &d
		}
	}
	if in.Params != nil || create {
		raw := map[string]any{}
		if len(in.Params) > 0 && string(in.Params) != "null" {
			if err := json.Unmarshal(in.Params, &raw); err != nil {
				return invalid("params: want an object")
			}
		}
		p, _, err := normParams(r.Type, raw)
		if err != nil {
			return err
		}
		b, _ := json.Marshal(p)
		r.Params = string(b)
	}
	if in.Severity != nil {
		switch *in.Severity {
		case SeverityInfo, SeverityWarning, SeverityCritical:
			r.Severity = *in.Severity
		default:
			return invalid("severity: want info, warning or critical")
		}
	} else if create {
		r.Severity = SeverityWarning
	}
	if in.Cooldown != nil {
		d, err := ParseCooldown(*in.Cooldown)
		if err != nil {
			return err
		}
		r.CooldownSeconds = int64(d / time.Second)
	} else if create {
		r.CooldownSeconds = int64(DefaultCooldown / time.Second)
	}
	if in.ChannelIDs != nil {
		ids := slices.Clone(*in.ChannelIDs)
		slices.Sort(ids)
		ids = slices.Compact(ids)
		if len(ids) > 50 {
			return invalid("channel_ids: at most 50")
		}
		if len(ids) > 0 {
			var n int64
			if err := s.db.WithContext(ctx).Table("alert_channels").Where("id IN ?", ids).Count(&n).Error; err != nil {
				return fmt.Errorf("check channels: %w", err)
			}
			if n != int64(len(ids)) {
				return invalid("channel_ids: not every id names a channel (GET /alerts/channels)")
			}
		}
		b, _ := json.Marshal(ids)
		r.ChannelIDs = string(b)
	} else if create {
		r.ChannelIDs = "[]"
	}
	if in.Enabled != nil {
		r.Enabled = *in.Enabled
	} else if create {
		r.Enabled = true
	}
	return nil
}

// CreateRule adds a rule.
func (s *Service) CreateRule(ctx context.Context, in RuleInput) (Rule, error) {
	now := s.now().Unix()
	r := ruleRow{CreatedAt: now, UpdatedAt: now}
	if err := s.apply(ctx, &r, in, true); err != nil {
		return Rule{}, err
	}
	if err := s.db.WithContext(ctx).Create(&r).Error; err != nil {
		if cerr := NameTaken(err, "rule", r.Name); cerr != nil {
			return Rule{}, cerr
		}
		return Rule{}, fmt.Errorf("create rule: %w", err)
	}
	return r.rule()
}

// UpdateRule changes the fields in sets.
func (s *Service) UpdateRule(ctx context.Context, id int64, in RuleInput) (Rule, error) {
	var r ruleRow
	if err := s.db.WithContext(ctx).First(&r, id).Error; err != nil {
		return Rule{}, notFound(err, "rule", id)
	}
	if err := s.apply(ctx, &r, in, false); err != nil {
		return Rule{}, err
	}
	r.UpdatedAt = s.now().Unix()
	if err := s.db.WithContext(ctx).Save(&r).Error; err != nil {
		if cerr := NameTaken(err, "rule", r.Name); cerr != nil {
			return Rule{}, cerr
		}
		return Rule{}, fmt.Errorf("update rule %d: %w", id, err)
	}
	return r.rule()
}

// DeleteRule removes a rule; its alerts stay (rule_id becomes null).
func (s *Service) DeleteRule(ctx context.Context, id int64) error {
	res := s.db.WithContext(ctx).Delete(&ruleRow{}, id)
	if res.Error != nil {
		return fmt.Errorf("delete rule %d: %w", id, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("rule %d: %w", id, ErrNotFound)
	}
	return nil
}

// GetRule returns one rule.
func (s *Service) GetRule(ctx context.Context, id int64) (Rule, error) {
	var r ruleRow
	if err := s.db.WithContext(ctx).First(&r, id).Error; err != nil {
		return Rule{}, notFound(err, "rule", id)
	}
	return r.rule()
}

// ListRules returns every rule, by id.
func (s *Service) ListRules(ctx context.Context) ([]Rule, error) {
	var rows []ruleRow
	if err := s.db.WithContext(ctx).Order("id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list rules: %w", err)
	}
	out := make([]Rule, 0, len(rows))
	for _, r := range rows {
		rule, err := r.rule()
		if err != nil {
			return nil, err
		}
		out = append(out, rule)
	}
	return out, nil
}

// AdoptDefaults turns the default rules on with channel id once the first channel exists
// ("off until a channel exists"): only defaults nobody changed since the install.
func (s *Service) AdoptDefaults(ctx context.Context, channelID int64) error {
	err := s.db.WithContext(ctx).Exec(`UPDATE alert_rules SET enabled = ?, channel_ids = ?, updated_at = ?
		WHERE is_default AND NOT enabled AND channel_ids = '[]' AND updated_at = created_at`,
		true, fmt.Sprintf("[%d]", channelID), s.now().Unix()).Error
	if err != nil {
		return fmt.Errorf("adopt default rules: %w", err)
	}
	return nil
}

func notFound(err error, what string, id int64) error {
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return fmt.Errorf("%s %d: %w", what, id, ErrNotFound)
	}
	return fmt.Errorf("%s %d: %w", what, id, err)
}
