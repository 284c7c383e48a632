package alerting

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Recurrences of a maintenance window.
const (
	RecurNone   = "none"
	RecurDaily  = "daily"
	RecurWeekly = "weekly"
)

// Suppression is a maintenance window: alerts it matches (domain, type and severity, each nil
// for any) are recorded as suppressed and not sent. One-off windows run from starts_at to
// ends_at; recurring ones every day, or every week on weekday, from start_time for duration
// (UTC), between starts_at and expires_at. A window past its end or expiry is expired: it
// matches nothing, is no longer listed, and the hourly evaluation deletes it.
type Suppression struct {
	ID         int64      `json:"id"`
	Domain     *string    `json:"domain"`
	Type       *string    `json:"type"`
	Severity   *string    `json:"severity"`
	Recurrence string     `json:"recurrence"`
	StartsAt   time.Time  `json:"starts_at"`
	EndsAt     *time.Time `json:"ends_at"`
	Weekday    *string    `json:"weekday"`    // weekly: sunday … saturday
	StartTime  *string    `json:"start_time"` // recurring: "02:00" UTC
	Duration   *string    `json:"duration"`   // recurring: "2h"
	ExpiresAt  *time.Time `json:"expires_at"`
	Note       string     `json:"note"`
	CreatedBy  string     `json:"created_by"`
	CreatedAt  time.Time  `json:"created_at"`
}

// SuppressionInput is the body of POST /alerts/suppressions.
type SuppressionInput struct {
	Domain     *string    `json:"domain"`
	Type       *string    `json:"type"`
	Severity   *string    `json:"severity"`
	Recurrence string     `json:"recurrence"`
	StartsAt   *time.Time `json:"starts_at"`
	EndsAt     *time.Time `json:"ends_at"`
	Weekday    *string    `json:"weekday"`
	StartTime  *string    `json:"start_time"`
	Duration   *string    `json:"duration"`
	ExpiresAt  *time.Time `json:"expires_at"`
	Note       string     `json:"note"`
}

type suppressionRow struct {
	ID              int64 `gorm:"primaryKey"`
	Domain          *string
	Type            *string
	Severity        *string
	Recurrence      string
	StartsAt        int64
	EndsAt          *int64
	Weekday         *int
	StartMinute     int
	DurationMinutes int
	ExpiresAt       *int64
	Note            string
	CreatedBy       string
	CreatedAt       int64 `gorm:"autoCreateTime:false"`
}

func (suppressionRow) TableName() string { return "alert_suppressions" }

var weekdays = []string{"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"}

// active reports whether the window covers t.
func (r suppressionRow) active(t time.Time) bool {
	u := t.Unix()
	if u < r.StartsAt || (r.ExpiresAt != nil && u >= *r.ExpiresAt) {
		return false
	}
	switch r.Recurrence {
	case RecurNone:
		return r.EndsAt != nil && u < *r.EndsAt
	case RecurDaily, RecurWeekly:
		t = t.UTC()
		// The window may have started yesterday (or last week) and run past midnight.
		for back := 0; back <= 7; back++ {
			d := time.Date(t.Year(), t.Month(), t.Day()-back, 0, 0, 0, 0, time.UTC)
			if r.Recurrence == RecurWeekly && (r.Weekday == nil || int(d.Weekday()) != *r.Weekday) {
				continue
			}
			start := d.Add(time.Duration(r.StartMinute) * time.Minute)
			if !t.Before(start) && t.Before(start.Add(time.Duration(r.DurationMinutes)*time.Minute)) {
				return true
			}
		}
	}
	return false
}

func (r suppressionRow) expired(t time.Time) bool {
	u := t.Unix()
	if r.ExpiresAt != nil && u >= *r.ExpiresAt {
		return true
	}
	return r.Recurrence == RecurNone && r.EndsAt != nil && u >= *r.EndsAt
}

func (r suppressionRow) view() Suppression {
	s := Suppression{ID: r.ID, Domain: r.Domain, Type: r.Type, Severity: r.Severity, Recurrence: r.Recurrence,
		StartsAt: time.Unix(r.StartsAt, 0).UTC(), EndsAt: unixPtr(r.EndsAt), ExpiresAt: unixPtr(r.ExpiresAt),
		Note: r.Note, CreatedBy: r.CreatedBy, CreatedAt: time.Unix(r.CreatedAt, 0).UTC()}
	if r.Recurrence != RecurNone {
		st := fmt.Sprintf("%02d:%02d", r.StartMinute/60, r.StartMinute%60)
		d := (time.Duration(r.DurationMinutes) * time.Minute).String()
		d = strings.TrimSuffix(strings.TrimSuffix(d, "0s"), "0m")
		s.StartTime, s.Duration = &st, &d
	}
	if r.Weekday != nil {
		w := weekdays[*r.Weekday]
		s.Weekday = &w
	}
	return s
}

func optEnum(name string, v *string, allowed ...string) (*string, error) {
	if v == nil || *v == "" {
		return nil, nil
	}
	x := strings.ToLower(strings.TrimSpace(*v))
	for _, a := range allowed {
		if a == x {
			return &x, nil
		}
	}
	return nil, invalid("%s: want one of %s", name, strings.Join(allowed, ", "))
}

// CreateSuppression adds a maintenance window.
func (s *Service) CreateSuppression(ctx context.Context, in SuppressionInput, actor string) (Suppression, error) {
	now := s.now()
	r := suppressionRow{Recurrence: strings.ToLower(strings.TrimSpace(in.Recurrence)), Note: strings.TrimSpace(in.Note), CreatedBy: actor, CreatedAt: now.Unix()}
	if r.Recurrence == "" {
		r.Recurrence = RecurNone
	}
	if len(r.Note) > 2000 {
		return Suppression{}, invalid("note: at most 2000 characters")
	}
	var err error
	if in.Domain != nil && *in.Domain != "" {
		d, err := normDomain(*in.Domain)
		if err != nil {
			return Suppression{}, err
		}
		r.Domain = &d
	}
	if r.Type, err = optEnum("type", in.Type, Types()...); err != nil {
		return Suppression{}, err
	}
	if r.Severity, err = optEnum("severity", in.Severity, SeverityInfo, SeverityWarning, SeverityCritical); err != nil {
		return Suppression{}, err
	}
	r.StartsAt = now.Unix()
	if in.StartsAt != nil {
		r.StartsAt = in.StartsAt.Unix()
	}
	if in.ExpiresAt != nil {
		e := in.ExpiresAt.Unix()
		if e <= r.StartsAt {
			return Suppression{}, invalid("expires_at: must be after starts_at")
		}
		r.ExpiresAt = &e
	}
	switch r.Recurrence {
	case RecurNone:
		if in.EndsAt == nil {
			return Suppression{}, invalid("ends_at: required for a one-off window")
		}
		e := in.EndsAt.Unix()
		if e <= r.StartsAt {
			return Suppression{}, invalid("ends_at: must be after starts_at")
		}
		if in.Weekday != nil || in.StartTime != nil || in.Duration != nil {
			return Suppression{}, invalid("recurrence: weekday, start_time and duration need recurrence daily or weekly")
		}
		r.EndsAt = &e
	case RecurDaily, RecurWeekly:
		if in.EndsAt != nil {
			return Suppression{}, invalid("ends_at: a recurring window ends with expires_at")
		}
		if in.StartTime == nil || in.Duration == nil {
			return Suppression{}, invalid("start_time and duration: required for a recurring window")
		}
		hh, mm, ok := strings.Cut(*in.StartTime, ":")
		h, err1 := strconv.Atoi(hh)
		m, err2 := strconv.Atoi(mm)
		if !ok || err1 != nil || err2 != nil || h < 0 || h > 23 || m < 0 || m > 59 {
			return Suppression{}, invalid("start_time: want HH:MM (UTC)")
		}
		r.StartMinute = h*60 + m
		d, err := time.ParseDuration(*in.Duration)
		limit := 24 * time.Hour
		if r.Recurrence == RecurWeekly {
			limit = 7 * 24 * time.Hour
		}
		if err != nil || d < time.Minute || d > limit || d%time.Minute != 0 {
			return Suppression{}, invalid("duration: want whole minutes up to %s, such as \"2h\"", limit)
		}
		r.DurationMinutes = int(d / time.Minute)
		if r.Recurrence == RecurWeekly {
			if in.Weekday == nil {
				return Suppression{}, invalid("weekday: required for a weekly window")
			}
			wd := -1
			for i, n := range weekdays {
				if strings.EqualFold(strings.TrimSpace(*in.Weekday), n) {
					wd = i
				}
			}
			if wd < 0 {
				return Suppression{}, invalid("weekday: want sunday … saturday")
			}
			r.Weekday = &wd
		} else if in.Weekday != nil {
			return Suppression{}, invalid("weekday: only for a weekly window")
		}
	default:
		return Suppression{}, invalid("recurrence: want none, daily or weekly")
	}
	if err := s.db.WithContext(ctx).Create(&r).Error; err != nil {
		return Suppression{}, fmt.Errorf("create suppression: %w", err)
	}
	return r.view(), nil
}

// ListSuppressions returns the windows not yet expired.
func (s *Service) ListSuppressions(ctx context.Context) ([]Suppression, error) {
	rows, err := s.suppressions(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now()
	out := []Suppression{}
	for _, r := range rows {
		if !r.expired(now) {
			out = append(out, r.view())
		}
	}
	return out, nil
}

func (s *Service) suppressions(ctx context.Context) ([]suppressionRow, error) {
	var rows []suppressionRow
	if err := s.db.WithContext(ctx).Order("id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("suppressions: %w", err)
	}
	return rows, nil
}

// DeleteSuppression removes a window.
func (s *Service) DeleteSuppression(ctx context.Context, id int64) error {
	res := s.db.WithContext(ctx).Delete(&suppressionRow{}, id)
	if res.Error != nil {
		return fmt.Errorf("delete suppression %d: %w", id, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("suppression %d: %w", id, ErrNotFound)
	}
	return nil
}

// PurgeExpired deletes expired windows (automatic expiry); alerts keep their suppression_id.
func (s *Service) PurgeExpired(ctx context.Context) (int, error) {
	rows, err := s.suppressions(ctx)
	if err != nil {
		return 0, err
	}
	var ids []int64
	for _, r := range rows {
		if r.expired(s.now()) {
			ids = append(ids, r.ID)
		}
	}
	if len(ids) == 0 {
		return 0, nil
	}
	if err := s.db.WithContext(ctx).Delete(&suppressionRow{}, ids).Error; err != nil {
		return 0, fmt.Errorf("purge suppressions: %w", err)
	}
	return len(ids), nil
}

// activeSuppression returns the id of a window of rows covering an alert of this domain, type
// and severity at now, or nil.
func activeSuppression(rows []suppressionRow, domain, typ, severity string, now time.Time) *int64 {
	for _, r := range rows {
		if (r.Domain != nil && *r.Domain != domain) || (r.Type != nil && *r.Type != typ) || (r.Severity != nil && *r.Severity != severity) {
			continue
		}
		if r.active(now) {
			id := r.ID
			return &id
		}
	}
	return nil
}
