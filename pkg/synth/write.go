package synth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/vigilhq/vigil/pkg/store"
)

// Stats says what Write stored.
type Stats struct {
	Reports  int
	Records  int
	Messages int64
	Duration time.Duration
}

// batchReports go into one synthetic file: real files hold one report, but the file is not
// what is being measured, and fewer files load faster.
const batchReports = 50

// Write stores every report of g through the store's own ingestion path (so the rows are
// exactly what ingestion writes), as processed files of batchReports reports, with writers
// files in flight at once (1 when 0). progress, when set, is called after each file.
func Write(ctx context.Context, st *store.Store, g *Generator, writers int, progress func(Stats)) (Stats, error) {
	start := time.Now()
	writers = max(writers, 1)
	type file struct {
		n    int
		reps []store.Parsed
	}
	files := make(chan file, 2*writers)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu   sync.Mutex
		s    Stats
		errs []error
		wg   sync.WaitGroup
	)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range files {
				if err := writeFile(ctx, st, g.cfg, f.n, f.reps); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					cancel()
					continue
				}
				mu.Lock()
				s.Reports += len(f.reps)
				for _, p := range f.reps {
					s.Records += len(p.Records)
					for _, r := range p.Records {
						s.Messages += r.Count
					}
				}
				s.Duration = time.Since(start)
				if progress != nil {
					progress(s)
				}
				mu.Unlock()
			}
		}()
	}
	for n := 0; ctx.Err() == nil; n++ {
		batch := make([]store.Parsed, 0, batchReports)
		for len(batch) < batchReports {
			p, ok := g.Next()
			if !ok {
				break
			}
			batch = append(batch, p)
		}
		if len(batch) == 0 {
			break
		}
		files <- file{n: n, reps: batch}
	}
	close(files)
	wg.Wait()
	s.Duration = time.Since(start)
	if len(errs) == 0 && ctx.Err() != nil {
		errs = append(errs, ctx.Err())
	}
	return s, errors.Join(errs...)
}

func writeFile(ctx context.Context, st *store.Store, cfg Config, n int, batch []store.Parsed) error {
	name := fmt.Sprintf("synth-%d-%d-%d", cfg.Seed, cfg.End.Unix(), n)
	sum := sha256.Sum256([]byte(name))
	ing, err := st.CreateIngest(ctx, store.NewFile{SHA256: hex.EncodeToString(sum[:]), Filename: name + ".xml",
		Source: "synth", Size: 9, ReceivedAt: batch[0].Header.DateEnd, Encoding: "identity", Data: []byte("synthetic")})
	if err != nil {
		return err
	}
	if !ing.Created {
		return fmt.Errorf("synth: %s was generated before (same seed and end day): use another seed or an empty database", name)
	}
	out := store.Outcome{Status: store.StatusProcessed, ReportCount: len(batch)}
	_, finished, err := st.SaveParsedAndFinish(ctx, ing.ID, batch, out)
	if err == nil && !finished {
		_, err = st.Finish(ctx, ing.ID, out.Status, "", out.ReportCount)
	}
	return err
}
