// Package config reads Vigil's settings from VIGIL_* environment variables (each secret also as
// VIGIL_*_FILE) and validates them once at start-up, so a bad value stops the process with one
// message naming the variable instead of failing later in the middle of work.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Config is every setting the three binaries use. Zero values are never valid: Load fills defaults.
type Config struct {
	HTTPAddr    string
	DataDir     string
	DatabaseURL string // "" = embedded SQLite in DataDir
	RedisURL    string // "" = embedded in-process Redis (api only)
	LogFormat   string // text | json
	LogLevel    string // debug | info | warn | error

	WorkerConcurrency int
	WorkerPoll        time.Duration
	ShutdownTimeout   time.Duration
	SweepInterval     time.Duration // how often pending files are re-checked
	SweepGrace        time.Duration // how long a file may stay pending before it is re-enqueued
	// RecoveryInterval is how often each worker checks that the database and Redis answer,
	// that Redis kept its data and that no task is orphaned by a dead worker (ingest.Watch).
	RecoveryInterval time.Duration
	CacheTTL         time.Duration // how long rollup answers stay cached in Redis

	Limits     Limits
	Auth       Auth
	IMAP       IMAP
	Encryption Encryption
	Enrich     Enrich
	ML         ML
	Outbound   Outbound
	SMTP       SMTP
	Reports    Reports

	// MetricsAddr, when set, serves /metrics there without credentials (VIGIL_METRICS_ADDR).
	MetricsAddr string
	Retention   Retention
	Export      Export
}

// Limits bound what one upload, file or report may cost. Each is a VIGIL_MAX_* variable.
type Limits struct {
	UploadFiles        int     // files per upload request
	UploadBytes        int64   // whole request body
	FileBytes          int64   // one raw file (upload, import, mail)
	DecompressedBytes  int64   // one report after all decompression
	DecompressionRatio float64 // checked once a part passes 10 MiB
	ArchiveEntries     int     // zip entries / MIME parts per container
	Nesting            int     // container layers
	XMLDepth           int
	XMLTokenBytes      int
	Records            int   // records per report
	RecordCount        int64 // messages one record may count
	ParseAttempts      int   // attempts at one file before it fails (0: unbounded)
}

// Embedded reports whether the process runs the all-in-one default (no external stores).
func (c Config) Embedded() bool { return c.DatabaseURL == "" && c.RedisURL == "" }

// ErrInvalid is wrapped by every validation error so callers can tell config from runtime failures.
var ErrInvalid = errors.New("invalid configuration")

const (
	kib = int64(1) << 10
	mib = kib << 10
	gib = mib << 10
)

// Load reads the environment through getenv (os.Getenv in production, a map in tests).
func Load(getenv func(string) string) (Config, error) {
	e := env{getenv: getenv}
	c := Config{
		HTTPAddr:          e.str("VIGIL_HTTP_ADDR", ":8000"),
		DataDir:           e.str("VIGIL_DATA_DIR", "./data"),
		DatabaseURL:       e.secret("VIGIL_DATABASE_URL"),
		RedisURL:          e.secret("VIGIL_REDIS_URL"),
		LogFormat:         e.oneOf("VIGIL_LOG_FORMAT", "text", "text", "json"),
		LogLevel:          e.oneOf("VIGIL_LOG_LEVEL", "info", "debug", "info", "warn", "error"),
		WorkerConcurrency: e.integer("VIGIL_WORKER_CONCURRENCY", max(4, 2*runtime.NumCPU()), 1, 1000),
		WorkerPoll:        e.duration("VIGIL_WORKER_POLL_INTERVAL", 100*time.Millisecond),
		ShutdownTimeout:   e.duration("VIGIL_SHUTDOWN_TIMEOUT", 25*time.Second),
		SweepInterval:     e.duration("VIGIL_SWEEP_INTERVAL", 5*time.Minute),
		SweepGrace:        e.duration("VIGIL_SWEEP_GRACE", 2*time.Minute),
		RecoveryInterval:  e.duration("VIGIL_RECOVERY_INTERVAL", 5*time.Second),
		CacheTTL:          e.duration("VIGIL_CACHE_TTL", 5*time.Minute),
		Limits: Limits{
			UploadFiles:        e.integer("VIGIL_MAX_UPLOAD_FILES", 200, 1, 100000),
			UploadBytes:        e.size("VIGIL_MAX_UPLOAD_BYTES", 200*50*mib),
			FileBytes:          e.size("VIGIL_MAX_FILE_BYTES", 50*mib),
			DecompressedBytes:  e.size("VIGIL_MAX_DECOMPRESSED_BYTES", 256*mib),
			DecompressionRatio: e.float("VIGIL_MAX_DECOMPRESSION_RATIO", 200, 2),
			ArchiveEntries:     e.integer("VIGIL_MAX_ARCHIVE_ENTRIES", 1000, 1, 1000000),
			Nesting:            e.integer("VIGIL_MAX_NESTING", 5, 1, 20),
			XMLDepth:           e.integer("VIGIL_MAX_XML_DEPTH", 64, 8, 10000),
			XMLTokenBytes:      int(e.size("VIGIL_MAX_XML_TOKEN_BYTES", mib)),
			Records:            e.integer("VIGIL_MAX_RECORDS", 5000000, 1, 1<<31-1),
			RecordCount:        int64(e.integer("VIGIL_MAX_RECORD_COUNT", 1_000_000_000, 1, 1<<50)),
			ParseAttempts:      e.integer("VIGIL_MAX_PARSE_ATTEMPTS", 10, 0, 1000),
		},
	}
	c.Auth = loadAuth(&e)
	c.IMAP = loadIMAP(&e, c.Limits.FileBytes)
	c.Encryption = loadEncryption(&e)
	c.Enrich = loadEnrich(&e)
	c.ML = loadML(&e)
	c.Outbound = loadOutbound(&e)
	c.SMTP = loadSMTP(&e)
	c.Reports = loadReports(&e)
	loadOperations(&e, &c)
	c.Export = loadExport(&e, c.DataDir)
	if e.err != nil {
		return Config{}, e.err
	}
	return c, c.validate()
}

func (c Config) validate() error {
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		return fmt.Errorf("%w: VIGIL_HTTP_ADDR %q: want host:port such as :8000", ErrInvalid, c.HTTPAddr)
	}
	if c.DatabaseURL != "" {
		u, err := url.Parse(c.DatabaseURL)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql" && u.Scheme != "sqlite") {
			return fmt.Errorf("%w: VIGIL_DATABASE_URL: want postgres://user:pass@host/db or sqlite://path", ErrInvalid)
		}
	}
	if c.RedisURL != "" {
		u, err := url.Parse(c.RedisURL)
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "redis-socket" && u.Scheme != "redis-sentinel") {
			return fmt.Errorf("%w: VIGIL_REDIS_URL: want redis://[:password@]host:port[/db] (or rediss://, redis-sentinel://, redis-socket://)", ErrInvalid)
		}
	}
	if c.DataDir == "" {
		return fmt.Errorf("%w: VIGIL_DATA_DIR is empty", ErrInvalid)
	}
	if c.Limits.FileBytes > c.Limits.UploadBytes {
		return fmt.Errorf("%w: VIGIL_MAX_FILE_BYTES (%d) is larger than VIGIL_MAX_UPLOAD_BYTES (%d)", ErrInvalid, c.Limits.FileBytes, c.Limits.UploadBytes)
	}
	if err := c.IMAP.validate(); err != nil {
		return err
	}
	return c.Auth.validate()
}

// SQLitePath is the database file of the embedded default or of a sqlite:// URL.
func (c Config) SQLitePath() string {
	if strings.HasPrefix(c.DatabaseURL, "sqlite://") {
		return strings.TrimPrefix(c.DatabaseURL, "sqlite://")
	}
	return filepath.Join(c.DataDir, "vigil.db")
}

// env collects the first error so Load can report exactly one bad variable.
type env struct {
	getenv func(string) string
	err    error
}

func (e *env) fail(name, val, want string) {
	if e.err == nil {
		e.err = fmt.Errorf("%w: %s=%q: %s", ErrInvalid, name, val, want)
	}
}

func (e *env) str(name, def string) string {
	if v := strings.TrimSpace(e.getenv(name)); v != "" {
		return v
	}
	return def
}

// secret reads NAME or the file named by NAME_FILE (Docker and Kubernetes secrets), not both.
func (e *env) secret(name string) string {
	v, file := e.getenv(name), e.getenv(name+"_FILE")
	if v != "" && file != "" {
		e.fail(name+"_FILE", file, "set either "+name+" or "+name+"_FILE, not both")
		return ""
	}
	if file == "" {
		return strings.TrimSpace(v)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		e.fail(name+"_FILE", file, "cannot read: "+err.Error())
		return ""
	}
	return strings.TrimSpace(string(b))
}

func (e *env) oneOf(name, def string, allowed ...string) string {
	v := strings.ToLower(e.str(name, def))
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	e.fail(name, v, "want one of "+strings.Join(allowed, ", "))
	return def
}

func (e *env) integer(name string, def, lo, hi int) int {
	v := e.str(name, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		e.fail(name, v, fmt.Sprintf("want a whole number from %d to %d", lo, hi))
		return def
	}
	return n
}

func (e *env) float(name string, def, lo float64) float64 {
	v := e.str(name, "")
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < lo {
		e.fail(name, v, fmt.Sprintf("want a number of at least %g", lo))
		return def
	}
	return f
}

func (e *env) duration(name string, def time.Duration) time.Duration {
	v := e.str(name, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		e.fail(name, v, "want a positive duration such as 30s, 5m or 1h")
		return def
	}
	return d
}

// size accepts plain bytes or a number with KB/MB/GB (powers of 1000) or KiB/MiB/GiB suffix.
func (e *env) size(name string, def int64) int64 {
	v := e.str(name, "")
	if v == "" {
		return def
	}
	n, err := ParseSize(v)
	if err != nil || n <= 0 {
		e.fail(name, v, "want a positive size such as 52428800, 50MB or 50MiB")
		return def
	}
	return n
}

// ParseSize reads "1048576", "1MiB", "1 MB", "2GiB".
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"kib", kib}, {"mib", mib}, {"gib", gib}, {"kb", 1000}, {"mb", 1000 * 1000}, {"gb", 1000 * 1000 * 1000}, {"b", 1}}
	lower := strings.ToLower(s)
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(lower, u.suffix) {
			lower, mult = strings.TrimSpace(strings.TrimSuffix(lower, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(lower, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return n * mult, nil
}
