package synth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
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
// what is being measured and one per report would triple the time to load a year.
const batchReports = 200

// Write stores every report of g through the store's own ingestion path (so the rows are
// exactly what ingestion writes), as processed files of batchReports reports. progress, when
// set, is called after each batch.
func Write(ctx context.Context, st *store.Store, g *Generator, progress func(Stats)) (Stats, error) {
	start := time.Now()
	var s Stats
	batch := make([]store.Parsed, 0, batchReports)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		name := fmt.Sprintf("synth-%d-%d-%d", g.cfg.Seed, g.cfg.End.Unix(), s.Reports)
		sum := sha256.Sum256([]byte(name))
		ing, created, err := st.CreateIngest(ctx, store.NewFile{SHA256: hex.EncodeToString(sum[:]), Filename: name + ".xml",
			Source: "synth", Size: 9, ReceivedAt: batch[0].Header.DateEnd, Encoding: "identity", Data: []byte("synthetic")})
		if err != nil {
			return err
		}
		if !created {
			return fmt.Errorf("synth: %s was generated before (same seed and end day): use another seed or an empty database", name)
		}
		out := store.Outcome{Status: store.StatusProcessed, ReportCount: len(batch)}
		if _, finished, err := st.SaveParsedAndFinish(ctx, ing.ID, batch, out); err != nil {
			return err
		} else if !finished {
			if _, err := st.Finish(ctx, ing.ID, out.Status, "", out.ReportCount); err != nil {
				return err
			}
		}
		for _, p := range batch {
			s.Reports++
			s.Records += len(p.Records)
			for _, r := range p.Records {
				s.Messages += r.Count
			}
		}
		batch = batch[:0]
		if progress != nil {
			s.Duration = time.Since(start)
			progress(s)
		}
		return nil
	}
	for {
		p, ok := g.Next()
		if !ok {
			break
		}
		batch = append(batch, p)
		if len(batch) == batchReports {
			if err := flush(); err != nil {
				return s, err
			}
		}
	}
	err := flush()
	s.Duration = time.Since(start)
	return s, err
}
