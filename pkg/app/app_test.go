package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/apicontract"
	"github.com/vigilhq/vigil/pkg/app"
	"github.com/vigilhq/vigil/pkg/config"
	"github.com/vigilhq/vigil/pkg/corpus"
	"github.com/vigilhq/vigil/pkg/enrich/dnstest"
	"github.com/vigilhq/vigil/pkg/httpapi"
	"github.com/vigilhq/vigil/pkg/ingest"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// Redis databases this package uses on the real server (other packages use others).
const (
	redisDBRoles  = 2
	redisDBImport = 3
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func testConfig(t *testing.T, env map[string]string) config.Config {
	t.Helper()
	if env == nil {
		env = map[string]string{}
	}
	if env["VIGIL_DATA_DIR"] == "" {
		env["VIGIL_DATA_DIR"] = t.TempDir()
	}
	env["VIGIL_HTTP_ADDR"] = freeAddr(t)
	if env["VIGIL_DNS_RESOLVER"] == "" {
		// Enrichment follows every upload: tests never ask a real resolver (an empty zone
		// answers NXDOMAIN for everything).
		env["VIGIL_DNS_RESOLVER"] = dnstest.Start(t).Addr
	}
	// The tests poll ingests every 50 ms: far above a person's rate.
	env["VIGIL_RATE_LIMIT_API"] = "100000/1m"
	if env["VIGIL_REDIS_URL"] != "" {
		// Shared stores: a configured secret and first admin, as in production.
		env["VIGIL_JWT_SECRET"] = "app-test-secret-of-at-least-thirty-two-bytes"
		env["VIGIL_ADMIN_EMAIL"] = "root@example.com"
		env["VIGIL_ADMIN_PASSWORD"] = adminPassword
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// run starts fn in the background and stops it at the end of the test, failing on an error.
func run(t *testing.T, name string, fn func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("%s stopped with %v", name, err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("%s did not stop within 30s", name)
		}
	})
}

const adminPassword = "app test admin passphrase"

// api is a running server and the credential (Authorization header value) to call it with.
type api struct {
	base, cred string
}

// login gets an access token the way README's quick start does.
func login(t *testing.T, base, email, password string) api {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"email": email, "password": password})
	resp, err := http.Post(base+"/auth/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != http.StatusOK || tok.AccessToken == "" {
		t.Fatalf("login %s: %d %v", email, resp.StatusCode, err)
	}
	return api{base: base, cred: "Bearer " + tok.AccessToken}
}

func (c api) do(t *testing.T, method, path, ctype string, body io.Reader) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Authorization", c.cred)
	resp, err := contractClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

var contract = sync.OnceValues(func() (*apicontract.Validator, error) {
	spec, err := httpapi.Spec()
	if err != nil {
		return nil, err
	}
	return apicontract.New(spec)
})

// contractClient checks every answer against the served /openapi.json: the end-to-end tests
// only ever see responses the document allows.
func contractClient(t *testing.T) *http.Client {
	t.Helper()
	v, err := contract()
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: apicontract.Transport{V: v, Fail: func(err error) { t.Errorf("contract: %v", err) }}}
}

func waitHTTP(t *testing.T, base string) {
	t.Helper()
	// Generous: the embedded default migrates SQLite first (20 migrations), which under -race
	// on a loaded machine took over 20 s, and past 90 s once beside this package's heavier
	// end-to-end tests (7 s alone).
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(base + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
	}
	t.Fatalf("%s/health did not answer within 3 minutes", base)
}

func corpusFiles(t *testing.T, rels ...string) map[string][]byte {
	t.Helper()
	dir, _ := corpus.ForTest(t)
	out := map[string][]byte{}
	for _, r := range rels {
		b, err := os.ReadFile(filepath.Join(dir, r))
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(r)] = b
	}
	return out
}

var sample = []string{
	"mox/testdata/dmarc-reports/google.eml",
	"parsedmarc/samples/aggregate/mimecast-weird-gzip.eml",
	"dmarcgo/testdata/fixtures/aol.com!georgestarcher.com!1342497600!1342584000.zlib",
	"dmarc_report_reader/tests/fixtures/multi-report.zip",
	"go-dmarc-analyzer/testdata/unused.xml",
}

// upload posts files and waits until none is pending; it returns the ingests by file name.
func upload(t *testing.T, c api, files map[string][]byte) map[string]map[string]any {
	t.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for name, data := range files {
		fw, _ := w.CreateFormFile("files", name)
		fw.Write(data)
	}
	w.Close()
	resp := c.do(t, http.MethodPost, "/api/upload", w.FormDataContentType(), &buf)
	defer resp.Body.Close()
	var ans struct {
		Files []struct {
			Filename string `json:"filename"`
			IngestID int64  `json:"ingest_id"`
			Status   string `json:"status"`
		} `json:"files"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("upload: %d %v", resp.StatusCode, err)
	}
	out := map[string]map[string]any{}
	for _, f := range ans.Files {
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			var ing map[string]any
			getJSON(t, c, fmt.Sprintf("/api/ingests/%d", f.IngestID), &ing)
			if ing["status"] != "pending" {
				out[f.Filename] = ing
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still pending after 30s", f.Filename)
			}
		}
	}
	return out
}

func getJSON(t *testing.T, c api, path string, v any) {
	t.Helper()
	url := c.base + path
	resp := c.do(t, http.MethodGet, path, "", nil)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// checkSample checks the sample's files ended as they should and wantReports are listed.
func checkSample(t *testing.T, c api, got map[string]map[string]any, wantReports int) {
	t.Helper()
	for name, ing := range got {
		want := "processed"
		if name == "unused.xml" {
			want = "failed"
		}
		if ing["status"] != want {
			t.Errorf("%s: %v (%v), want %s", name, ing["status"], ing["error"], want)
		}
	}
	var list struct {
		Total int `json:"total"`
	}
	getJSON(t, c, "/api/reports", &list)
	if list.Total != wantReports {
		t.Fatalf("%d reports listed, want %d", list.Total, wantReports)
	}
	// The rollups follow through rollup:apply tasks (and the cache through its generations).
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var sum struct {
			TotalReports int `json:"total_reports"`
		}
		getJSON(t, c, "/api/rollup/summary", &sum)
		if sum.TotalReports == wantReports {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rollup summary counts %d reports after 20s, want %d", sum.TotalReports, wantReports)
		}
	}
}

// The newcomer's path: nothing configured, one process runs everything on SQLite and an
// in-process Redis; a file left pending by the previous run is picked up at the next start.
func TestServeEmbedded(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, nil)
	log := testenv.Logger()

	// A file stored while no worker ran (the last run stopped before its task did).
	pre, err := app.Build(context.Background(), cfg, log, app.Options{Migrate: true, NoRedis: true})
	if err != nil {
		t.Fatal(err)
	}
	leftover := corpusFiles(t, "mox/testdata/dmarc-reports/yahoo.eml")["yahoo.eml"]
	res, err := pre.Ingest.Accept(context.Background(), ingest.File{Name: "yahoo.eml", Source: "test", Data: leftover})
	pre.Close()
	if err != nil || res.Status != ingest.Accepted {
		t.Fatalf("pre-store: %+v %v", res, err)
	}

	logs := &syncBuffer{}
	run(t, "serve", func(ctx context.Context) error { return app.Serve(ctx, cfg, jsonLogger(logs)) })
	base := "http://" + cfg.HTTPAddr
	waitHTTP(t, base)
	// The first start logged a generated admin password, once: log in with it.
	c := login(t, base, config.DefaultAdminEmail, generatedPassword(t, cfg, logs))
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var ing map[string]any
		getJSON(t, c, fmt.Sprintf("/api/ingests/%d", res.IngestID), &ing)
		if ing["status"] == "processed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leftover file still %v after start-up", ing["status"])
		}
	}
	// google 1 + mimecast 1 + aol 1 + multi-report 3, and the leftover yahoo one.
	checkSample(t, c, upload(t, c, corpusFiles(t, sample...)), 7)
	resp := c.do(t, http.MethodGet, "/monitoring/", "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("asynqmon: %v", resp)
	}
	resp.Body.Close()
}

// Production shape: api, worker and scheduler as separate roles on shared stores.
func TestRolesOnSharedStores(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		cfg := testConfig(t, map[string]string{"VIGIL_DATABASE_URL": b.DatabaseURL(t), "VIGIL_REDIS_URL": b.RedisURL(t, redisDBRoles)})
		log := testenv.Logger()
		if err := app.Worker(context.Background(), cfg, log); !errors.Is(err, store.ErrStaleSchema) {
			t.Fatalf("worker on an unmigrated database: %v, want ErrStaleSchema", err)
		}
		if err := app.Migrate(context.Background(), cfg, log, io.Discard); err != nil {
			t.Fatal(err)
		}
		run(t, "api", func(ctx context.Context) error { return app.Serve(ctx, cfg, log) })
		run(t, "worker", func(ctx context.Context) error { return app.Worker(ctx, cfg, log) })
		run(t, "scheduler", func(ctx context.Context) error { return app.Scheduler(ctx, cfg, log) })
		base := "http://" + cfg.HTTPAddr
		waitHTTP(t, base)
		c := login(t, base, "root@example.com", adminPassword)
		checkSample(t, c, upload(t, c, corpusFiles(t, sample...)), 6)
	})
}

func TestWorkerAndSchedulerNeedRedis(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, nil)
	if _, err := app.Build(context.Background(), cfg, testenv.Logger(), app.Options{Migrate: true}); err == nil || !strings.Contains(err.Error(), "VIGIL_REDIS_URL") {
		t.Fatalf("worker without VIGIL_REDIS_URL: %v, want an error naming it", err)
	}
	if err := app.Scheduler(context.Background(), cfg, testenv.Logger()); err == nil || !strings.Contains(err.Error(), "VIGIL_REDIS_URL") {
		t.Fatalf("scheduler without VIGIL_REDIS_URL: %v, want an error naming it", err)
	}
}

// `api import` in both modes: inline on the embedded default, through the queue with Redis.
func TestImport(t *testing.T) {
	t.Parallel()
	dir, _ := corpus.ForTest(t)
	folder := filepath.Join(dir, "dmarc-report-aggregator") // 7 real e-mails, one report each
	t.Run("inline", func(t *testing.T) {
		t.Parallel()
		cfg := testConfig(t, nil)
		var progress, out bytes.Buffer
		sum, err := app.Import(context.Background(), cfg, testenv.Logger(), []string{folder}, &progress, &out)
		if err != nil {
			t.Fatal(err)
		}
		if sum.Files != 7 || sum.Processed+sum.Duplicate != 7 || len(sum.Failed) != 0 {
			t.Fatalf("summary %+v\n%s", sum, out.String())
		}
		if !strings.Contains(out.String(), "7 files:") {
			t.Fatalf("summary text %q", out.String())
		}
		// When the command returns, what it imported is in the rollups (no lag to wait out).
		st, err := store.Open(context.Background(), app.DatabaseURL(cfg), testenv.Logger())
		if err != nil {
			t.Fatal(err)
		}
		var reports, applied int64
		st.DB().Raw("SELECT COUNT(*) FROM reports").Scan(&reports)
		st.DB().Raw("SELECT COUNT(*) FROM rollup_applied").Scan(&applied)
		st.Close()
		if reports == 0 || applied != reports {
			t.Fatalf("after the import %d of %d reports are rolled up", applied, reports)
		}
		// Again: every file is a duplicate now.
		sum, err = app.Import(context.Background(), cfg, testenv.Logger(), []string{folder}, nil, io.Discard)
		if err != nil || sum.Duplicate != 7 {
			t.Fatalf("second import %+v %v, want 7 duplicates", sum, err)
		}
	})
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		cfg := testConfig(t, map[string]string{"VIGIL_DATABASE_URL": b.DatabaseURL(t), "VIGIL_REDIS_URL": b.RedisURL(t, redisDBImport)})
		log := testenv.Logger()
		if err := app.Migrate(context.Background(), cfg, log, io.Discard); err != nil {
			t.Fatal(err)
		}
		run(t, "worker", func(ctx context.Context) error { return app.Worker(ctx, cfg, log) })
		sum, err := app.Import(context.Background(), cfg, log, []string{folder, filepath.Join(dir, "parsedmarc/samples/empty.xml")}, nil, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if sum.Files != 8 || sum.Processed+sum.Duplicate != 7 || len(sum.Failed) != 1 || !strings.Contains(sum.Failed[0].Reason, "empty") {
			t.Fatalf("queued import summary %+v", sum)
		}
	})
}
