package store

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"gorm.io/gorm"
)

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Issue 18: a failed or slow statement is logged with its SQL, never with its values.
func TestLoggedSQLHasNoValues(t *testing.T) {
	t.Parallel()
	st, err := Open(context.Background(), "sqlite://"+t.TempDir()+"/v.db", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const secret = "$argon2id$v=19$m=19456,t=2,p=1$c2VjcmV0c2FsdA$c2VjcmV0aGFzaA"
	for name, slow := range map[string]bool{"failed": false, "slow": true} {
		var buf syncBuffer
		lg := gormLog{log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), slow: 1 << 62}
		if slow {
			lg.slow = -1
		}
		db := st.db.Session(&gorm.Session{Logger: lg})
		table := "no_such_table"
		if slow {
			table = "goose_db_version_none"
			db.Exec("CREATE TABLE " + table + " (v TEXT)")
		}
		db.Exec("INSERT INTO "+table+" (v) VALUES (?)", secret)
		out := buf.String()
		if !strings.Contains(out, "INSERT INTO "+table) {
			t.Fatalf("%s: the statement was not logged: %s", name, out)
		}
		if strings.Contains(out, "argon2id") || strings.Contains(out, "c2VjcmV0") {
			t.Fatalf("%s: the log carries the value: %s", name, out)
		}
	}
}
