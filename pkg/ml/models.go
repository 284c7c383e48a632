package ml

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"gorm.io/gorm"

	"github.com/vigilhq/vigil/pkg/isoforest"
	"github.com/vigilhq/vigil/pkg/rollup"
)

// Model statuses (DESIGN.md).
const (
	StatusTraining = "training"
	StatusReady    = "ready"
	StatusFailed   = "failed"
)

// Params are a model's training parameters, as the API shows them.
type Params struct {
	Trees         int      `json:"trees"`
	Subsample     int      `json:"subsample"`
	Contamination float64  `json:"contamination"`
	Threshold     float64  `json:"threshold"` // s(x, n) at or above which a source is anomalous
	Seed          uint64   `json:"seed"`
	Features      []string `json:"features"`
}

// Window is the days a model was trained on.
type Window struct {
	Days  int    `json:"days"`
	Start string `json:"start"` // YYYY-MM-DD, inclusive
	End   string `json:"end"`
}

// FeatureStat describes one feature over the training sources.
type FeatureStat struct {
	Name   string  `json:"name"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	Mean   float64 `json:"mean"`
	StdDev float64 `json:"stddev"`
}

// Model is a trained (or training, or failed) model as the API shows it.
type Model struct {
	ID           int64         `json:"id"`
	Version      int           `json:"version"`
	Status       string        `json:"status"`
	Deployed     bool          `json:"deployed"`
	StartedAt    time.Time     `json:"started_at"`
	TrainedAt    *time.Time    `json:"trained_at"`
	Samples      int           `json:"samples"`
	Params       Params        `json:"params"`
	Window       Window        `json:"window"`
	FeatureStats []FeatureStat `json:"feature_stats"`
	TrainedBy    string        `json:"trained_by"`
	DurationMS   int64         `json:"duration_ms"`
	Error        *string       `json:"error"`
	DeployedAt   *time.Time    `json:"deployed_at"`
	DeployedBy   *string       `json:"deployed_by"`
}

type modelRow struct {
	ID           int64 `gorm:"primaryKey"`
	Version      int
	Status       string
	Deployed     bool
	WindowDays   int
	WindowStart  int64
	WindowEnd    int64
	Samples      int
	Params       string
	FeatureStats string
	TrainedBy    string
	Error        string
	Forest       *string
	StartedAt    int64
	TrainedAt    *int64
	DurationMs   int64
	DeployedAt   *int64
	DeployedBy   *string
}

func (modelRow) TableName() string { return "ml_models" }

// listCols leaves out the forest, which only scoring needs.
const listCols = "id, version, status, deployed, window_days, window_start, window_end, samples, params, feature_stats, trained_by, error, started_at, trained_at, duration_ms, deployed_at, deployed_by"

func unixPtr(v *int64) *time.Time {
	if v == nil {
		return nil
	}
	t := time.Unix(*v, 0).UTC()
	return &t
}

func day(d int64) string { return rollup.DayTime(int32(d)).Format(time.DateOnly) }

func (r modelRow) model() Model {
	m := Model{ID: r.ID, Version: r.Version, Status: r.Status, Deployed: r.Deployed, StartedAt: time.Unix(r.StartedAt, 0).UTC(),
		TrainedAt: unixPtr(r.TrainedAt), Samples: r.Samples, TrainedBy: r.TrainedBy, DurationMS: r.DurationMs,
		DeployedAt: unixPtr(r.DeployedAt), DeployedBy: r.DeployedBy, FeatureStats: []FeatureStat{},
		Window: Window{Days: r.WindowDays, Start: day(r.WindowStart), End: day(r.WindowEnd)}}
	_ = json.Unmarshal([]byte(r.Params), &m.Params)
	if m.Params.Features == nil {
		m.Params.Features = []string{}
	}
	_ = json.Unmarshal([]byte(r.FeatureStats), &m.FeatureStats)
	if r.Error != "" {
		e := r.Error
		m.Error = &e
	}
	return m
}

// Models lists models, newest first.
func (s *Service) Models(ctx context.Context, page, size int) ([]Model, int64, error) {
	var total int64
	if err := s.db.WithContext(ctx).Model(&modelRow{}).Count(&total).Error; err != nil {
		return nil, 0, fmt.Errorf("ml: count models: %w", err)
	}
	var rows []modelRow
	if err := s.db.WithContext(ctx).Select(listCols).Order("version DESC").Offset((page - 1) * size).Limit(size).Find(&rows).Error; err != nil {
		return nil, 0, fmt.Errorf("ml: list models: %w", err)
	}
	out := make([]Model, 0, len(rows))
	for _, r := range rows {
		out = append(out, r.model())
	}
	return out, total, nil
}

// Get reads one model.
func (s *Service) Get(ctx context.Context, id int64) (Model, error) {
	var rows []modelRow
	if err := s.db.WithContext(ctx).Select(listCols).Where("id = ?", id).Limit(1).Find(&rows).Error; err != nil {
		return Model{}, fmt.Errorf("ml: read model %d: %w", id, err)
	}
	if len(rows) == 0 {
		return Model{}, fmt.Errorf("model %d: %w", id, ErrNotFound)
	}
	return rows[0].model(), nil
}

// Deploy makes a ready model the one scoring uses.
func (s *Service) Deploy(ctx context.Context, id int64, by string) (Model, error) {
	m, err := s.Get(ctx, id)
	if err != nil {
		return Model{}, err
	}
	if m.Status != StatusReady {
		return Model{}, fmt.Errorf("%w: model %d is %s; only a ready model can be deployed", ErrConflict, id, m.Status)
	}
	now := s.now().Unix()
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Model(&modelRow{}).Where("deployed AND id <> ?", id).Update("deployed", false).Error; err != nil {
			return err
		}
		return tx.Model(&modelRow{}).Where("id = ?", id).Updates(map[string]any{"deployed": true, "deployed_at": now, "deployed_by": by}).Error
	})
	if err != nil {
		return Model{}, fmt.Errorf("ml: deploy model %d: %w", id, err)
	}
	return s.Get(ctx, id)
}

// deployed reads the deployed model with its forest.
func (s *Service) deployed(ctx context.Context) (modelRow, *isoforest.Forest, error) {
	var rows []modelRow
	if err := s.db.WithContext(ctx).Where("deployed").Limit(1).Find(&rows).Error; err != nil {
		return modelRow{}, nil, fmt.Errorf("ml: read deployed model: %w", err)
	}
	if len(rows) == 0 || rows[0].Forest == nil {
		return modelRow{}, nil, ErrNoModel
	}
	f, err := isoforest.Unmarshal([]byte(*rows[0].Forest))
	if err != nil {
		return modelRow{}, nil, fmt.Errorf("ml: model %d: %w", rows[0].ID, err)
	}
	if f.Features != len(FeatureNames) {
		return modelRow{}, nil, fmt.Errorf("ml: model %d has %d features, this version computes %d: train a new model", rows[0].ID, f.Features, len(FeatureNames))
	}
	return rows[0], f, nil
}

// TrainResult is the result of an ml:train task.
type TrainResult struct {
	ModelID    int64   `json:"model_id"`
	Version    int     `json:"version"`
	Status     string  `json:"status"`
	Samples    int     `json:"samples"`
	Deployed   bool    `json:"deployed"`
	Threshold  float64 `json:"threshold"`
	DurationMS int64   `json:"duration_ms"`
	Error      *string `json:"error"`
}

// Train fits a model on the sources of the last days UTC days (today included) and stores it.
// Too few sources make a failed model (the reason in its error), not an error: retrying
// would not help.
func (s *Service) Train(ctx context.Context, days int, by string) (TrainResult, error) {
	if days < MinTrainDays || days > MaxTrainDays {
		return TrainResult{}, fmt.Errorf("%w: days: want %d to %d", ErrInvalid, MinTrainDays, MaxTrainDays)
	}
	start := s.now()
	row, err := s.begin(ctx, days, by, start)
	if err != nil {
		return TrainResult{}, err
	}
	res := TrainResult{ModelID: row.ID, Version: row.Version, Status: StatusFailed}
	fail := func(reason string) (TrainResult, error) {
		res.Error = &reason
		res.DurationMS = s.now().Sub(start).Milliseconds()
		err := s.db.WithContext(ctx).Model(&modelRow{}).Where("id = ?", row.ID).
			Updates(map[string]any{"status": StatusFailed, "error": reason, "duration_ms": res.DurationMS}).Error
		if err != nil {
			return res, fmt.Errorf("ml: record failed model %d: %w", row.ID, err)
		}
		s.log.Warn("ml: training failed", "model_id", row.ID, "reason", reason)
		return res, nil
	}
	smp, err := s.samples(ctx, int32(row.WindowStart), int32(row.WindowEnd), nil)
	if err != nil {
		_, _ = fail(err.Error())
		return res, err
	}
	res.Samples = len(smp)
	if len(smp) < MinSamples {
		return fail(fmt.Sprintf("%d sources with mail from %s to %s: at least %d are needed", len(smp), day(row.WindowStart), day(row.WindowEnd), MinSamples))
	}
	X := make([][]float64, len(smp))
	for i, x := range smp {
		X[i] = x.Vector
	}
	// The version seeds the forest: a model can be rebuilt exactly from its window and version.
	f, err := isoforest.Fit(X, isoforest.Options{Trees: s.cfg.Trees, Contamination: s.cfg.Contamination, Seed: uint64(row.Version)})
	if err != nil {
		return fail(err.Error())
	}
	forest, err := f.Marshal()
	if err != nil {
		return res, err
	}
	params, _ := json.Marshal(Params{Trees: len(f.Trees), Subsample: f.Subsample, Contamination: f.Contamination, Threshold: f.Threshold, Seed: f.Seed, Features: FeatureNames})
	stats, _ := json.Marshal(featureStats(X))
	done := s.now()
	fs := string(forest)
	res.Status, res.Threshold, res.DurationMS = StatusReady, f.Threshold, done.Sub(start).Milliseconds()
	err = s.db.WithContext(ctx).Model(&modelRow{}).Where("id = ?", row.ID).Updates(map[string]any{
		"status": StatusReady, "samples": len(smp), "params": string(params), "feature_stats": string(stats),
		"forest": fs, "trained_at": done.Unix(), "duration_ms": res.DurationMS}).Error
	if err != nil {
		return res, fmt.Errorf("ml: save model %d: %w", row.ID, err)
	}
	// The first model deploys itself; later ones wait for an admin (POST /analytics/ml/deploy).
	// The unique index on deployed settles a race between two first models.
	q := s.db.WithContext(ctx).Exec(`UPDATE ml_models SET deployed = ?, deployed_at = ?, deployed_by = ? WHERE id = ? AND NOT EXISTS (SELECT 1 FROM ml_models m WHERE m.deployed)`,
		true, done.Unix(), "auto (first model)", row.ID)
	res.Deployed = q.Error == nil && q.RowsAffected == 1
	s.log.Info("ml: model trained", "model_id", row.ID, "version", row.Version, "samples", len(smp), "deployed", res.Deployed, "duration", done.Sub(start))
	return res, nil
}

// begin records a training model, refusing while another training is running (one that has
// been "training" longer than a task may run died with its worker and is marked failed).
func (s *Service) begin(ctx context.Context, days int, by string, now time.Time) (modelRow, error) {
	var row modelRow
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Model(&modelRow{}).Where("status = ? AND started_at < ?", StatusTraining, now.Add(-staleRun).Unix()).
			Updates(map[string]any{"status": StatusFailed, "error": "the worker training it stopped"}).Error; err != nil {
			return err
		}
		var busy int64
		if err := tx.Model(&modelRow{}).Where("status = ?", StatusTraining).Count(&busy).Error; err != nil {
			return err
		}
		if busy > 0 {
			return ErrBusy
		}
		var last []int
		if err := tx.Model(&modelRow{}).Order("version DESC").Limit(1).Pluck("version", &last).Error; err != nil {
			return err
		}
		to := int64(rollup.DayOf(now))
		row = modelRow{Version: 1, Status: StatusTraining, WindowDays: days, WindowStart: to - int64(days) + 1, WindowEnd: to,
			Params: "{}", FeatureStats: "[]", TrainedBy: by, StartedAt: now.Unix()}
		if len(last) > 0 {
			row.Version = last[0] + 1
		}
		return tx.Create(&row).Error
	})
	if errors.Is(err, ErrBusy) {
		return row, err
	}
	if err != nil {
		// A concurrent training took the version: the same as busy.
		var n int64
		if cerr := s.db.WithContext(ctx).Model(&modelRow{}).Where("status = ?", StatusTraining).Count(&n).Error; cerr == nil && n > 0 {
			return row, ErrBusy
		}
		return row, fmt.Errorf("ml: start training: %w", err)
	}
	return row, nil
}

func featureStats(X [][]float64) []FeatureStat {
	out := make([]FeatureStat, len(FeatureNames))
	for j, name := range FeatureNames {
		st := FeatureStat{Name: name, Min: math.Inf(1), Max: math.Inf(-1)}
		var sum, sq float64
		for _, x := range X {
			v := x[j]
			st.Min, st.Max = min(st.Min, v), max(st.Max, v)
			sum += v
		}
		st.Mean = sum / float64(len(X))
		for _, x := range X {
			d := x[j] - st.Mean
			sq += d * d
		}
		st.StdDev = math.Sqrt(sq / float64(len(X)))
		out[j] = st
	}
	return out
}
