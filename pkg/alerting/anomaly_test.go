package alerting

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/vigilhq/vigil/pkg/rollup"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// TestAnomalyRule: the anomaly rule raises one finding per source the latest ML scoring run
// called anomalous at or above min_score, for the domain in scope; older runs and normal
// sources raise nothing. The predictions are written as pkg/ml writes them.
func TestAnomalyRule(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, be testenv.Backend) {
		st := be.Store(t)
		seed(t, st)
		s := newService(st, fixed(now))
		ctx := context.Background()
		db := st.DB().WithContext(ctx)
		if err := db.Exec(`INSERT INTO ml_models (id, version, status, deployed, window_days, window_start, window_end, trained_by, started_at)
			VALUES (1, 1, 'ready', ?, 90, 1, 90, 'test', 1)`, true).Error; err != nil {
			t.Fatal(err)
		}
		preds := []struct {
			run     int64
			ip, dom string
			s       float64
			anomaly bool
		}{
			{1000, "203.0.113.1", "fail.example", 0.9, true}, // an older run: ignored
			{2000, "198.51.100.9", "fail.example", 0.72, true},
			{2000, "198.51.100.10", "fail.example", 0.55, true},
			{2000, "198.51.100.11", "fail.example", 0.45, false},
			{2000, "192.0.2.50", "ok.example", 0.8, true},
		}
		for _, p := range preds {
			if err := db.Exec(`INSERT INTO ml_predictions (run_id, model_id, detected_at, ip, domain, score, anomaly_score, is_anomaly, features)
				VALUES (?, 1, ?, ?, ?, ?, ?, ?, '{"failure_rate":1}')`, p.run, p.run/1000, p.ip, p.dom, 0.5-p.s, p.s, p.anomaly).Error; err != nil {
				t.Fatal(err)
			}
		}
		cases := []struct {
			domain, params string
			want           []string
		}{
			{"fail.example", `{}`, []string{"198.51.100.9"}},
			{"fail.example", `{"min_score":0.5}`, []string{"198.51.100.10", "198.51.100.9"}},
			{"fail.example", `{"min_score":0.4}`, []string{"198.51.100.10", "198.51.100.9"}}, // 0.45 is not anomalous
			{"fail.example", `{"min_score":0.95}`, nil},
			{"ok.example", `{}`, []string{"192.0.2.50"}},
			{"nothing.example", `{}`, nil},
		}
		all, err := s.domainNames(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i, tc := range cases {
			r, err := s.CreateRule(ctx, RuleInput{Name: ptr(fmt.Sprintf("anomaly %d", i)), Type: ptr(TypeAnomaly), Domain: ptr(tc.domain), Params: json.RawMessage(tc.params)})
			if err != nil {
				t.Fatal(err)
			}
			sc := scope{names: map[int32]string{}}
			for id, n := range all {
				if n == tc.domain {
					sc.names[id] = n
				}
			}
			fs, err := s.evaluate(ctx, r, sc, rollup.DayOf(now))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range fs {
				got = append(got, f.key)
				if f.domain != tc.domain || f.title == "" || f.data["model_id"] != int64(1) {
					t.Errorf("finding %+v", f)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("%s %s: findings %q, want %q", tc.domain, tc.params, got, tc.want)
			}
		}
	})
}
