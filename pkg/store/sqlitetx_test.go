package store_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// Writers that read before they write (ResetFailed picks the failed files, then resets them;
// the rollups read their rows, then add to them) never fail with SQLITE_BUSY while other
// connections commit: their transactions take the write lock at BEGIN and wait for it. With
// deferred transactions the upgrade from reading to writing failed at once ("database is
// locked") whenever another connection had committed since the read.
func TestConcurrentReadThenWrite(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		st := b.Store(t)
		ctx := context.Background()
		const files = 40
		ids := make([]int64, files)
		for i := range ids {
			sum := sha256.Sum256([]byte(fmt.Sprintf("busy-%s-%d", t.Name(), i)))
			s, err := st.CreateIngest(ctx, store.NewFile{SHA256: hex.EncodeToString(sum[:]), Filename: "f.xml", Source: "test",
				Size: 1, ReceivedAt: time.Now(), Encoding: "identity", Data: []byte("x")})
			if err != nil {
				t.Fatal(err)
			}
			ids[i] = s.ID
		}
		fail := func() error {
			for _, id := range ids {
				if _, err := st.Finish(ctx, id, store.StatusFailed, "broken", 0); err != nil {
					return err
				}
			}
			return nil
		}
		if err := fail(); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		const rounds = 30
		// Other writers, the way pkg/rollup and pkg/auth write: their own transaction on the
		// store's pool, a read, a pause, then a write.
		for w := 0; w < 3; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < rounds; i++ {
					err := st.DB().WithContext(ctx).Transaction(func(tx *gorm.DB) error {
						var n int64
						if err := tx.Raw("SELECT COUNT(*) FROM ingests").Scan(&n).Error; err != nil {
							return err
						}
						time.Sleep(time.Millisecond)
						return tx.Exec("UPDATE ingests SET size_bytes = size_bytes WHERE id = ?", ids[(w*7+i)%files]).Error
					})
					if err != nil {
						errs <- fmt.Errorf("writer %d round %d: %w", w, i, err)
						return
					}
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				if _, err := st.ResetFailed(ctx, time.Now().Add(time.Hour), files); err != nil {
					errs <- fmt.Errorf("reset failed, round %d: %w", i, err)
					return
				}
				if err := fail(); err != nil {
					errs <- fmt.Errorf("fail again, round %d: %w", i, err)
					return
				}
			}
		}()
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}
