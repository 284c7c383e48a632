package audit_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/audit"
	"github.com/vigilhq/vigil/pkg/testenv"
)

func ptr[T any](v T) *T { return &v }

func TestRecordAndList(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		st := b.Store(t)
		log := audit.New(st)
		ctx := context.Background()
		base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
		entries := []audit.Entry{
			{At: base, Actor: "mallory@example.com", Action: audit.Login, Outcome: audit.Failure, IP: "203.0.113.9", Details: map[string]any{"reason": "invalid credentials"}},
			{At: base.Add(time.Minute), ActorID: ptr(int64(1)), Actor: "admin@example.com", Action: audit.Login, IP: "192.0.2.1"},
			{At: base.Add(2 * time.Minute), ActorID: ptr(int64(1)), Actor: "admin@example.com", APIKeyID: ptr(int64(4)), Action: audit.UserCreate, Target: "user:2", IP: "192.0.2.1"},
		}
		for _, e := range entries {
			if err := log.Record(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		all, total, err := log.List(ctx, audit.Filter{}, 1, 10)
		if err != nil || total != 3 || len(all) != 3 {
			t.Fatalf("list: %d of %d, %v", len(all), total, err)
		}
		if all[0].Action != audit.UserCreate || all[2].Action != audit.Login || !all[0].At.Equal(base.Add(2*time.Minute)) {
			t.Fatalf("not newest first: %+v", all)
		}
		if all[0].Outcome != audit.Success || *all[0].APIKeyID != 4 || all[0].Target != "user:2" || all[0].IP != "192.0.2.1" {
			t.Fatalf("entry: %+v", all[0])
		}
		if all[2].ActorID != nil || all[2].Details["reason"] != "invalid credentials" {
			t.Fatalf("anonymous failure: %+v", all[2])
		}
		cases := []struct {
			f    audit.Filter
			want int64
		}{
			{audit.Filter{Action: audit.Login}, 2},
			{audit.Filter{Action: audit.Login, Outcome: audit.Failure}, 1},
			{audit.Filter{ActorID: 1}, 2},
			{audit.Filter{Since: base.Add(time.Minute)}, 2},
			{audit.Filter{Until: base.Add(time.Minute)}, 1},
		}
		for _, c := range cases {
			if _, n, err := log.List(ctx, c.f, 1, 10); err != nil || n != c.want {
				t.Errorf("filter %+v: %d (%v), want %d", c.f, n, err, c.want)
			}
		}
		page2, _, _ := log.List(ctx, audit.Filter{}, 2, 2)
		if len(page2) != 1 || page2[0].Action != audit.Login {
			t.Fatalf("page 2: %+v", page2)
		}
	})
}

// Concurrent writers (50 failed logins at once) each leave their entry.
func TestConcurrentRecords(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		log := audit.New(b.Store(t))
		var wg sync.WaitGroup
		for i := range 50 {
			wg.Go(func() {
				if err := log.Record(context.Background(), audit.Entry{Action: audit.Login, Outcome: audit.Failure, Actor: fmt.Sprint(i)}); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if _, n, err := log.List(context.Background(), audit.Filter{}, 1, 1); err != nil || n != 50 {
			t.Fatalf("%d entries (%v), want 50", n, err)
		}
	})
}

// TestRecordWaitsForTheWriteLock: an insert takes the store's write lock, so on SQLite it
// queues behind the process's other writers instead of meeting them through busy_timeout
// (where it could fail with SQLITE_BUSY and the entry was lost). While another writer holds
// the lock the entry is not written; once it is released, every concurrent entry is.
func TestRecordWaitsForTheWriteLock(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		if b.Real() {
			t.Skip("the write lock exists on SQLite only")
		}
		st := b.Store(t)
		log := audit.New(st)
		ctx := context.Background()
		unlock := st.LockWrites()
		const writers = 8
		done := make(chan error, writers)
		for i := 0; i < writers; i++ {
			go func() {
				done <- log.Record(ctx, audit.Entry{Actor: fmt.Sprintf("w%d@example.com", i), Action: audit.Upload})
			}()
		}
		select {
		case err := <-done:
			unlock()
			t.Fatalf("an entry was recorded (%v) while another writer held the lock", err)
		case <-time.After(300 * time.Millisecond):
		}
		unlock()
		for i := 0; i < writers; i++ {
			if err := <-done; err != nil {
				t.Fatalf("entry lost: %v", err)
			}
		}
		if _, n, err := log.List(ctx, audit.Filter{Action: audit.Upload}, 1, 50); err != nil || n != writers {
			t.Fatalf("%d entries (%v), want %d", n, err, writers)
		}
	})
}
