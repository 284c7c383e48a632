// Package alerting watches the rollups for what a postmaster must hear about: rules (failure
// rate, volume spikes and drops against a same-weekday baseline, new sources, policy
// violations and changes, reporters gone silent), their evaluation (a task after each rollup
// apply for the domains it touched, hourly from the scheduler, and on demand), alerts with a
// fingerprint and cooldown so any number of concurrent evaluations raise one alert, their
// lifecycle (open → acknowledged → resolved, each step with actor, time and note), maintenance
// windows that record alerts as suppressed instead of sending them, and counts and response
// times for /alerts/stats. Delivery to channels is pkg/notify's job: raising an alert here
// writes one pending delivery per channel of the rule and enqueues an alert:deliver task each.
package alerting

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
	"gorm.io/gorm"

	"github.com/vigilhq/vigil/pkg/audit"
	"github.com/vigilhq/vigil/pkg/store"
)

// Severities, from least to most urgent.
const (
	SeverityInfo     = "info"
	SeverityWarning  = "warning"
	SeverityCritical = "critical"
)

// Alert statuses (DESIGN.md).
const (
	StatusOpen         = "open"
	StatusAcknowledged = "acknowledged"
	StatusResolved     = "resolved"
	StatusSuppressed   = "suppressed"
)

var (
	// ErrInvalid wraps every refusal of a caller's input; the text after it names the field.
	ErrInvalid = errors.New("invalid")
	// ErrNotFound: no such rule, alert or suppression.
	ErrNotFound = store.ErrNotFound
	// ErrConflict: the change does not fit the current state (a name taken, an alert already
	// resolved).
	ErrConflict = errors.New("conflict")
)

// Enqueuer is the part of *asynq.Client the service needs.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Deps are what the service needs. Queue may be nil: alerts are recorded, deliveries stay
// pending (a process without a queue never evaluates anyway).
type Deps struct {
	Store *store.Store
	Queue Enqueuer
	Audit *audit.Log
	Log   *slog.Logger
	Now   func() time.Time
	// MaxAlertsPerRun bounds the alerts one rule may raise in one evaluation (0: 500), so a
	// misconfigured rule cannot flood the channels.
	MaxAlertsPerRun int
}

// Service evaluates rules and keeps alerts.
type Service struct {
	db      *gorm.DB
	dialect store.Dialect
	q       Enqueuer
	audit   *audit.Log
	log     *slog.Logger
	now     func() time.Time
	maxRun  int
}

// New builds the service.
func New(d Deps) *Service {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.MaxAlertsPerRun <= 0 {
		d.MaxAlertsPerRun = 500
	}
	s := &Service{q: d.Queue, audit: d.Audit, log: d.Log, now: d.Now, maxRun: d.MaxAlertsPerRun}
	if d.Store != nil {
		s.db, s.dialect = d.Store.DB(), d.Store.Dialect()
	}
	return s
}

func unixPtr(v *int64) *time.Time {
	if v == nil {
		return nil
	}
	t := time.Unix(*v, 0).UTC()
	return &t
}
