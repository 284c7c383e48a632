// Package importer back-fills archived reports from files and folders through the same
// pipeline as uploads, showing progress and ending with a summary a person can act on.
package importer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/vigilhq/vigil/pkg/ingest"
	"github.com/vigilhq/vigil/pkg/store"
)

// Importer runs one import.
type Importer struct {
	Ingest *ingest.Service
	Store  *store.Store
	// Inline processes files in this process (no queue); otherwise files are enqueued for
	// workers and the importer waits for them.
	Inline      bool
	Concurrency int
	MaxFile     int64
	Progress    io.Writer // nil: no progress bar
	Poll        time.Duration
}

// Failure is one file that did not yield reports, with why.
type Failure struct {
	Path   string
	Reason string
}

// Summary is the outcome of an import.
type Summary struct {
	Files     int
	Processed int
	Duplicate int // same bytes as an earlier file, or only reports already stored
	Failed    []Failure
	Reports   int
}

// Run imports every regular file under paths (folders are walked recursively; hidden files
// and folders are skipped). One unreadable or bad file never stops the others. Files go through
// the pipeline in batches (ingest.BatchLen): one durable commit stores a batch's originals and,
// inline, one statement stores their reports.
func (im *Importer) Run(ctx context.Context, paths []string) (Summary, error) {
	files, err := collect(paths)
	if err != nil {
		return Summary{}, err
	}
	sum := Summary{Files: len(files)}
	bar := im.bar(len(files))
	var mu sync.Mutex
	pending := map[int64]string{} // ingest id -> path, for files workers still have to process
	work := make(chan []file)
	var wg sync.WaitGroup
	var firstErr error
	for range max(1, im.Concurrency) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for batch := range work {
				outs, err := im.batch(ctx, batch)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				done := 0
				for i, o := range outs {
					if o.status == "" {
						continue // not settled: an infrastructure error, reported in err
					}
					if o.status == store.StatusPending {
						pending[o.id] = batch[i].path
						continue
					}
					sum.add(batch[i].path, o.status, o.reason, o.reports)
					done++
				}
				mu.Unlock()
				bar.Add(done)
			}
		}()
	}
	sizes := make([]int64, len(files))
	for i, f := range files {
		sizes[i] = f.size
	}
	for start := 0; start < len(files) && ctx.Err() == nil; {
		n := ingest.BatchLen(sizes[start:])
		select {
		case work <- files[start : start+n]:
		case <-ctx.Done():
		}
		start += n
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		return sum, firstErr
	}
	if err := ctx.Err(); err != nil {
		return sum, err
	}
	err = im.wait(ctx, pending, &sum, bar)
	bar.Finish()
	return sum, err
}

func (s *Summary) add(path, status, reason string, reports int) {
	switch status {
	case store.StatusProcessed:
		s.Processed++
		s.Reports += reports
	case store.StatusDuplicate:
		s.Duplicate++
	default:
		s.Failed = append(s.Failed, Failure{Path: path, Reason: reason})
	}
}

// fileOutcome is what became of one file of a batch; status is pending while a worker still
// has it, empty when an infrastructure error left it unsettled.
type fileOutcome struct {
	status, reason string
	id             int64
	reports        int
}

// batch hands files to the pipeline and, inline, processes them. err is for infrastructure
// failures only; the files it could settle have their outcome even then.
func (im *Importer) batch(ctx context.Context, batch []file) ([]fileOutcome, error) {
	outs := make([]fileOutcome, len(batch))
	var in []ingest.File
	var at []int
	for i, f := range batch {
		data, err := readCapped(f.path, im.MaxFile)
		if err != nil {
			outs[i] = fileOutcome{status: store.StatusFailed, reason: err.Error()}
			continue
		}
		in = append(in, ingest.File{Name: filepath.Base(f.path), Source: "import", SourceRef: f.path, ReceivedAt: time.Now(), Data: data})
		at = append(at, i)
	}
	res, err := im.Ingest.AcceptBatch(ctx, in)
	if err != nil {
		return outs, err
	}
	var ids []int64
	var idAt []int
	for k, r := range res {
		i := at[k]
		switch r.Status {
		case ingest.Rejected:
			outs[i] = fileOutcome{status: store.StatusFailed, reason: r.Error}
		case ingest.Duplicate:
			outs[i] = fileOutcome{status: store.StatusDuplicate, id: r.IngestID, reason: r.Error}
		default:
			outs[i] = fileOutcome{status: store.StatusPending, id: r.IngestID}
			ids, idAt = append(ids, r.IngestID), append(idAt, i)
		}
	}
	if !im.Inline || len(ids) == 0 {
		return outs, nil
	}
	done, err := im.Ingest.ProcessBatch(ctx, ids)
	var firstErr error
	for k, i := range idAt {
		switch {
		case err != nil:
			outs[i].status, firstErr = "", err
		case done[k].Err != nil && !errors.Is(done[k].Err, ingest.ErrPermanent):
			// Still pending: a later import or the sweep takes it up.
			outs[i].status, firstErr = "", cmp.Or(firstErr, done[k].Err)
		default:
			p := done[k]
			outs[i] = fileOutcome{status: p.Status, reason: p.Reason, id: p.IngestID, reports: p.Reports}
		}
	}
	return outs, firstErr
}

// wait polls the database until workers have processed every file this import enqueued.
func (im *Importer) wait(ctx context.Context, pending map[int64]string, sum *Summary, bar *progressbar.ProgressBar) error {
	poll := im.Poll
	if poll <= 0 {
		poll = 500 * time.Millisecond
	}
	for len(pending) > 0 {
		ids := make([]int64, 0, len(pending))
		for id := range pending {
			ids = append(ids, id)
		}
		ings, err := im.Store.GetIngests(ctx, ids)
		if err != nil {
			return err
		}
		for _, ing := range ings {
			if ing.Status != store.StatusPending {
				sum.add(pending[ing.ID], ing.Status, ing.Error, ing.ReportCount)
				delete(pending, ing.ID)
				bar.Add(1)
			}
		}
		if len(pending) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped with %d files still queued (they stay stored and will be processed): %w", len(pending), ctx.Err())
		case <-time.After(poll):
		}
	}
	return nil
}

func (im *Importer) bar(n int) *progressbar.ProgressBar {
	if im.Progress == nil {
		return progressbar.DefaultSilent(int64(n))
	}
	return progressbar.NewOptions(n, progressbar.OptionSetWriter(im.Progress), progressbar.OptionSetDescription("importing"),
		progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("files"),
		progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish(), progressbar.OptionFullWidth())
}

// file is one file to import; its size (as listed) only shapes batches.
type file struct {
	path string
	size int64
}

// collect lists the files to import, sorted for a stable order.
func collect(paths []string) ([]file, error) {
	var out []file
	for _, root := range paths {
		info, err := os.Stat(root)
		if err != nil {
			return nil, fmt.Errorf("import: %w", err)
		}
		if !info.IsDir() {
			out = append(out, file{root, info.Size()})
			continue
		}
		err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if p != root && len(d.Name()) > 0 && d.Name()[0] == '.' {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.Type().IsRegular() {
				var size int64
				if info, err := d.Info(); err == nil {
					size = info.Size()
				}
				out = append(out, file{p, size})
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("import: walk %s: %w", root, err)
		}
	}
	slices.SortFunc(out, func(a, b file) int { return strings.Compare(a.path, b.path) })
	return out, nil
}

func readCapped(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("unreadable: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("unreadable: %w", err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("file is larger than the %d-byte limit (VIGIL_MAX_FILE_BYTES)", max)
	}
	return b, nil
}

// Print writes the summary for a person.
func (s Summary) Print(w io.Writer) {
	fmt.Fprintf(w, "%d files: %d processed (%d reports), %d duplicate, %d failed\n", s.Files, s.Processed, s.Reports, s.Duplicate, len(s.Failed))
	failed := slices.SortedFunc(slices.Values(s.Failed), func(a, b Failure) int { return strings.Compare(a.Path, b.Path) })
	for _, f := range failed {
		fmt.Fprintf(w, "  failed: %s: %s\n", f.Path, f.Reason)
	}
}
