package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// Issue 18: ids are never reused. Migration 00007 rebuilds SQLite's tables with AUTOINCREMENT
// and keeps their data (sessions and keys are not cascaded away with the old users table);
// after it, neither the newest user's id, once deleted, nor an id the audit log names comes
// back. PostgreSQL's sequences never reused one.
func TestIDsAreNeverReused(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		ctx := context.Background()
		st, err := store.Open(ctx, b.DatabaseURL(t), testenv.Logger())
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if err := store.MigrateTo(ctx, st, 6); err != nil {
			t.Fatal(err)
		}
		db := st.DB()
		now := time.Now().UTC()
		exec := func(sql string, args ...any) {
			t.Helper()
			if err := db.Exec(sql, args...).Error; err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
		}
		for _, email := range []string{"a@example.com", "b@example.com", "c@example.com"} {
			exec("INSERT INTO users (email, password_hash, role, created_at, updated_at) VALUES (?, 'h', 'viewer', ?, ?)", email, now, now)
		}
		exec("INSERT INTO auth_sessions (id, user_id, created_at, refreshed_at, expires_at) VALUES ('s1', 1, ?, ?, ?)", now, now, now)
		exec("INSERT INTO api_keys (user_id, name, prefix, key_hash, role, created_at) VALUES (1, 'k', 'vgl_x', 'hash1', 'viewer', ?)", now)
		exec("INSERT INTO mailboxes (name, source, host, port, username, folder, created_at, updated_at) VALUES ('m1', 'api', 'h', 993, 'u', 'INBOX', ?, ?)", now, now)
		exec("INSERT INTO audit_log (at, actor_id, action, outcome, target) VALUES (?, 1, 'user.delete', 'success', 'user:7')", now)
		exec("DELETE FROM users WHERE id = 3")

		if _, err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		count := func(table string) int64 {
			var n int64
			db.Table(table).Count(&n)
			return n
		}
		for table, want := range map[string]int64{"users": 2, "auth_sessions": 1, "api_keys": 1, "mailboxes": 1, "audit_log": 1} {
			if n := count(table); n != want {
				t.Errorf("%s: %d rows after the migration, want %d", table, n, want)
			}
		}
		var email string
		db.Raw("SELECT email FROM users u JOIN api_keys k ON k.user_id = u.id WHERE k.key_hash = 'hash1'").Scan(&email)
		if email != "a@example.com" {
			t.Fatalf("the key's owner after the migration: %q", email)
		}
		newUser := func(email string) int64 {
			t.Helper()
			var id int64
			if err := db.Raw("INSERT INTO users (email, password_hash, role, created_at, updated_at) VALUES (?, 'h', 'viewer', ?, ?) RETURNING id", email, now, now).Scan(&id).Error; err != nil {
				t.Fatal(err)
			}
			return id
		}
		first := newUser("d@example.com")
		if first <= 3 || (!b.Real() && first <= 7) {
			t.Fatalf("new user id %d reuses a deleted or audited one", first)
		}
		exec("DELETE FROM users WHERE id = ?", first)
		if again := newUser("e@example.com"); again <= first {
			t.Fatalf("after deleting user %d the next one got id %d", first, again)
		}
		// A user deleted with their key and session: the cascade still holds.
		exec("DELETE FROM users WHERE id = 1")
		if count("api_keys") != 0 || count("auth_sessions") != 0 {
			t.Fatal("deleting a user left its key or session: the foreign keys were lost")
		}
		exec("DELETE FROM mailboxes")
		var mid int64
		db.Raw("INSERT INTO mailboxes (name, source, host, port, username, folder, created_at, updated_at) VALUES ('m2', 'api', 'h', 993, 'u', 'INBOX', ?, ?) RETURNING id", now, now).Scan(&mid)
		if mid <= 1 {
			t.Fatalf("a new mailbox got id %d, the deleted one's", mid)
		}
	})
}
