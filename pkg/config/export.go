package config

import "time"

// Export configures file exports and digests (pkg/export, pkg/digest).
type Export struct {
	RowLimit  int64         // VIGIL_EXPORT_ROW_LIMIT: rows above which an export is rendered by a worker
	Retention time.Duration // VIGIL_EXPORT_RETENTION: how long a rendered file can be downloaded
	Dir       string        // VIGIL_EXPORT_DIR: where rendered files wait (shared by api and workers)
	// DigestInterval is how often the scheduler looks for digests due (VIGIL_DIGEST_CHECK_INTERVAL).
	DigestInterval time.Duration
}

func loadExport(e *env, dataDir string) Export {
	x := Export{
		RowLimit:       int64(e.integer("VIGIL_EXPORT_ROW_LIMIT", 100_000, 1, 1<<40)),
		Retention:      e.duration("VIGIL_EXPORT_RETENTION", 24*time.Hour),
		Dir:            e.str("VIGIL_EXPORT_DIR", ""),
		DigestInterval: e.duration("VIGIL_DIGEST_CHECK_INTERVAL", time.Hour),
	}
	if x.Dir == "" && dataDir != "" {
		x.Dir = dataDir + "/exports"
	}
	if x.Retention < time.Minute {
		e.fail("VIGIL_EXPORT_RETENTION", x.Retention.String(), "want at least 1m")
	}
	if x.DigestInterval < time.Minute || x.DigestInterval > 24*time.Hour {
		e.fail("VIGIL_DIGEST_CHECK_INTERVAL", x.DigestInterval.String(), "want from 1m to 24h")
	}
	return x
}
