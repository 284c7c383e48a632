package config

import "time"

// ML configures the anomaly, forecast and advice jobs (pkg/ml): Isolation Forest training and
// the scheduled training and scoring.
type ML struct {
	Contamination  float64       // VIGIL_ML_CONTAMINATION: expected share of anomalous sources (0.001–0.5)
	Trees          int           // VIGIL_ML_TREES: isolation trees per model (100–1000)
	TrainDays      int           // VIGIL_ML_TRAIN_DAYS: the scheduled training's window (30–365)
	DetectDays     int           // VIGIL_ML_DETECT_DAYS: the scheduled scoring's window (1–365)
	TrainInterval  time.Duration // VIGIL_ML_TRAIN_INTERVAL: how often the scheduler trains a new model
	DetectInterval time.Duration // VIGIL_ML_DETECT_INTERVAL: how often the deployed model scores the sources
}

func loadML(e *env) ML {
	c := ML{
		Contamination:  e.float("VIGIL_ML_CONTAMINATION", 0.05, 0.001),
		Trees:          e.integer("VIGIL_ML_TREES", 100, 100, 1000),
		TrainDays:      e.integer("VIGIL_ML_TRAIN_DAYS", 90, 30, 365),
		DetectDays:     e.integer("VIGIL_ML_DETECT_DAYS", 7, 1, 365),
		TrainInterval:  e.duration("VIGIL_ML_TRAIN_INTERVAL", 7*24*time.Hour),
		DetectInterval: e.duration("VIGIL_ML_DETECT_INTERVAL", 24*time.Hour),
	}
	if c.Contamination > 0.5 {
		e.fail("VIGIL_ML_CONTAMINATION", e.str("VIGIL_ML_CONTAMINATION", ""), "want a fraction between 0.001 and 0.5, such as 0.05")
	}
	return c
}
