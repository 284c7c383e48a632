package config

import (
	"net"
	"strconv"
	"strings"
	"time"
)

// Retention says how long stored data is kept (VIGIL_RETENTION_*). A zero age keeps that kind
// of data forever, the default: deleting reports is the operator's decision.
type Retention struct {
	Reports time.Duration // reports and their records, by the end of their period
	Files   time.Duration // original files (raw_files), by when they were received
	Rollups time.Duration // analytics rollup rows, by the end of their period
	Audit   time.Duration // audit log entries, by their time
	// Domains overrides Reports for the reports of some domains (lower-case domain → age).
	Domains  map[string]time.Duration
	Interval time.Duration // how often the scheduler runs the purge
	Batch    int           // rows deleted per statement (and transaction)
	DryRun   bool          // count what would go, delete nothing
}

// Enabled reports whether anything is ever deleted.
func (r Retention) Enabled() bool {
	return r.Reports > 0 || r.Files > 0 || r.Rollups > 0 || r.Audit > 0 || len(r.Domains) > 0
}

func loadOperations(e *env, c *Config) {
	c.MetricsAddr = e.str("VIGIL_METRICS_ADDR", "")
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			e.fail("VIGIL_METRICS_ADDR", c.MetricsAddr, "want host:port such as :9090")
		}
	}
	c.Retention = Retention{
		Reports:  e.days("VIGIL_RETENTION_REPORT_DAYS"),
		Files:    e.days("VIGIL_RETENTION_FILE_DAYS"),
		Rollups:  e.days("VIGIL_RETENTION_ROLLUP_DAYS"),
		Audit:    e.days("VIGIL_RETENTION_AUDIT_DAYS"),
		Domains:  e.domainDays("VIGIL_RETENTION_DOMAINS"),
		Interval: e.duration("VIGIL_RETENTION_INTERVAL", 6*time.Hour),
		Batch:    e.integer("VIGIL_RETENTION_BATCH", 5000, 100, 1_000_000),
		DryRun:   e.oneOf("VIGIL_RETENTION_DRY_RUN", "false", "false", "true") == "true",
	}
}

const day = 24 * time.Hour

// maxDays bounds an age to a thousand years, far from overflowing a time.Duration.
const maxDays = 365_000 / 4

// days reads a whole number of days; 0 (the default) keeps forever.
func (e *env) days(name string) time.Duration {
	return time.Duration(e.integer(name, 0, 0, maxDays)) * day
}

// domainDays reads "example.com=90,example.org=30": per-domain report ages in days.
func (e *env) domainDays(name string) map[string]time.Duration {
	v := e.str(name, "")
	if v == "" {
		return nil
	}
	out := map[string]time.Duration{}
	for _, item := range strings.Split(v, ",") {
		d, n, ok := strings.Cut(strings.TrimSpace(item), "=")
		d = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
		days, err := strconv.Atoi(strings.TrimSpace(n))
		if !ok || d == "" || strings.ContainsAny(d, " /=") || err != nil || days < 1 || days > maxDays {
			e.fail(name, v, "want domain=days pairs separated by commas, such as example.com=90,example.org=30 (days from 1)")
			return nil
		}
		out[d] = time.Duration(days) * day
	}
	return out
}
