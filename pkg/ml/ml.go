// Package ml runs Vigil's learning jobs over the rollups: an Isolation Forest (pkg/isoforest)
// of the sending sources, trained on a window of 30–365 days and versioned with its metadata,
// the first model deploying itself and later ones by an admin; daily scoring of the sources
// with the deployed model, predictions kept with their features (anomalies for 90 days) and feeding the
// alerting's anomaly rule; Holt-Winters forecasts of each domain's DMARC failure rate and
// volume (pkg/forecast); and the policy advisor (pkg/advisor). Training and scoring are worker
// tasks (ml:train, ml:detect), from the API or the scheduler; the package owns their handlers,
// its tables (migration 17), its routes and its OpenAPI fragment.
package ml

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/hibiken/asynq"
	"gorm.io/gorm"

	"github.com/vigilhq/vigil/pkg/audit"
	"github.com/vigilhq/vigil/pkg/store"
)

var (
	// ErrInvalid wraps a refusal of a caller's input; the text after it names the field.
	ErrInvalid = errors.New("invalid")
	// ErrNotFound: no such model or domain.
	ErrNotFound = store.ErrNotFound
	// ErrConflict: the request does not fit the model's state (deploying a failed model).
	ErrConflict = errors.New("conflict")
	// ErrNoModel: scoring needs a deployed model.
	ErrNoModel = errors.New("no deployed model: train one first (POST /analytics/ml/train)")
	// ErrBusy: another training (or scoring) is running; the task retries later.
	ErrBusy = errors.New("another run is in progress")
)

// Window bounds of the jobs (days).
const (
	MinTrainDays, MaxTrainDays, DefaultTrainDays    = 30, 365, 90
	MinDetectDays, MaxDetectDays, DefaultDetectDays = 1, 365, 7
	// MinSamples is the fewest sources a model is trained on.
	MinSamples = 10
	// keepPredictions is how long anomalous predictions are kept.
	keepPredictions = 90 * 24 * time.Hour
	// staleRun: a training or scoring marked running for longer than the task timeout died
	// with its worker and no longer blocks another.
	staleRun = 35 * time.Minute
)

// Enqueuer is the part of *asynq.Client the API needs.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Config are the job settings (pkg/config.ML).
type Config struct {
	Contamination float64 // default 0.05
	Trees         int     // default 100
	TrainDays     int     // default 90
	DetectDays    int     // default 7
}

// Deps are what the service needs. Queue may be nil (a process without a queue: the POST
// routes answer 503); Describe may be nil (no enrichment: known_sender and asn_changed are 0).
type Deps struct {
	Store    *store.Store
	Queue    Enqueuer
	Describe Describer
	Audit    *audit.Log
	Log      *slog.Logger
	Now      func() time.Time
	Config   Config
	// OnDetected is told the domains a scoring run found anomalies for (an alert check).
	OnDetected func(ctx context.Context, domains []string)
}

// Service trains, scores, forecasts and advises.
type Service struct {
	db         *gorm.DB
	q          Enqueuer
	describe   Describer
	audit      *audit.Log
	log        *slog.Logger
	now        func() time.Time
	cfg        Config
	onDetected func(ctx context.Context, domains []string)
}

// New builds the service.
func New(d Deps) *Service {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	c := d.Config
	if c.Contamination <= 0 {
		c.Contamination = 0.05
	}
	if c.Trees <= 0 {
		c.Trees = 100
	}
	if c.TrainDays <= 0 {
		c.TrainDays = DefaultTrainDays
	}
	if c.DetectDays <= 0 {
		c.DetectDays = DefaultDetectDays
	}
	s := &Service{q: d.Queue, describe: d.Describe, audit: d.Audit, log: d.Log, now: d.Now, cfg: c, onDetected: d.OnDetected}
	if d.Store != nil {
		s.db = d.Store.DB()
	}
	return s
}

// Config is the configuration in effect.
func (s *Service) Config() Config { return s.cfg }

func sortSamples(v []Sample) {
	slices.SortFunc(v, func(a, b Sample) int { return a.IP.Compare(b.IP) })
}

func addrKey(ip netip.Addr) string { return ip.String() }
