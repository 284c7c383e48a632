// Package importer back-fills archived reports from files and folders through the same
// pipeline as uploads, showing progress and ending with a summary a person can act on.
package importer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
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
// and folders are skipped). One unreadable or bad file never stops the others.
func (im *Importer) Run(ctx context.Context, paths []string) (Summary, error) {
	files, err := collect(paths)
	if err != nil {
		return Summary{}, err
	}
	sum := Summary{Files: len(files)}
	bar := im.bar(len(files))
	var mu sync.Mutex
	pending := map[int64]string{} // ingest id -> path, for files workers still have to process
	work := make(chan string)
	var wg sync.WaitGroup
	var firstErr error
	for range max(1, im.Concurrency) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for path := range work {
				st, id, reason, reports, err := im.one(ctx, path)
				mu.Lock()
				switch {
				case err != nil && firstErr == nil:
					firstErr = err
				case err != nil:
				case st == store.StatusPending:
					pending[id] = path
				default:
					sum.add(path, st, reason, reports)
				}
				mu.Unlock()
				if st != store.StatusPending {
					bar.Add(1)
				}
			}
		}()
	}
	for _, p := range files {
		select {
		case work <- p:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
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

// one hands a file to the pipeline and, inline, processes it. It returns the file's status
// (pending while a worker still has it); err only for infrastructure failures.
func (im *Importer) one(ctx context.Context, path string) (status string, id int64, reason string, reports int, err error) {
	data, rerr := readCapped(path, im.MaxFile)
	if rerr != nil {
		return store.StatusFailed, 0, rerr.Error(), 0, nil
	}
	res, err := im.Ingest.Accept(ctx, ingest.File{Name: filepath.Base(path), Source: "import", SourceRef: path, ReceivedAt: time.Now(), Data: data})
	if err != nil {
		return "", 0, "", 0, err
	}
	switch res.Status {
	case ingest.Rejected:
		return store.StatusFailed, 0, res.Error, 0, nil
	case ingest.Duplicate:
		return store.StatusDuplicate, res.IngestID, res.Error, 0, nil
	}
	if im.Inline {
		if err := im.Ingest.Process(ctx, res.IngestID); err != nil && !errors.Is(err, ingest.ErrPermanent) {
			return "", 0, "", 0, err
		}
	}
	ing, err := im.Store.GetIngest(ctx, res.IngestID)
	if err != nil {
		return "", 0, "", 0, err
	}
	return ing.Status, ing.ID, ing.Error, ing.ReportCount, nil
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

// collect lists the files to import, sorted for a stable order.
func collect(paths []string) ([]string, error) {
	var out []string
	for _, root := range paths {
		info, err := os.Stat(root)
		if err != nil {
			return nil, fmt.Errorf("import: %w", err)
		}
		if !info.IsDir() {
			out = append(out, root)
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
				out = append(out, p)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("import: walk %s: %w", root, err)
		}
	}
	sort.Strings(out)
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
