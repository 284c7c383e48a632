package alerting

import (
	"context"
	"fmt"
	"gorm.io/gorm"
	"time"
)

// Stats answers GET /alerts/stats over [Since, Until).
type Stats struct {
	Since      time.Time        `json:"since"`
	Until      time.Time        `json:"until"`
	Total      int64            `json:"total"`
	ByType     map[string]int64 `json:"by_type"`
	BySeverity map[string]int64 `json:"by_severity"`
	ByStatus   map[string]int64 `json:"by_status"`
	ByDomain   []DomainCount    `json:"by_domain"` // the 50 domains with most alerts
	ByDay      []DayCount       `json:"by_day"`
	// Mean seconds from creation to acknowledgement and to resolution, over the alerts that
	// got there; null when none did.
	MeanTimeToAcknowledge *float64 `json:"mean_time_to_acknowledge_seconds"`
	MeanTimeToResolve     *float64 `json:"mean_time_to_resolve_seconds"`
}

// DomainCount is one domain's alerts.
type DomainCount struct {
	Domain string `json:"domain"`
	Alerts int64  `json:"alerts"`
}

// DayCount is one UTC day's alerts.
type DayCount struct {
	Day    string `json:"day"`
	Alerts int64  `json:"alerts"`
}

// Stats counts the alerts created in [since, until) by type, severity, status, domain and day,
// with the mean times to acknowledge and to resolve: aggregates in SQL, so the cost does not
// grow with what is returned.
func (s *Service) Stats(ctx context.Context, since, until time.Time) (Stats, error) {
	st := Stats{Since: since.UTC(), Until: until.UTC(), ByType: map[string]int64{}, BySeverity: map[string]int64{},
		ByStatus: map[string]int64{}, ByDomain: []DomainCount{}, ByDay: []DayCount{}}
	base := func() *gorm.DB {
		return s.db.WithContext(ctx).Table("alerts").Where("created_at >= ? AND created_at < ?", since.Unix(), until.Unix())
	}
	for col, dst := range map[string]map[string]int64{"type": st.ByType, "severity": st.BySeverity, "status": st.ByStatus} {
		var rows []struct {
			K string
			N int64
		}
		if err := base().Select(col + " AS k, COUNT(*) AS n").Group(col).Scan(&rows).Error; err != nil {
			return st, fmt.Errorf("alert stats by %s: %w", col, err)
		}
		for _, r := range rows {
			dst[r.K] = r.N
			if col == "type" {
				st.Total += r.N
			}
		}
	}
	if err := base().Select("domain, COUNT(*) AS alerts").Group("domain").Order("alerts DESC, domain").Limit(50).Scan(&st.ByDomain).Error; err != nil {
		return st, fmt.Errorf("alert stats by domain: %w", err)
	}
	var days []struct {
		D int64
		N int64
	}
	if err := base().Select("created_at / 86400 AS d, COUNT(*) AS n").Group("created_at / 86400").Order("d").Scan(&days).Error; err != nil {
		return st, fmt.Errorf("alert stats by day: %w", err)
	}
	for _, d := range days {
		st.ByDay = append(st.ByDay, DayCount{Day: time.Unix(d.D*86400, 0).UTC().Format(time.DateOnly), Alerts: d.N})
	}
	var m struct {
		Ack *float64
		Res *float64
	}
	if err := base().Select("AVG(CASE WHEN acknowledged_at IS NOT NULL THEN acknowledged_at - created_at END) AS ack, " +
		"AVG(CASE WHEN resolved_at IS NOT NULL THEN resolved_at - created_at END) AS res").Scan(&m).Error; err != nil {
		return st, fmt.Errorf("alert stats times: %w", err)
	}
	st.MeanTimeToAcknowledge, st.MeanTimeToResolve = m.Ack, m.Res
	return st, nil
}
