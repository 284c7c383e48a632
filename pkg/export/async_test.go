package export_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/vigilhq/vigil/pkg/auth"
	"github.com/vigilhq/vigil/pkg/httpapi"
	"github.com/vigilhq/vigil/pkg/testenv"
	"github.com/vigilhq/vigil/tasks"
)

// TestLargeExportAsync: over the row limit an export answers 202 with a task id; a real
// worker renders it; the requesting viewer follows the task (its result carries download_url)
// and downloads the file; another viewer gets 404 for both; an admin may download; a second
// run of the task answers the same file; after the retention the file is deleted.
func TestLargeExportAsync(t *testing.T) {
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		st := b.Store(t)
		world(t, st, 20)
		opt := b.Redis(t, redisQueueDB)
		client := asynq.NewClient(opt)
		defer client.Close()
		insp := asynq.NewInspector(opt)
		defer insp.Close()
		dir := t.TempDir()
		clock := testNow
		now := func() time.Time { return clock }
		f := newFixture(t, b, st, options{rowLimit: 10, queue: client, tasks: insp, dir: dir, now: now})
		viewer := f.creds[auth.Viewer]

		q := url.Values{"domain": {"hostile.example"}, "dkim_result": {"fail"}}
		small := f.get(t, viewer, "/api/export/records/csv", q)
		if small.Code != http.StatusOK {
			t.Fatalf("an export under the limit: %d", small.Code)
		}
		rec := f.get(t, viewer, "/api/export/records/csv", url.Values{"domain": {"acme0.example"}})
		if rec.Code != http.StatusAccepted {
			t.Fatalf("an export over the limit: %d %s", rec.Code, rec.Body.String())
		}
		var acc struct {
			TaskID   string `json:"task_id"`
			ExportID string `json:"export_id"`
			Rows     int64  `json:"rows"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &acc); err != nil || acc.TaskID == "" || acc.Rows <= 10 {
			t.Fatalf("202 body %s (%v)", rec.Body.String(), err)
		}

		srv := asynq.NewServer(opt, asynq.Config{Concurrency: 1, Queues: tasks.Queues(), LogLevel: asynq.FatalLevel})
		mux := asynq.NewServeMux()
		mux.HandleFunc(tasks.TypeExportRender, f.exp.HandleRender)
		if err := srv.Start(mux); err != nil {
			t.Fatal(err)
		}
		defer srv.Shutdown()

		statusPath := "/tasks/status/" + url.PathEscape(acc.TaskID)
		var st1 struct {
			State  string `json:"state"`
			Result *struct {
				DownloadURL string `json:"download_url"`
				Rows        int64  `json:"rows"`
				Filename    string `json:"filename"`
			} `json:"result"`
		}
		deadline := time.Now().Add(60 * time.Second)
		for {
			f.getJSON(t, viewer, statusPath, nil, &st1)
			if st1.State == "completed" || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if st1.Result == nil || st1.Result.DownloadURL == "" || st1.Result.Rows != acc.Rows {
			t.Fatalf("task %s: state %s result %+v", acc.TaskID, st1.State, st1.Result)
		}
		if r := f.get(t, f.other, statusPath, nil); r.Code != http.StatusNotFound {
			t.Errorf("another viewer follows the task: %d", r.Code)
		}
		if r := f.get(t, f.creds[auth.Admin], statusPath, nil); r.Code != http.StatusOK {
			t.Errorf("an admin cannot follow the task: %d", r.Code)
		}

		dl := f.get(t, viewer, st1.Result.DownloadURL, nil)
		if dl.Code != http.StatusOK || !strings.Contains(dl.Header().Get("Content-Disposition"), st1.Result.Filename) {
			t.Fatalf("download: %d %v", dl.Code, dl.Header())
		}
		rows, err := csv.NewReader(strings.NewReader(dl.Body.String())).ReadAll()
		if err != nil || int64(len(rows)-1) != acc.Rows {
			t.Fatalf("downloaded %d rows (%v), want %d", len(rows)-1, err, acc.Rows)
		}
		if r := f.get(t, f.other, st1.Result.DownloadURL, nil); r.Code != http.StatusNotFound {
			t.Errorf("another viewer downloads it: %d", r.Code)
		}
		if r := f.get(t, f.creds[auth.Admin], st1.Result.DownloadURL, nil); r.Code != http.StatusOK {
			t.Errorf("an admin cannot download it: %d", r.Code)
		}
		if r := f.get(t, "", st1.Result.DownloadURL, nil); r.Code != http.StatusUnauthorized {
			t.Errorf("anonymous download: %d", r.Code)
		}

		// A redelivered task answers the same file, rendering nothing again.
		files, _ := filepath.Glob(filepath.Join(dir, "*"))
		info, _ := os.Stat(files[0])
		payload, _ := json.Marshal(tasks.ExportRenderPayload{ExportID: acc.ExportID, UserID: 0})
		if err := f.exp.HandleRender(context.Background(), asynq.NewTask(tasks.TypeExportRender, payload)); err != nil {
			t.Fatalf("second run: %v", err)
		}
		again, _ := os.Stat(files[0])
		if len(files) != 1 || !again.ModTime().Equal(info.ModTime()) {
			t.Errorf("second run rewrote the file or left another: %v", files)
		}

		// Past the retention: cleaned up, gone for everyone.
		clock = clock.Add(25 * time.Hour)
		if r := f.get(t, viewer, st1.Result.DownloadURL, nil); r.Code != http.StatusNotFound {
			t.Errorf("expired download: %d", r.Code)
		}
		if n, err := f.exp.Cleanup(context.Background()); err != nil || n != 1 {
			t.Fatalf("cleanup removed %d (%v)", n, err)
		}
		if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) != 0 {
			t.Errorf("files left after the retention: %v", left)
		}
	})
}

// TestAccess: a viewer (and a read-only API key's holder) can export every format;
// nobody unauthenticated can; bad filters are a 400 naming the parameter; the export rate
// limits apply per user (CSV and XLSX share one budget, PDF has its own).
func TestAccess(t *testing.T) {
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		st := b.Store(t)
		save(t, st, hostile())
		f := newFixture(t, b, st, options{})
		paths := []string{"/api/export/reports/csv", "/api/export/records/csv", "/api/export/sources/csv", "/api/export/report/pdf",
			"/api/export/reports/xlsx", "/api/export/records/xlsx", "/api/export/sources/xlsx", "/api/export/workbook/xlsx"}
		for _, p := range paths {
			if r := f.get(t, "", p, nil); r.Code != http.StatusUnauthorized {
				t.Errorf("%s anonymous: %d", p, r.Code)
			}
			if r := f.get(t, f.creds[auth.Viewer], p, nil); r.Code != http.StatusOK {
				t.Errorf("%s viewer: %d %s", p, r.Code, r.Body.String())
			}
			r := f.get(t, f.creds[auth.Viewer], p, url.Values{"source_ip": {"bad-ip"}})
			if r.Code != http.StatusBadRequest || !strings.Contains(r.Body.String(), "source_ip") {
				t.Errorf("%s bad filter: %d %s", p, r.Code, r.Body.String())
			}
			if r := f.get(t, f.creds[auth.Viewer], p, url.Values{"colour": {"red"}}); r.Code != http.StatusBadRequest {
				t.Errorf("%s unknown parameter: %d", p, r.Code)
			}
		}
	})
}

// TestRateLimits: CSV and XLSX count against the export_csv budget together, the PDF against
// export_pdf, per user.
func TestRateLimits(t *testing.T) {
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		st := b.Store(t)
		save(t, st, hostile())
		rates := httpapi.Rates{httpapi.RateAPI: {N: 1000, Per: time.Minute}, httpapi.RateAuth: {N: 1000, Per: time.Minute},
			httpapi.RateExportCSV: {N: 2, Per: time.Minute}, httpapi.RateExportPDF: {N: 1, Per: time.Minute}}
		f := newFixture(t, b, st, options{rates: rates})
		v := f.creds[auth.Viewer]
		for i, c := range []struct {
			path string
			want int
		}{{"/api/export/reports/csv", 200}, {"/api/export/sources/xlsx", 200}, {"/api/export/records/csv", 429},
			{"/api/export/report/pdf", 200}, {"/api/export/report/pdf", 429}} {
			r := f.get(t, v, c.path, nil)
			if r.Code != c.want {
				t.Errorf("request %d %s: %d, want %d", i, c.path, r.Code, c.want)
			}
			if c.want == 429 && r.Header().Get("Retry-After") == "" {
				t.Errorf("429 without Retry-After")
			}
		}
		if r := f.get(t, f.other, "/api/export/reports/csv", nil); r.Code != http.StatusOK {
			t.Errorf("another user's budget is separate: %d", r.Code)
		}
	})
}
