package ingest_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/vigilhq/vigil/pkg/ingest"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// Two handles on one SQLite file stand for two processes (a running embedded server and an
// `api import` beside it), each with several workers writing at once: every file must be
// stored, with no "database is locked" error reaching a caller.
func TestSQLiteConcurrentWriters(t *testing.T) {
	t.Parallel()
	base := corpusFile(t, niceXML)
	url := "sqlite://" + filepath.Join(t.TempDir(), "vigil.db")
	ctx := context.Background()
	var svcs []*ingest.Service
	var st *store.Store
	for range 2 {
		s, err := store.Open(ctx, url, testenv.Logger())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if _, err := s.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		st = s
		svcs = append(svcs, ingest.New(s, nil, nil, limits(), testenv.Logger()))
	}
	const perWorker = 25
	var wg sync.WaitGroup
	for p, svc := range svcs {
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perWorker {
					data := variant(base, (p*4+w)*perWorker+i)
					res, err := svc.Accept(ctx, ingest.File{Name: "f.xml", Source: "test", Data: data})
					if err == nil {
						err = svc.Process(ctx, res.IngestID)
					}
					if err != nil && !errors.Is(err, ingest.ErrPermanent) {
						t.Errorf("process %d/%d/%d: %v", p, w, i, err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	_, n, err := st.ListReports(ctx, store.Filter{}, store.Page{Number: 1, Size: 1})
	if err != nil || n != 2*4*perWorker {
		t.Fatalf("%d reports (%v), want %d", n, err, 2*4*perWorker)
	}
}
