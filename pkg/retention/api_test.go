package retention_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vigilhq/vigil/pkg/audit"
	"github.com/vigilhq/vigil/pkg/retention"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// DELETE /api/reports/{id}: 204 once, then 404; the report and what hangs on it are gone, the
// rollups equal those of the remaining reports applied afresh, and each call is audited.
func TestDeleteReport(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		st := b.Store(t)
		f := load(t, st)
		al := audit.New(st)
		svc := retention.New(retention.Deps{Store: st, Audit: al, Log: testenv.Logger(), Now: func() time.Time { return now }})
		e := echo.New()
		for _, r := range retention.NewAPI(svc, nil, al).Routes() {
			e.Add(r.Method, r.Path, r.Handler)
		}
		del := func(id string) int {
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, httptest.NewRequest(http.MethodDelete, "/api/reports/"+id, nil))
			return rec.Code
		}
		// One old report and one kept one, the kept one (2 records) of a domain with others.
		victims := []int64{f.oldIDs[3], f.keptIDs[1]}
		for _, id := range victims {
			if code := del(fmt.Sprint(id)); code != http.StatusNoContent {
				t.Fatalf("DELETE report %d = %d, want 204", id, code)
			}
			if code := del(fmt.Sprint(id)); code != http.StatusNotFound {
				t.Fatalf("DELETE report %d again = %d, want 404", id, code)
			}
		}
		for _, bad := range []string{"0", "x", "-3"} {
			if code := del(bad); code != http.StatusBadRequest {
				t.Errorf("DELETE /api/reports/%s = %d, want 400", bad, code)
			}
		}
		for _, q := range []string{`SELECT COUNT(*) FROM reports WHERE id IN ?`, `SELECT COUNT(*) FROM records WHERE report_id IN ?`,
			`SELECT COUNT(*) FROM ingest_reports WHERE report_id IN ?`, `SELECT COUNT(*) FROM rollup_applied WHERE report_id IN ?`} {
			if n := count(t, st, q, victims); n != 0 {
				t.Errorf("%s: %d left", q, n)
			}
		}
		var remain []int64
		if err := st.DB().Raw(`SELECT id FROM reports ORDER BY id`).Scan(&remain).Error; err != nil {
			t.Fatal(err)
		}
		if want := len(f.oldIDs) + len(f.keptIDs) - len(victims); len(remain) != want {
			t.Fatalf("%d reports remain, want %d", len(remain), want)
		}
		got := snapshot(t, st)
		rebuild(t, st, remain)
		if want := snapshot(t, st); got != want {
			t.Errorf("rollups after the deletes differ from the remaining reports applied afresh:\n got: %s\nwant: %s", got, want)
		}
		entries, _, err := al.List(context.Background(), audit.Filter{Action: retention.ActionReportDelete}, 1, 50)
		if err != nil {
			t.Fatal(err)
		}
		outcomes := map[string]int{}
		for _, en := range entries {
			outcomes[en.Outcome]++
		}
		if outcomes[audit.Success] != 2 || outcomes[audit.Failure] != 2 {
			t.Errorf("audit entries by outcome %v, want 2 successes and 2 failures (the repeated deletes)", outcomes)
		}
	})
}
