package store_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"

	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/synth"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// TestBackupWhileWritingRestores follows docs/operations.md ("Backup and restore") on each
// backend: a backup taken while reports are being stored (SQLite: VACUUM INTO; PostgreSQL:
// pg_dump -Fc, then pg_restore into an empty database) opens as a current schema and holds a
// consistent snapshot: every report with all its records, at least what was stored before it
// began.
func TestBackupWhileWritingRestores(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		ctx := context.Background()
		dsn := b.DatabaseURL(t)
		st, err := store.Open(ctx, dsn, testenv.Logger())
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if _, err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		g := synth.New(synth.Config{Seed: 5, Domains: 3, Sources: 50, Reporters: 4, Days: 30, Reports: 4000, RecordsPerReport: 5,
			End: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
		var stored atomic.Int64
		saveOne := func(i int) {
			p, ok := g.Next()
			if !ok {
				return
			}
			// Not newIngest: this runs on another goroutine too, where t.Fatal may not be called.
			sum := sha256.Sum256([]byte(fmt.Sprintf("backup-%d", i)))
			ing, err := st.CreateIngest(ctx, store.NewFile{SHA256: hex.EncodeToString(sum[:]), Filename: "f.xml", Source: "test", Size: 1,
				ReceivedAt: time.Now(), Encoding: "identity", Data: []byte("x")})
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := st.SaveParsed(ctx, ing.ID, []store.Parsed{p}); err != nil {
				t.Error(err)
				return
			}
			stored.Add(1)
		}
		for i := range 50 {
			saveOne(i)
		}
		before := stored.Load()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { // keeps storing while the backup runs
			defer wg.Done()
			for i := 50; i < 4000; i++ {
				select {
				case <-stop:
					return
				default:
					saveOne(i)
				}
			}
		}()
		var restored string
		if st.Dialect() == store.SQLite {
			path := filepath.Join(t.TempDir(), "backup.db")
			if err := st.DB().Exec(`VACUUM INTO ?`, path).Error; err != nil {
				t.Fatalf("VACUUM INTO: %v", err)
			}
			restored = "sqlite://" + path
		} else {
			restored = pgBackupRestore(t, dsn)
		}
		close(stop)
		wg.Wait()

		cp, err := store.Open(ctx, restored, testenv.Logger())
		if err != nil {
			t.Fatalf("open the restored copy: %v", err)
		}
		defer cp.Close()
		if err := cp.CheckSchema(ctx); err != nil {
			t.Fatalf("the restored copy: %v", err)
		}
		var c struct{ Reports, Records, Declared int64 }
		if err := cp.DB().Raw(`SELECT (SELECT COUNT(*) FROM reports) AS reports, (SELECT COUNT(*) FROM records) AS records,
			(SELECT COALESCE(SUM(record_count), 0) FROM reports) AS declared`).Scan(&c).Error; err != nil {
			t.Fatal(err)
		}
		if c.Reports < before || c.Records != c.Declared {
			t.Errorf("restored %d reports (want at least the %d stored before the backup) with %d records (their reports declare %d)",
				c.Reports, before, c.Records, c.Declared)
		}
		t.Logf("backup holds %d reports (%d before it began, %d by the end of the writes)", c.Reports, before, stored.Load())
	})
}

// pgBackupRestore dumps the test's schema with pg_dump -Fc and restores it with pg_restore into
// a new database of its own (dropped at the end); it returns that copy's URL.
func pgBackupRestore(t *testing.T, dsn string) string {
	t.Helper()
	for _, tool := range []string{"pg_dump", "pg_restore"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed: the PostgreSQL backup procedure needs it", tool)
		}
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	schema := u.Query().Get("search_path")
	plain := *u
	q := plain.Query()
	q.Del("search_path")
	plain.RawQuery = q.Encode()
	dump := filepath.Join(t.TempDir(), "vigil.dump")
	if out, err := exec.Command("pg_dump", "-Fc", "-n", schema, "-f", dump, plain.String()).CombinedOutput(); err != nil {
		t.Fatalf("pg_dump: %v\n%s", err, out)
	}
	admin, err := gorm.Open(postgres.Open(plain.String()), &gorm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	name := strings.ReplaceAll(schema, "t_", "restore_")
	if err := admin.Exec("CREATE DATABASE " + name).Error; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
		if db, err := admin.DB(); err == nil {
			db.Close()
		}
	})
	target := *u
	target.Path = "/" + name
	tq := target.Query()
	tq.Del("search_path")
	target.RawQuery = tq.Encode()
	if out, err := exec.Command("pg_restore", "--no-owner", "-d", target.String(), dump).CombinedOutput(); err != nil {
		t.Fatalf("pg_restore: %v\n%s", err, out)
	}
	tq.Set("search_path", schema)
	target.RawQuery = tq.Encode()
	return target.String()
}
