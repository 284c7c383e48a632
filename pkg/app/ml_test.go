package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/app"
	"github.com/vigilhq/vigil/pkg/ml"
	"github.com/vigilhq/vigil/pkg/ml/mltest"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// redisDBML is this file's Redis database on the real server (block 56–59).
const redisDBML = 56

// waitMLTask follows a task to completion: training under -race on a loaded machine can take
// longer than waitTask's 30 s.
func waitMLTask(t *testing.T, c api, id string) taskStatus {
	t.Helper()
	var st taskStatus
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		resp := c.do(t, http.MethodGet, "/tasks/status/"+id, "", nil)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			continue
		}
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatal(err)
		}
		switch st.State {
		case "completed":
			return st
		case "archived":
			t.Fatalf("task %s failed: %s", id, b)
		}
	}
	t.Fatalf("task %s not completed within 3 minutes (state %q)", id, st.State)
	return st
}

// TestMLThroughAPI is what an admin does on a synthetic year with planted spoofing sources:
// train through the API (the first model deploys itself), score, and find the spoofers in the
// top 5% of GET /analytics/anomalies/recent; then read the model, its stats, a forecast and the
// policy advice, and see the refusals. On the embedded default and on PostgreSQL + Redis with
// separate api and worker processes. Every answer is checked against /openapi.json.
func TestMLThroughAPI(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		log := testenv.Logger()
		env := map[string]string{}
		if b.Real() {
			env["VIGIL_DATABASE_URL"], env["VIGIL_REDIS_URL"] = b.DatabaseURL(t), b.RedisURL(t, redisDBML)
		} else {
			env["VIGIL_ADMIN_PASSWORD"] = adminPassword
		}
		cfg := testConfig(t, env)
		ctx := context.Background()
		// The data goes in first, through the store and rollups as ingestion writes them.
		st, err := store.Open(ctx, app.DatabaseURL(cfg), log)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		today := time.Now().UTC().Truncate(24 * time.Hour)
		domains := mltest.Year(t, st, today, log)
		st.Close()
		if b.Real() {
			run(t, "api", func(ctx context.Context) error { return app.Serve(ctx, cfg, log) })
			run(t, "worker", func(ctx context.Context) error { return app.Worker(ctx, cfg, log) })
		} else {
			run(t, "serve", func(ctx context.Context) error { return app.Serve(ctx, cfg, log) })
		}
		base := "http://" + cfg.HTTPAddr
		waitHTTP(t, base)
		c := login(t, base, cfg.Auth.AdminEmail, adminPassword)

		// Refusals first: bad days, unknown fields, no model yet to deploy.
		sendJSON(t, c, http.MethodPost, "/analytics/ml/train", map[string]any{"days": 10}, http.StatusUnprocessableEntity, nil)
		sendJSON(t, c, http.MethodPost, "/analytics/ml/train", map[string]any{"dayz": 90}, http.StatusBadRequest, nil)
		sendJSON(t, c, http.MethodPost, "/analytics/anomalies/detect", map[string]any{"days": 0}, http.StatusUnprocessableEntity, nil)
		sendJSON(t, c, http.MethodPost, "/analytics/ml/deploy", map[string]any{"model_id": 99}, http.StatusNotFound, nil)
		sendJSON(t, c, http.MethodGet, "/analytics/ml/models/99", nil, http.StatusNotFound, nil)
		sendJSON(t, c, http.MethodGet, "/analytics/forecast", nil, http.StatusBadRequest, nil)
		sendJSON(t, c, http.MethodGet, "/analytics/forecast?domain=nope.example", nil, http.StatusNotFound, nil)
		sendJSON(t, c, http.MethodGet, "/analytics/policy-advice?domain="+domains[0]+"&days=3", nil, http.StatusBadRequest, nil)
		sendJSON(t, c, http.MethodGet, "/analytics/anomalies/recent?ip=not-an-ip", nil, http.StatusBadRequest, nil)
		sendJSON(t, c, http.MethodGet, "/analytics/anomalies/recent?bogus=1", nil, http.StatusBadRequest, nil)

		var acc struct {
			TaskID string `json:"task_id"`
		}
		sendJSON(t, c, http.MethodPost, "/analytics/ml/train", map[string]any{"days": 90}, http.StatusAccepted, &acc)
		var tr ml.TrainResult
		if err := json.Unmarshal(waitMLTask(t, c, acc.TaskID).Result, &tr); err != nil {
			t.Fatal(err)
		}
		if tr.Status != ml.StatusReady || !tr.Deployed || tr.Samples < 50 {
			t.Fatalf("training result %+v", tr)
		}
		var models struct {
			Items []ml.Model `json:"items"`
			Total int64      `json:"total"`
		}
		getJSON(t, c, "/analytics/ml/models", &models)
		if models.Total != 1 || !models.Items[0].Deployed || models.Items[0].Status != "ready" || models.Items[0].TrainedBy != cfg.Auth.AdminEmail {
			t.Fatalf("models %+v", models)
		}
		// Deploying the deployed model again is harmless.
		sendJSON(t, c, http.MethodPost, "/analytics/ml/deploy", map[string]any{"model_id": tr.ModelID}, http.StatusOK, nil)

		sendJSON(t, c, http.MethodPost, "/analytics/anomalies/detect", map[string]any{"days": 30}, http.StatusAccepted, &acc)
		var dr ml.DetectResult
		if err := json.Unmarshal(waitMLTask(t, c, acc.TaskID).Result, &dr); err != nil {
			t.Fatal(err)
		}
		if dr.Scored < 80 || dr.Anomalies == 0 {
			t.Fatalf("detection result %+v", dr)
		}
		var recent struct {
			Items []ml.Prediction `json:"items"`
			Total int64           `json:"total"`
		}
		getJSON(t, c, "/analytics/anomalies/recent?all=true&page_size=500", &recent)
		top := max(1, dr.Scored*5/100)
		rank := map[string]int{}
		for i, p := range recent.Items {
			rank[p.IP] = i
		}
		for _, ip := range mltest.Spoofers {
			if r, ok := rank[ip.String()]; !ok || r >= top {
				t.Errorf("planted spoofer %s ranks %d of %d; top 5%% is %d", ip, r+1, dr.Scored, top)
			}
		}
		getJSON(t, c, "/analytics/anomalies/recent", &recent)
		if int(recent.Total) != dr.Anomalies {
			t.Errorf("recent anomalies %d, the run found %d", recent.Total, dr.Anomalies)
		}
		var stats ml.Stats
		getJSON(t, c, fmt.Sprintf("/analytics/ml/models/%d/stats", tr.ModelID), &stats)
		if stats.Runs != 1 || stats.Scored != int64(dr.Scored) {
			t.Errorf("stats %+v", stats)
		}
		var f ml.Forecast
		getJSON(t, c, "/analytics/forecast?domain="+strings.ToUpper(domains[0])+"&horizon=7", &f)
		if f.Domain != domains[0] || len(f.FailureRate.Points) != 7 || f.Volume.Method != "holt_winters_additive" {
			t.Errorf("forecast %s %d %s", f.Domain, len(f.FailureRate.Points), f.Volume.Method)
		}
		var adv ml.Advice
		getJSON(t, c, "/analytics/policy-advice?domain="+mltest.Parked, &adv)
		if adv.Current.Policy != "reject" || adv.LegitMessages != 0 || adv.Unauthenticated == 0 {
			t.Errorf("parked advice %+v", adv.Advice)
		}
	})
}
