package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/vigilhq/vigil/pkg/app"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// redisDBMetrics is this test's Redis database on the real server (issue 14's block: 60–63).
const redisDBMetrics = 60

// scrape reads one /metrics answer into series keyed `name{label="value",...}` (labels sorted;
// a histogram's count under name_count), and the family names.
func scrape(t *testing.T, url, cred string) (map[string]float64, map[string]bool) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if cred != "" {
		req.Header.Set("Authorization", cred)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("%s: not the Prometheus text format: %v", url, err)
	}
	series, names := map[string]float64{}, map[string]bool{}
	for name, f := range fams {
		names[name] = true
		for _, m := range f.GetMetric() {
			key := name + labels(m)
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				series[key] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				series[key] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				series[name+"_count"+labels(m)] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return series, names
}

func labels(m *dto.Metric) string {
	var ls []string
	for _, l := range m.GetLabel() {
		ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
	}
	sort.Strings(ls)
	return "{" + strings.Join(ls, ",") + "}"
}

// sum adds the series of several processes (api and worker run apart on shared stores).
func sum(ms ...map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for _, m := range ms {
		for k, v := range m {
			out[k] += v
		}
	}
	return out
}

// After an upload, the counters moved by what the upload did, as the API tells it; /metrics
// needs admin credentials on the API and none on VIGIL_METRICS_ADDR; the Grafana dashboard
// queries only metrics that a scrape has.
func TestMetricsAfterUpload(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		apiMetrics := freeAddr(t)
		env := map[string]string{"VIGIL_METRICS_ADDR": apiMetrics}
		var workerMetrics string
		if b.Real() {
			env["VIGIL_DATABASE_URL"] = b.DatabaseURL(t)
			env["VIGIL_REDIS_URL"] = b.RedisURL(t, redisDBMetrics)
		}
		cfg := testConfig(t, env)
		log := testenv.Logger()
		if b.Real() {
			if err := app.Migrate(context.Background(), cfg, log, io.Discard); err != nil {
				t.Fatal(err)
			}
		}
		cfg.Auth.AdminEmail, cfg.Auth.AdminPassword = "root@example.com", adminPassword
		run(t, "api", func(ctx context.Context) error { return app.Serve(ctx, cfg, log) })
		if b.Real() {
			wcfg := cfg
			workerMetrics = freeAddr(t)
			wcfg.MetricsAddr = workerMetrics
			run(t, "worker", func(ctx context.Context) error { return app.Worker(ctx, wcfg, log) })
		}
		base := "http://" + cfg.HTTPAddr
		waitHTTP(t, base)
		c := login(t, base, "root@example.com", adminPassword)

		resp, err := http.Get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET /metrics without credentials: %d, want 401", resp.StatusCode)
		}
		all := func() (map[string]float64, map[string]bool) {
			s, names := scrape(t, "http://"+apiMetrics+"/metrics", "")
			if workerMetrics != "" {
				w, wn := scrape(t, "http://"+workerMetrics+"/metrics", "")
				s = sum(s, w)
				for n := range wn {
					names[n] = true
				}
			}
			return s, names
		}
		before, _ := all()
		files := corpusFiles(t, sample...)
		var bytes int
		for _, f := range files {
			bytes += len(f)
		}
		got := upload(t, c, files)
		// What the API says the upload did.
		outcomes := map[string]float64{}
		for _, ing := range got {
			outcomes[ing["status"].(string)]++
		}
		var list struct {
			Items []struct {
				RecordCount float64 `json:"record_count"`
			} `json:"items"`
		}
		getJSON(t, c, "/api/reports?page_size=100", &list)
		// The database was empty: every report listed came with this upload.
		reports, records := float64(len(list.Items)), 0.0
		for _, r := range list.Items {
			records += r.RecordCount
		}
		if reports == 0 || records == 0 {
			t.Fatalf("fixture: the upload stored %v reports with %v records", reports, records)
		}

		// A file's outcome is committed a moment before its task ends and is counted. The upload
		// is stored in batches with one parse task each (ingest.BatchLen): between one task and
		// one per file, by the files' sizes and order.
		parse := `vigil_tasks_processed_total{queue="ingest",type="report:parse"}`
		finished := func(m map[string]float64) float64 {
			n := 0.0
			for _, o := range []string{"processed", "duplicate", "failed"} {
				k := fmt.Sprintf(`vigil_ingest_files_processed_total{outcome=%q}`, o)
				n += m[k] - before[k]
			}
			return n
		}
		after, names := all()
		for deadline := time.Now().Add(20 * time.Second); (finished(after) < float64(len(files)) || after[parse] == before[parse]) && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
			after, names = all()
		}
		if d := after[parse] - before[parse]; d < 1 || d > float64(len(files)) {
			t.Errorf("%s moved by %v, want 1 to %d (one per batch)", parse, d, len(files))
		}
		// Through the API with an admin's credentials too (the same registry as the api's).
		if _, n := scrape(t, base+"/metrics", c.cred); !n["vigil_http_requests_total"] {
			t.Error("/metrics on the API (admin) lacks vigil_http_requests_total")
		}
		want := map[string]float64{
			`vigil_ingest_files_received_total{outcome="accepted",source="upload"}`:     float64(len(files)),
			`vigil_ingest_received_bytes_total{}`:                                       float64(bytes),
			`vigil_ingest_reports_total{}`:                                              reports,
			`vigil_ingest_records_total{}`:                                              records,
			`vigil_http_requests_total{method="POST",route="/api/upload",status="202"}`: 1,
		}
		for _, o := range []string{"processed", "duplicate", "failed"} {
			want[fmt.Sprintf(`vigil_ingest_files_processed_total{outcome=%q}`, o)] = outcomes[o]
		}
		for k, v := range want {
			if d := after[k] - before[k]; d != v {
				t.Errorf("%s moved by %v, want %v", k, d, v)
			}
		}
		for _, name := range []string{"vigil_http_request_duration_seconds", "vigil_task_duration_seconds", "vigil_db_connections_open",
			"vigil_asynq_queue_size", "vigil_rollup_lag_seconds", "vigil_cache_hits_total", "vigil_imap_polls_total"} {
			if !names[name] {
				t.Errorf("no %s in the scrape", name)
			}
		}
		checkDashboard(t, names)
	})
}

// checkDashboard fails for a metric the Grafana dashboard queries that the scrape lacks.
func checkDashboard(t *testing.T, names map[string]bool) {
	t.Helper()
	b, err := os.ReadFile("../../deployments/grafana/vigil-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	metric := regexp.MustCompile(`\bvigil_[a-z0-9_]+`)
	var queried []string
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			for _, m := range metric.FindAllString(tg.Expr, -1) {
				queried = append(queried, m)
				base := strings.TrimSuffix(m, "_bucket")
				if !names[m] && !names[base] {
					t.Errorf("panel %q queries %s, which no scrape has", p.Title, m)
				}
			}
		}
	}
	if len(queried) < 10 {
		t.Errorf("the dashboard queries only %d metrics: %v", len(queried), slices.Compact(queried))
	}
}
