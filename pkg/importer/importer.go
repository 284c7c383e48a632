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
	Duplicate int // same bytes as a file processed before, or only reports already stored
	Failed    []Failure
	Reports   int
	// Unfinished counts files left pending when the import stopped early (an infrastructure
	// error, or interrupted): stored, and processed later by a worker or the next import.
	Unfinished int
}

// OK says whether every file was processed or is a duplicate of a processed one: the
// condition for `api import` to exit 0.
func (s Summary) OK() bool { return len(s.Failed) == 0 && s.Unfinished == 0 }

// Run imports every regular file under paths (folders are walked recursively; hidden files
// and folders are skipped). One unreadable or bad file never stops the others. Files go through
// the pipeline in batches (ingest.BatchLen): one durable commit stores a batch's originals and,
// inline, one statement stores their reports.
//
// A file whose bytes were stored before but are still pending (an earlier import killed
// half-way, a lost task) is work for this run, not a duplicate: it is processed (inline) or
// enqueued again and waited for, and counted by its outcome. Only a duplicate of a finished
// file counts as a duplicate; one of a failed file counts as failed, with the earlier reason.
func (im *Importer) Run(ctx context.Context, paths []string) (Summary, error) {
	files, err := collect(paths)
	if err != nil {
		return Summary{}, err
	}
	r := &run{im: im, sum: Summary{Files: len(files)}, owner: map[int64]string{}, pending: map[int64]string{}}
	r.bar = im.bar(len(files))
	work := make(chan []file)
	var wg sync.WaitGroup
	for range max(1, im.Concurrency) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for batch := range work {
				r.batch(ctx, batch)
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
	err = cmp.Or(r.firstErr, ctx.Err())
	if err == nil {
		err = r.wait(ctx)
	}
	if rerr := r.resolveCopies(ctx); err == nil {
		err = rerr
	}
	r.sum.Unfinished = len(files) - r.sum.Processed - r.sum.Duplicate - len(r.sum.Failed)
	r.bar.Finish()
	return r.sum, err
}

// run is the state of one import, shared by its batches.
type run struct {
	im  *Importer
	bar *progressbar.ProgressBar

	mu       sync.Mutex
	sum      Summary
	firstErr error
	// owner is the file of this run that stands for each ingest it processes or waits for;
	// another file of the run with the same bytes is a copy, settled at the end by its outcome.
	owner   map[int64]string
	copies  []copyOf
	pending map[int64]string // ingest id → path, for files workers still have to process
}

// copyOf is a file whose bytes another file of the same run stands for.
type copyOf struct {
	path string
	id   int64
}

func (r *run) fail(err error) {
	r.mu.Lock()
	r.firstErr = cmp.Or(r.firstErr, err)
	r.mu.Unlock()
}

// take makes path the file of this run that stands for ingest id, unless another one already
// does: then path is a copy of it.
func (r *run) take(id int64, path string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.owner[id]; ok {
		r.copies = append(r.copies, copyOf{path, id})
		return false
	}
	r.owner[id] = path
	return true
}

// settle records the outcome of files; a pending one is waited for.
func (r *run) settle(outs []fileOutcome) {
	r.mu.Lock()
	done := 0
	for _, o := range outs {
		switch o.status {
		case "":
			continue // a copy, or not settled (an infrastructure error, reported apart)
		case store.StatusPending:
			r.pending[o.id] = o.path
			continue
		}
		r.sum.add(o.path, o.status, o.reason, o.reports)
		done++
	}
	r.mu.Unlock()
	r.bar.Add(done)
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
// has it, empty for a copy of another file of the run or when an infrastructure error left
// it unsettled.
type fileOutcome struct {
	path, status, reason string
	id                   int64
	reports              int
}

// batch hands files to the pipeline and, inline, processes them.
func (r *run) batch(ctx context.Context, batch []file) {
	im := r.im
	outs := make([]fileOutcome, len(batch))
	var in []ingest.File
	var at []int
	for i, f := range batch {
		outs[i].path = f.path
		data, err := readCapped(f.path, im.MaxFile)
		if err != nil {
			outs[i].status, outs[i].reason = store.StatusFailed, err.Error()
			continue
		}
		in = append(in, ingest.File{Name: filepath.Base(f.path), Source: "import", SourceRef: f.path, ReceivedAt: time.Now(), Data: data})
		at = append(at, i)
	}
	res, err := im.Ingest.AcceptBatch(ctx, in)
	if err != nil {
		r.fail(err)
		r.settle(outs) // the unreadable ones
		return
	}
	var ids []int64
	var idAt []int
	for k, res := range res {
		i := at[k]
		o := &outs[i]
		o.id = res.IngestID
		switch {
		case res.Status == ingest.Rejected:
			o.status, o.reason = store.StatusFailed, res.Error
		case res.Status == ingest.Duplicate && res.Earlier == store.StatusFailed:
			o.status, o.reason = store.StatusFailed, res.Error
		case res.Status == ingest.Duplicate && res.Earlier != store.StatusPending:
			o.status, o.reason = store.StatusDuplicate, res.Error
		case !r.take(res.IngestID, o.path):
			// Another file of this run has the same bytes: this one ends as that one does.
		default:
			// Accepted now, or stored before and still pending: work for this run either way.
			o.status = store.StatusPending
			ids, idAt = append(ids, res.IngestID), append(idAt, i)
		}
	}
	if !im.Inline || len(ids) == 0 {
		r.settle(outs)
		return
	}
	done, err := im.Ingest.ProcessBatch(ctx, ids)
	for k, i := range idAt {
		switch {
		case err != nil:
			outs[i].status = ""
			r.fail(err)
		case done[k].Err != nil && !errors.Is(done[k].Err, ingest.ErrPermanent):
			// Still pending: a later import or the sweep takes it up.
			outs[i].status = ""
			r.fail(done[k].Err)
		case done[k].Status == store.StatusPending:
			// Another process has it right now (a server's worker): wait for its outcome.
			outs[i].status = store.StatusPending
		default:
			p := done[k]
			outs[i].status, outs[i].reason, outs[i].reports = p.Status, p.Reason, p.Reports
		}
	}
	r.settle(outs)
}

// resolveCopies settles the files whose bytes another file of the run stood for: a duplicate
// when that one was processed (or was a duplicate itself), failed with its reason when it
// failed, left unfinished when it is still pending.
func (r *run) resolveCopies(ctx context.Context) error {
	if len(r.copies) == 0 {
		return nil
	}
	ids := make([]int64, 0, len(r.copies))
	for _, c := range r.copies {
		ids = append(ids, c.id)
	}
	ings, err := r.im.Store.GetIngests(context.WithoutCancel(ctx), ids)
	if err != nil {
		return err
	}
	byID := make(map[int64]store.Ingest, len(ings))
	for _, ing := range ings {
		byID[ing.ID] = ing
	}
	done := 0
	for _, c := range r.copies {
		ing := byID[c.id]
		switch ing.Status {
		case store.StatusProcessed, store.StatusDuplicate:
			r.sum.Duplicate++
		case store.StatusFailed:
			r.sum.Failed = append(r.sum.Failed, Failure{Path: c.path, Reason: fmt.Sprintf("same bytes as %s, which failed: %s", r.owner[c.id], ing.Error)})
		default:
			continue
		}
		done++
	}
	r.bar.Add(done)
	return nil
}

// wait polls the database until workers have processed every file this import enqueued.
func (r *run) wait(ctx context.Context) error {
	pending, sum, bar := r.pending, &r.sum, r.bar
	poll := r.im.Poll
	if poll <= 0 {
		poll = 500 * time.Millisecond
	}
	for len(pending) > 0 {
		ids := make([]int64, 0, len(pending))
		for id := range pending {
			ids = append(ids, id)
		}
		ings, err := r.poll(ctx, ids)
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

// poll reads the state of files still pending. Inline, nobody else may be there to finish
// them (the process that had one may have died), so it tries them again itself: a claim of a
// file another process is parsing costs one wasted attempt, never a second copy of a report.
func (r *run) poll(ctx context.Context, ids []int64) ([]store.Ingest, error) {
	if !r.im.Inline {
		return r.im.Store.GetIngests(ctx, ids)
	}
	done, err := r.im.Ingest.ProcessBatch(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]store.Ingest, 0, len(done))
	for _, p := range done {
		if p.Err != nil && !errors.Is(p.Err, ingest.ErrPermanent) {
			return nil, p.Err
		}
		out = append(out, store.Ingest{ID: p.IngestID, Status: p.Status, Error: p.Reason, ReportCount: p.Reports})
	}
	return out, nil
}

// bar is started at once, so that its first rate is files over the time since the import
// began (on its first update it would otherwise divide by the microseconds since then).
func (im *Importer) bar(n int) *progressbar.ProgressBar {
	if im.Progress == nil {
		return progressbar.DefaultSilent(int64(n))
	}
	bar := progressbar.NewOptions(n, progressbar.OptionSetWriter(im.Progress), progressbar.OptionSetDescription("importing"),
		progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("files"),
		progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish(), progressbar.OptionFullWidth())
	bar.StartWithoutRender()
	return bar
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
	// Sized from stat, the file is read into one buffer: io.ReadAll's doubling from 512 bytes
	// copied a 900 KB report a dozen times and was 14% of a large import's CPU (perf). The size
	// is a hint only (the file may change under us), so the cap is still checked on what is read.
	size := int64(512)
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		size = min(fi.Size(), max) + 1
	}
	b, err := readAllInto(make([]byte, 0, size), io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("unreadable: %w", err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("file is larger than the %d-byte limit (VIGIL_MAX_FILE_BYTES)", max)
	}
	return b, nil
}

// readAllInto is io.ReadAll into b's spare capacity, growing it only when it is full.
func readAllInto(b []byte, r io.Reader) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if errors.Is(err, io.EOF) {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// Print writes the summary for a person.
func (s Summary) Print(w io.Writer) {
	fmt.Fprintf(w, "%d files: %d processed (%d reports), %d duplicate, %d failed", s.Files, s.Processed, s.Reports, s.Duplicate, len(s.Failed))
	if s.Unfinished > 0 {
		fmt.Fprintf(w, ", %d unfinished (stored; processed by the next import or a running worker)", s.Unfinished)
	}
	fmt.Fprintln(w)
	failed := slices.SortedFunc(slices.Values(s.Failed), func(a, b Failure) int { return strings.Compare(a.Path, b.Path) })
	for _, f := range failed {
		fmt.Fprintf(w, "  failed: %s: %s\n", f.Path, f.Reason)
	}
}
