package ml_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/ml"
	"github.com/vigilhq/vigil/pkg/ml/mltest"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// today is the test's clock: noon UTC of the real today, so the synthetic year ends now.
func today() time.Time { return time.Now().UTC().Truncate(24 * time.Hour) }

func clock() func() time.Time { t := today().Add(12 * time.Hour); return func() time.Time { return t } }

// TestSyntheticYear trains, deploys and scores on a synthetic year with planted spoofing
// sources: the spoofers rank in the top 5% of the scored sources; the model lifecycle (first
// model deployed by itself, the second by hand, a failed one refused) and the forecast and
// advice answers on the same data.
func TestSyntheticYear(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, be testenv.Backend) {
		st := be.Store(t)
		domains := mltest.Year(t, st, today(), testenv.Logger())
		s := ml.New(ml.Deps{Store: st, Log: testenv.Logger(), Now: clock()})
		ctx := context.Background()

		if _, err := s.Detect(ctx, 30); !errors.Is(err, ml.ErrNoModel) {
			t.Fatalf("detect without a model: %v, want ErrNoModel", err)
		}
		tr, err := s.Train(ctx, 90, "test")
		if err != nil {
			t.Fatal(err)
		}
		if tr.Status != ml.StatusReady || !tr.Deployed || tr.Samples < 100 || tr.Version != 1 {
			t.Fatalf("first training: %+v", tr)
		}
		dr, err := s.Detect(ctx, 30)
		if err != nil {
			t.Fatal(err)
		}
		if dr.Scored < 50 || dr.Anomalies == 0 || dr.ModelID != tr.ModelID {
			t.Fatalf("detection: %+v", dr)
		}
		all, total, err := s.Recent(ctx, ml.Filter{All: true}, 1, 500)
		if err != nil {
			t.Fatal(err)
		}
		if int(total) != dr.Scored || len(all) != min(dr.Scored, 500) {
			t.Fatalf("recent: %d of %d, scored %d", len(all), total, dr.Scored)
		}
		rank := map[string]int{}
		for i, p := range all {
			rank[p.IP] = i
			if p.AnomalyScore < 0 || p.AnomalyScore > 1 || p.Features["failure_rate"] == nil {
				t.Fatalf("prediction %+v", p)
			}
			if i > 0 && p.Score < all[i-1].Score {
				t.Fatal("recent is not ordered most anomalous first")
			}
		}
		top := max(1, dr.Scored*5/100)
		for _, ip := range mltest.Spoofers {
			r, ok := rank[ip.String()]
			if !ok || r >= top {
				t.Errorf("planted spoofer %s ranks %d of %d (top 5%% is %d)", ip, r+1, dr.Scored, top)
			}
		}
		anomalies, _, err := s.Recent(ctx, ml.Filter{}, 1, 500)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range anomalies {
			if !p.IsAnomaly || p.Score >= 0 {
				t.Errorf("default filter returned %+v", p)
			}
		}

		// The second model waits for an admin; deploying it moves the flag.
		tr2, err := s.Train(ctx, 60, "admin@example.com")
		if err != nil || tr2.Deployed || tr2.Version != 2 || tr2.Status != ml.StatusReady {
			t.Fatalf("second training: %+v %v", tr2, err)
		}
		if _, err := s.Deploy(ctx, tr2.ModelID, "admin@example.com"); err != nil {
			t.Fatal(err)
		}
		models, n, err := s.Models(ctx, 1, 10)
		if err != nil || n != 2 {
			t.Fatalf("models: %d %v", n, err)
		}
		for _, m := range models {
			if m.Deployed != (m.ID == tr2.ModelID) || len(m.FeatureStats) != len(ml.FeatureNames) || m.Params.Trees < 100 || m.Params.Subsample != min(256, m.Samples) {
				t.Errorf("model %+v", m)
			}
		}
		st2, err := s.ModelStats(ctx, tr.ModelID)
		if err != nil || st2.Runs != 1 || st2.Scored != int64(dr.Scored) || st2.Anomalies != int64(dr.Anomalies) {
			t.Fatalf("stats %+v %v", st2, err)
		}
		var h int64
		for _, v := range st2.Histogram {
			h += v
		}
		if h != int64(dr.Scored) {
			t.Errorf("histogram counts %d of %d", h, dr.Scored)
		}
		// A later run with the new model: the first run keeps its anomalies only.
		later := ml.New(ml.Deps{Store: st, Log: testenv.Logger(), Now: func() time.Time { return clock()().Add(time.Hour) }})
		dr2, err := later.Detect(ctx, 30)
		if err != nil || dr2.ModelID != tr2.ModelID {
			t.Fatalf("second run: %+v %v", dr2, err)
		}
		if st3, err := s.ModelStats(ctx, tr.ModelID); err != nil || st3.Scored != int64(dr.Anomalies) || st3.Anomalies != int64(dr.Anomalies) {
			t.Errorf("first model after a second run: %+v %v; want only its %d anomalies kept", st3, err, dr.Anomalies)
		}
		if _, err := s.Get(ctx, 999); !errors.Is(err, ml.ErrNotFound) {
			t.Errorf("model 999: %v", err)
		}

		// Forecasts: a year of data is enough for Holt-Winters.
		f, err := s.Forecast(ctx, domains[0], 91, 14)
		if err != nil {
			t.Fatal(err)
		}
		if f.FailureRate.Method != "holt_winters_additive" || len(f.FailureRate.Points) != 14 || len(f.Volume.Points) != 14 {
			t.Fatalf("forecast %+v", f.FailureRate)
		}
		for _, p := range f.FailureRate.Points {
			if p.Value < 0 || p.Value > 1 || p.Lower > p.Value || p.Upper < p.Value {
				t.Errorf("failure-rate point %+v", p)
			}
		}
		if _, err := s.Forecast(ctx, "nope.example", 91, 14); !errors.Is(err, ml.ErrNotFound) {
			t.Errorf("unknown domain: %v", err)
		}
		// The parked domain's only mail is the spoofers' two weekend days: simple smoothing.
		pf, err := s.Forecast(ctx, mltest.Parked, 91, 14)
		if err != nil || pf.Volume.Method == "holt_winters_additive" {
			t.Errorf("parked forecast %+v %v", pf.Volume.Method, err)
		}

		// Advice: the parked domain sees spoofing only.
		a, err := s.Advise(ctx, mltest.Parked, 30)
		if err != nil {
			t.Fatal(err)
		}
		if a.LegitMessages != 0 || a.Unauthenticated == 0 || a.Current.Policy != "reject" || a.Stage != "at_target" {
			t.Errorf("parked advice %+v", a.Advice)
		}
		for _, d := range domains {
			a, err := s.Advise(ctx, d, 30)
			if err != nil {
				t.Fatal(err)
			}
			if a.Record == "" || len(a.Reasons) == 0 || a.Domain != d {
				t.Errorf("advice %+v", a.Advice)
			}
		}
	})
}

// TestTrainTooFew: an empty window makes a failed model (its reason kept), never deployed.
func TestTrainTooFew(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, be testenv.Backend) {
		st := be.Store(t)
		s := ml.New(ml.Deps{Store: st, Log: testenv.Logger(), Now: clock()})
		ctx := context.Background()
		tr, err := s.Train(ctx, 30, "test")
		if err != nil {
			t.Fatal(err)
		}
		if tr.Status != ml.StatusFailed || tr.Error == nil || tr.Deployed {
			t.Fatalf("%+v", tr)
		}
		m, err := s.Get(ctx, tr.ModelID)
		if err != nil || m.Status != ml.StatusFailed || m.Error == nil {
			t.Fatalf("%+v %v", m, err)
		}
		if _, err := s.Deploy(ctx, m.ID, "x"); !errors.Is(err, ml.ErrConflict) {
			t.Errorf("deploying a failed model: %v", err)
		}
		for _, days := range []int{0, 29, 366} {
			if _, err := s.Train(ctx, days, "test"); !errors.Is(err, ml.ErrInvalid) {
				t.Errorf("train %d days: %v", days, err)
			}
		}
		if items, total, err := s.Recent(ctx, ml.Filter{}, 1, 50); err != nil || total != 0 || len(items) != 0 {
			t.Errorf("recent without runs: %v %d %v", items, total, err)
		}
	})
}

// TestTrainingDeterministic: the same data trained in two databases gives the same model
// (the forest byte for byte, the threshold) and the same scores for every source: the
// features are read in a stable order and the forest is seeded by the model version.
func TestTrainingDeterministic(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, be testenv.Backend) {
		ctx := context.Background()
		type outcome struct {
			forest    string
			threshold float64
			scores    map[string]float64
		}
		run := func() outcome {
			st := be.Store(t)
			mltest.Year(t, st, today(), testenv.Logger())
			s := ml.New(ml.Deps{Store: st, Log: testenv.Logger(), Now: clock()})
			tr, err := s.Train(ctx, 90, "test")
			if err != nil || tr.Status != ml.StatusReady {
				t.Fatalf("train: %+v %v", tr, err)
			}
			var o outcome
			if err := st.DB().Raw(`SELECT forest FROM ml_models WHERE id = ?`, tr.ModelID).Scan(&o.forest).Error; err != nil || o.forest == "" {
				t.Fatalf("stored forest: %q %v", o.forest, err)
			}
			o.threshold = tr.Threshold
			if _, err := s.Detect(ctx, 30); err != nil {
				t.Fatal(err)
			}
			all, _, err := s.Recent(ctx, ml.Filter{All: true}, 1, 500)
			if err != nil {
				t.Fatal(err)
			}
			o.scores = map[string]float64{}
			for _, p := range all {
				o.scores[p.IP] = p.AnomalyScore
			}
			return o
		}
		a, b := run(), run()
		if a.forest != b.forest || a.threshold != b.threshold {
			t.Errorf("two trainings on the same data differ (thresholds %v and %v, forests of %d and %d bytes)", a.threshold, b.threshold, len(a.forest), len(b.forest))
		}
		if len(a.scores) == 0 || len(a.scores) != len(b.scores) {
			t.Fatalf("%d and %d sources scored", len(a.scores), len(b.scores))
		}
		for ip, s := range a.scores {
			if b.scores[ip] != s {
				t.Errorf("source %s: scores %v and %v", ip, s, b.scores[ip])
			}
		}
	})
}
