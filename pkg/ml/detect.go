package ml

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/vigilhq/vigil/pkg/rollup"
)

// Prediction is one source's scoring, as the API shows it.
type Prediction struct {
	IP           string         `json:"ip"`
	Domain       string         `json:"domain"`
	Score        float64        `json:"score"`         // threshold − s: lower is more anomalous, below 0 anomalous
	AnomalyScore float64        `json:"anomaly_score"` // s(x, n) in [0, 1]: higher is more anomalous
	IsAnomaly    bool           `json:"is_anomaly"`
	Features     map[string]any `json:"features"`
	ModelID      int64          `json:"model_id"`
	RunID        int64          `json:"run_id"`
	DetectedAt   time.Time      `json:"detected_at"`
}

type predictionRow struct {
	ID           int64 `gorm:"primaryKey"`
	RunID        int64
	ModelID      int64
	DetectedAt   int64
	IP           string `gorm:"column:ip"`
	Domain       string
	Score        float64
	AnomalyScore float64
	IsAnomaly    bool
	Features     string
}

func (predictionRow) TableName() string { return "ml_predictions" }

func (r predictionRow) prediction() Prediction {
	p := Prediction{IP: r.IP, Domain: r.Domain, Score: r.Score, AnomalyScore: r.AnomalyScore, IsAnomaly: r.IsAnomaly,
		ModelID: r.ModelID, RunID: r.RunID, DetectedAt: time.Unix(r.DetectedAt, 0).UTC()}
	_ = json.Unmarshal([]byte(r.Features), &p.Features)
	if p.Features == nil {
		p.Features = map[string]any{}
	}
	return p
}

// DetectResult is the result of an ml:detect task.
type DetectResult struct {
	ModelID    int64     `json:"model_id"`
	RunID      int64     `json:"run_id"`
	DetectedAt time.Time `json:"detected_at"`
	Days       int       `json:"days"`
	Scored     int       `json:"scored"`
	Anomalies  int       `json:"anomalies"`
	Threshold  float64   `json:"threshold"`
	DurationMS int64     `json:"duration_ms"`
}

// Detect scores every source with mail in the last days UTC days with the deployed model and
// stores the predictions (all of them, anomalous or not, with their features). Anomalies are
// kept 90 days, the other predictions until the next run.
func (s *Service) Detect(ctx context.Context, days int) (DetectResult, error) {
	if days < MinDetectDays || days > MaxDetectDays {
		return DetectResult{}, fmt.Errorf("%w: days: want %d to %d", ErrInvalid, MinDetectDays, MaxDetectDays)
	}
	start := s.now()
	mrow, f, err := s.deployed(ctx)
	if err != nil {
		return DetectResult{}, err
	}
	prev, err := s.previousASN(ctx)
	if err != nil {
		return DetectResult{}, err
	}
	to := rollup.DayOf(start)
	smp, err := s.samples(ctx, to-int32(days)+1, to, prev)
	if err != nil {
		return DetectResult{}, err
	}
	X := make([][]float64, len(smp))
	for i, x := range smp {
		X[i] = x.Vector
	}
	scores := f.ScoreAll(X, 0)
	runID := start.UnixMilli()
	res := DetectResult{ModelID: mrow.ID, RunID: runID, DetectedAt: time.Unix(start.Unix(), 0).UTC(), Days: days, Scored: len(smp), Threshold: f.Threshold}
	rows := make([]predictionRow, len(smp))
	var flagged []string
	for i, x := range smp {
		feat, _ := json.Marshal(x.Features())
		an := f.IsAnomaly(scores[i])
		rows[i] = predictionRow{RunID: runID, ModelID: mrow.ID, DetectedAt: start.Unix(), IP: addrKey(x.IP), Domain: x.Domain,
			Score: f.Threshold - scores[i], AnomalyScore: scores[i], IsAnomaly: an, Features: string(feat)}
		if an {
			res.Anomalies++
			if !slices.Contains(flagged, x.Domain) {
				flagged = append(flagged, x.Domain)
			}
		}
	}
	if len(rows) > 0 {
		if err := s.db.WithContext(ctx).CreateInBatches(rows, 500).Error; err != nil {
			return res, fmt.Errorf("ml: store predictions: %w", err)
		}
	}
	// Anomalies are kept 90 days; the normal sources of a run only until the next run (they
	// are most rows: a daily run over 100,000 sources would otherwise keep 9 million).
	if err := s.db.WithContext(ctx).Where("detected_at < ? OR (run_id < ? AND NOT is_anomaly)", start.Add(-keepPredictions).Unix(), runID).
		Delete(&predictionRow{}).Error; err != nil {
		s.log.Warn("ml: old predictions not purged", "err", err)
	}
	res.DurationMS = s.now().Sub(start).Milliseconds()
	s.log.Info("ml: sources scored", "model_id", mrow.ID, "scored", res.Scored, "anomalies", res.Anomalies, "duration", s.now().Sub(start))
	if s.onDetected != nil && len(flagged) > 0 {
		s.onDetected(ctx, flagged)
	}
	return res, nil
}

// previousASN reads each address's ASN from the latest scoring run.
func (s *Service) previousASN(ctx context.Context) (map[netip.Addr]int64, error) {
	run, err := s.latestRun(ctx, 0)
	if err != nil || run == 0 {
		return nil, err
	}
	var rows []predictionRow
	if err := s.db.WithContext(ctx).Select("ip, features").Where("run_id = ?", run).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("ml: read previous run: %w", err)
	}
	out := make(map[netip.Addr]int64, len(rows))
	for _, r := range rows {
		var f struct {
			ASN *int64 `json:"asn"`
		}
		ip, err := netip.ParseAddr(r.IP)
		if err != nil || json.Unmarshal([]byte(r.Features), &f) != nil || f.ASN == nil {
			continue
		}
		out[ip] = *f.ASN
	}
	return out, nil
}

// latestRun is the newest run's id (of a model, or of any when modelID is 0); 0 when none.
func (s *Service) latestRun(ctx context.Context, modelID int64) (int64, error) {
	q := s.db.WithContext(ctx).Model(&predictionRow{})
	if modelID > 0 {
		q = q.Where("model_id = ?", modelID)
	}
	var run sql.NullInt64
	if err := q.Select("MAX(run_id)").Row().Scan(&run); err != nil {
		return 0, fmt.Errorf("ml: read latest run: %w", err)
	}
	return run.Int64, nil
}

// Filter selects predictions: by default the anomalies of the latest run.
type Filter struct {
	All     bool   // normal sources too
	ModelID int64  // the latest run of this model
	IP      string // one address
	Domain  string
}

// Recent lists the predictions of the latest run (of a model when the filter names one), most
// anomalous first; with an IP, that address's predictions over every kept run, newest first.
func (s *Service) Recent(ctx context.Context, f Filter, page, size int) ([]Prediction, int64, error) {
	q := s.db.WithContext(ctx).Model(&predictionRow{})
	order := "score ASC, ip ASC"
	if f.IP != "" {
		q = q.Where("ip = ?", f.IP)
		if f.ModelID > 0 {
			q = q.Where("model_id = ?", f.ModelID)
		}
		order = "detected_at DESC, run_id DESC"
	} else {
		run, err := s.latestRun(ctx, f.ModelID)
		if err != nil {
			return nil, 0, err
		}
		if run == 0 {
			return []Prediction{}, 0, nil
		}
		q = q.Where("run_id = ?", run)
	}
	if !f.All {
		q = q.Where("is_anomaly")
	}
	if f.Domain != "" {
		q = q.Where("domain = ?", f.Domain)
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, fmt.Errorf("ml: count predictions: %w", err)
	}
	var rows []predictionRow
	if err := q.Order(order).Offset((page - 1) * size).Limit(size).Find(&rows).Error; err != nil {
		return nil, 0, fmt.Errorf("ml: list predictions: %w", err)
	}
	out := make([]Prediction, 0, len(rows))
	for _, r := range rows {
		out = append(out, r.prediction())
	}
	return out, total, nil
}

// Stats are a model's scoring history.
type Stats struct {
	Model          Model      `json:"model"`
	Runs           int64      `json:"runs"`
	Scored         int64      `json:"scored"`
	Anomalies      int64      `json:"anomalies"`
	LastDetectedAt *time.Time `json:"last_detected_at"`
	// Histogram counts the latest run's sources by anomaly_score in tenths: [0, 0.1), …, [0.9, 1].
	Histogram []int64 `json:"histogram"`
}

// ModelStats reads a model's scoring history (over the kept predictions).
func (s *Service) ModelStats(ctx context.Context, id int64) (Stats, error) {
	m, err := s.Get(ctx, id)
	if err != nil {
		return Stats{}, err
	}
	st := Stats{Model: m, Histogram: make([]int64, 10)}
	var agg struct {
		Runs      int64
		Scored    int64
		Anomalies *int64
		Last      *int64
	}
	if err := s.db.WithContext(ctx).Raw(`SELECT COUNT(DISTINCT run_id) AS runs, COUNT(*) AS scored,
		SUM(CASE WHEN is_anomaly THEN 1 ELSE 0 END) AS anomalies, MAX(detected_at) AS last FROM ml_predictions WHERE model_id = ?`, id).
		Scan(&agg).Error; err != nil {
		return Stats{}, fmt.Errorf("ml: model %d stats: %w", id, err)
	}
	st.Runs, st.Scored, st.LastDetectedAt = agg.Runs, agg.Scored, unixPtr(agg.Last)
	if agg.Anomalies != nil {
		st.Anomalies = *agg.Anomalies
	}
	run, err := s.latestRun(ctx, id)
	if err != nil || run == 0 {
		return st, err
	}
	// Bucketed here, not in SQL: CAST rounds on PostgreSQL and truncates on SQLite.
	var scores []float64
	if err := s.db.WithContext(ctx).Model(&predictionRow{}).Where("run_id = ? AND model_id = ?", run, id).Pluck("anomaly_score", &scores).Error; err != nil {
		return Stats{}, fmt.Errorf("ml: model %d histogram: %w", id, err)
	}
	for _, v := range scores {
		st.Histogram[min(max(int(v*10), 0), 9)]++
	}
	return st, nil
}
