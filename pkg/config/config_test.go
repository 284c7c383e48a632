package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaults(t *testing.T) {
	t.Parallel()
	c, err := Load(envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != ":8000" || c.DataDir != "./data" || !c.Embedded() || c.Limits.FileBytes != 50<<20 || c.Limits.UploadFiles != 200 || c.Limits.ParseAttempts != 10 ||
		c.WorkerPoll != 100*time.Millisecond {
		t.Fatalf("defaults: %+v", c)
	}
	if c.SQLitePath() != filepath.Join("data", "vigil.db") {
		t.Fatalf("sqlite path %q", c.SQLitePath())
	}
}

func TestValues(t *testing.T) {
	t.Parallel()
	c, err := Load(envOf(map[string]string{
		"VIGIL_HTTP_ADDR": "127.0.0.1:9000", "VIGIL_MAX_FILE_BYTES": "10MiB", "VIGIL_MAX_DECOMPRESSED_BYTES": "1GB",
		"VIGIL_SWEEP_GRACE": "90s", "VIGIL_LOG_FORMAT": "JSON", "VIGIL_DATABASE_URL": "postgres://u:p@db/vigil",
		"VIGIL_REDIS_URL": "redis://localhost:6379/2", "VIGIL_MAX_PARSE_ATTEMPTS": "0", "VIGIL_WORKER_POLL_INTERVAL": "250ms",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Limits.FileBytes != 10<<20 || c.Limits.DecompressedBytes != 1e9 || c.SweepGrace != 90*time.Second || c.LogFormat != "json" || c.Embedded() || c.Limits.ParseAttempts != 0 || c.WorkerPoll != 250*time.Millisecond {
		t.Fatalf("values: %+v", c)
	}
}

func TestSecretFromFile(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "db")
	if err := os.WriteFile(p, []byte("postgres://u:secret@db/vigil\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(envOf(map[string]string{"VIGIL_DATABASE_URL_FILE": p}))
	if err != nil || c.DatabaseURL != "postgres://u:secret@db/vigil" {
		t.Fatalf("from file: %q %v", c.DatabaseURL, err)
	}
}

// Each bad value stops start-up with one message naming the variable.
func TestErrorsNameTheVariable(t *testing.T) {
	t.Parallel()
	cases := map[string]map[string]string{
		"VIGIL_HTTP_ADDR":               {"VIGIL_HTTP_ADDR": "8000"},
		"VIGIL_DATABASE_URL":            {"VIGIL_DATABASE_URL": "mysql://x"},
		"VIGIL_REDIS_URL":               {"VIGIL_REDIS_URL": "localhost:6379"},
		"VIGIL_LOG_FORMAT":              {"VIGIL_LOG_FORMAT": "xml"},
		"VIGIL_MAX_FILE_BYTES":          {"VIGIL_MAX_FILE_BYTES": "lots"},
		"VIGIL_MAX_UPLOAD_FILES":        {"VIGIL_MAX_UPLOAD_FILES": "0"},
		"VIGIL_MAX_PARSE_ATTEMPTS":      {"VIGIL_MAX_PARSE_ATTEMPTS": "-1"},
		"VIGIL_MAX_DECOMPRESSION_RATIO": {"VIGIL_MAX_DECOMPRESSION_RATIO": "-1"},
		"VIGIL_SWEEP_INTERVAL":          {"VIGIL_SWEEP_INTERVAL": "5"},
		"VIGIL_WORKER_POLL_INTERVAL":    {"VIGIL_WORKER_POLL_INTERVAL": "0s"},
		"VIGIL_DATABASE_URL_FILE":       {"VIGIL_DATABASE_URL": "postgres://a", "VIGIL_DATABASE_URL_FILE": "/x"},
		"VIGIL_REDIS_URL_FILE":          {"VIGIL_REDIS_URL_FILE": "/does/not/exist"},
		"VIGIL_MAX_UPLOAD_BYTES":        {"VIGIL_MAX_FILE_BYTES": "2MiB", "VIGIL_MAX_UPLOAD_BYTES": "1MiB"},
		"VIGIL_ENCRYPTION_KEY":          {"VIGIL_ENCRYPTION_KEY": "a passphrase is not a key"},
		"VIGIL_ENCRYPTION_OLD_KEYS":     {"VIGIL_ENCRYPTION_KEY": strings.Repeat("ab", 32), "VIGIL_ENCRYPTION_OLD_KEYS": strings.Repeat("cd", 32) + ",short"},
		"VIGIL_IMAP_TOKEN_DIR":          {"VIGIL_IMAP_TOKEN_DIR": "relative/tokens"},
	}
	for name, env := range cases {
		_, err := Load(envOf(env))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), name) {
			t.Errorf("%v: error %v, want ErrInvalid naming %s", env, err, name)
		}
	}
}

func TestEncryptionKeys(t *testing.T) {
	t.Parallel()
	c, err := Load(envOf(map[string]string{"VIGIL_ENCRYPTION_KEY": strings.Repeat("ab", 32),
		"VIGIL_ENCRYPTION_OLD_KEYS": strings.Repeat("cd", 32) + ", " + strings.Repeat("ef", 32)}))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Encryption.Key) != 32 || c.Encryption.Key[0] != 0xab || len(c.Encryption.OldKeys) != 2 || c.Encryption.OldKeys[1][0] != 0xef {
		t.Fatalf("keys: %x %x", c.Encryption.Key, c.Encryption.OldKeys)
	}
	// Old keys alone would open values but seal nothing.
	if _, err := Load(envOf(map[string]string{"VIGIL_ENCRYPTION_OLD_KEYS": strings.Repeat("cd", 32)})); err == nil ||
		!strings.Contains(err.Error(), "VIGIL_ENCRYPTION_OLD_KEYS") {
		t.Fatalf("old keys without a key: %v", err)
	}
	// A bad key is not echoed into logs.
	_, err = Load(envOf(map[string]string{"VIGIL_ENCRYPTION_KEY": "hunter2-hunter2"}))
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("bad key error %v: want an error that does not repeat the value", err)
	}
	if c, err := Load(envOf(nil)); err != nil || c.Encryption.Key != nil || c.IMAP.TokenDir != "" {
		t.Fatalf("defaults: %+v %v", c.Encryption, err)
	}
}

func TestParseSize(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{"1024": 1024, "1KiB": 1024, "2 MiB": 2 << 20, "1GB": 1e9, "5mb": 5e6, "7b": 7} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "MiB", "1.5MiB", "99999999999GiB"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) succeeded", bad)
		}
	}
}
