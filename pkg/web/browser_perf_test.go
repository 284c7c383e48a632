package web_test

import (
	"os"
	"slices"
	"testing"
	"time"
)

// TestOverviewRenderFigure measures how long the overview takes to draw (all eight charts, all
// time) on a large database built beforehand with vigil-synth: PostgreSQL named by
// VIGIL_TEST_OVERVIEW_DATABASE_URL, or an embedded data directory named by
// VIGIL_TEST_OVERVIEW_DATA_DIR (docs/performance.md, "Dashboard", says how); skipped without
// either. It reports figures and asserts nothing about time (the machine is shared): the first
// load after start (the API's answer cache empty), then the median of five warm loads.
func TestOverviewRenderFigure(t *testing.T) {
	dir, db := os.Getenv("VIGIL_TEST_OVERVIEW_DATA_DIR"), os.Getenv("VIGIL_TEST_OVERVIEW_DATABASE_URL")
	env := map[string]string{}
	switch {
	case db != "": // PostgreSQL filled by `make bench-data`; the api checks its schema, never migrates it
		env["VIGIL_DATABASE_URL"] = db
	case dir != "":
		env["VIGIL_DATA_DIR"] = dir
	default:
		t.Skip("skipping the overview render figure: set VIGIL_TEST_OVERVIEW_DATABASE_URL (PostgreSQL) or VIGIL_TEST_OVERVIEW_DATA_DIR (SQLite) to a database built by vigil-synth")
	}
	base := startApp(t, env)
	admin := apiLogin(t, base, adminEmail, adminPassword)
	var sum struct {
		TotalReports  int64 `json:"total_reports"`
		TotalMessages int64 `json:"total_messages"`
	}
	admin.get(t, "/api/rollup/summary", nil, &sum)
	p := newPage(t, base)
	p.login(adminEmail, adminPassword)
	measure := func() (drawn, answered float64, hash time.Duration) {
		p.open("#/reports")
		hash = p.open("#/overview")
		p.eval(`window.vigilOverviewMs`, &drawn)
		p.eval(`window.vigilOverviewFetchMs`, &answered)
		return drawn, answered, hash
	}
	cold, coldFetch, coldHash := measure()
	var warm, warmFetch []float64
	for range 5 {
		d, f, _ := measure()
		warm, warmFetch = append(warm, d), append(warmFetch, f)
	}
	slices.Sort(warm)
	slices.Sort(warmFetch)
	var charts int
	p.eval(`document.querySelectorAll('main canvas').length`, &charts)
	if charts != 8 {
		t.Errorf("the overview drew %d charts, want 8", charts)
	}
	t.Logf("database: %d reports, %d messages", sum.TotalReports, sum.TotalMessages)
	t.Logf("overview cold: drawn %.0f ms after the route started (answers after %.0f ms; %v from the hash change)", cold, coldFetch, coldHash)
	t.Logf("overview warm: drawn median %.0f ms (runs %v), answers after median %.0f ms (runs %v)", warm[2], warm, warmFetch[2], warmFetch)
	if errs := p.errors(); len(errs) > 0 {
		t.Errorf("the page logged errors: %v", errs)
	}
}
