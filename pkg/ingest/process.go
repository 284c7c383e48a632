package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/vigilhq/vigil/pkg/dmarc"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/unwrap"
	"github.com/vigilhq/vigil/tasks"
)

// ErrPermanent wraps failures that retrying cannot fix (the file itself is bad). It is recorded
// on the ingest; the task handler completes the task with that outcome as its result.
var ErrPermanent = errors.New("permanent failure")

// transient marks an error of the infrastructure (database, context) met while storing: the
// whole file is retried later and nothing about the file is recorded as failed.
type transient struct{ err error }

func (t transient) Error() string { return t.err.Error() }
func (t transient) Unwrap() error { return t.err }

// outcome collects what one file yielded, part by part.
type outcome struct {
	stored, dups int
	records      int // of the stored (new) reports
	problems     []string
}

func (o *outcome) count(s store.Saved, records int) {
	if s.Duplicate {
		o.dups++
	} else {
		o.stored++
		o.records += records
	}
}

func (o *outcome) fail(path string, err error) {
	p := err.Error()
	if path != "" {
		p = fmt.Sprintf("%s: %v", path, err)
	}
	// One fault can surface twice (a bad checksum fails the parser's read and then the
	// container's own check): say it once.
	for i, q := range o.problems {
		switch {
		case strings.Contains(q, p):
			return
		case strings.Contains(p, q):
			o.problems[i] = p
			return
		}
	}
	o.problems = append(o.problems, p)
}

// status decides the file's end state: processed when any report is new, duplicate when every
// report was already stored from another file, failed when none could be read.
func (o *outcome) status() (string, string) {
	reason := strings.Join(o.problems, "; ")
	switch {
	case o.stored > 0:
		return store.StatusProcessed, reason
	case o.dups > 0 && reason == "":
		return store.StatusDuplicate, fmt.Sprintf("every report in this file (%d) was already stored from another file", o.dups)
	case o.dups > 0:
		return store.StatusDuplicate, reason
	case reason == "":
		return store.StatusFailed, "no DMARC aggregate report found"
	}
	return store.StatusFailed, reason
}

// Reports are read ahead up to prefetch records (prefetchSQLite on SQLite): complete ones
// (nearly all) are collected and stored together, up to flushRecords records or flushReports
// reports at a time, in as few statements as the database allows; a longer report streams
// into a transaction of its own.
//
// SQLite reads further ahead because a commit there writes every page it dirtied to the WAL,
// and a report's records dirty pages all over records_ip_idx (its sources' addresses are
// scattered): a report of thousands of records committed alone rewrites most of that index's
// leaf pages, so importing many such reports one commit each cost time in proportion to the
// index (150 copies of the corpus's 2,286-record report: 25,800 records/s streamed, 43,400
// read whole and stored four files to a commit). PostgreSQL logs row changes, not pages, and
// takes a streamed report by COPY, which costs it less than the batched insert.
const (
	prefetch       = 1000
	prefetchSQLite = 10_000
	flushRecords   = 4000
	flushReports   = 100
	// hookRecords bounds the records of a file's new reports held for the after-store hook
	// (the rollups add them without reading them back); a file's reports past it are handed
	// over by id only. The records of complete reports are in memory anyway; a streamed
	// report's are kept as they go by, so this bounds what a long report adds.
	hookRecords = 20_000
)

// Process unwraps, parses and stores one pending file. It is idempotent: a file that is no
// longer pending is left alone; a re-run after a crash, or a second delivery racing the
// first, finds its own reports stored (linked, not duplicated) and the outcome is recorded
// once. Errors wrapping ErrPermanent concern the file; others are worth retrying.
func (s *Service) Process(ctx context.Context, id int64) error {
	res, err := s.ProcessBatch(ctx, []int64{id})
	if err != nil {
		return err
	}
	return res[0].Err
}

// Processed is what ProcessBatch did with one file.
type Processed struct {
	IngestID int64
	// Status is processed, duplicate or failed; for a file that was not pending (finished
	// before, or a second delivery), its current status, pending when another attempt has it.
	Status  string
	Reason  string
	Reports int // stored or linked: the file's report_count
	// Err is nil, wraps ErrPermanent when the file failed (as Status says), or is an error of
	// the infrastructure: the file stays pending, to be retried.
	Err error
}

// batchRecords bounds the records of the complete reports ProcessBatch holds for one statement.
const batchRecords = 20000

// ProcessBatch is Process for several files, in as few statements as it can: one claims them
// all, then the complete reports of as many files as fit batchRecords are stored and the
// files finished in one more (a long report still streams in a transaction of its own). Each
// file ends with its own outcome, as with Process; when the batch statement fails, each file
// is stored alone, so a file the database refuses never sinks the others. The error is for a
// failure before any file could be tried (the claim): then every file stays as it was.
func (s *Service) ProcessBatch(ctx context.Context, ids []int64) ([]Processed, error) {
	// An id given twice is processed once (the second claim would find it pending still).
	at := make(map[int64]int, len(ids))
	out := make([]Processed, 0, len(ids))
	for _, id := range ids {
		if _, ok := at[id]; !ok {
			at[id] = len(out)
			out = append(out, Processed{IngestID: id})
		}
	}
	distinct := make([]int64, len(out))
	for i, p := range out {
		distinct[i] = p.IngestID
	}
	claimed, err := s.store.ClaimMany(ctx, distinct)
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	if len(claimed) < len(out) {
		if err := s.notClaimed(ctx, claimed, out); err != nil {
			return nil, err
		}
	}
	var runs []*fileRun
	recs := 0
	for _, c := range claimed {
		if s.lim.MaxAttempts > 0 && c.Ingest.Attempts > s.lim.MaxAttempts {
			out[at[c.Ingest.ID]] = s.giveUp(ctx, c.Ingest)
			continue
		}
		run := s.walk(ctx, c)
		if run.err != nil {
			s.noteAttempt(ctx, c.Ingest.ID, run.err)
			out[at[c.Ingest.ID]].Err = fmt.Errorf("ingest %d: %w", c.Ingest.ID, run.err)
			continue
		}
		runs = append(runs, run)
		if recs += run.pendingRecs; recs >= batchRecords {
			s.saveRuns(ctx, runs)
			s.finishRuns(ctx, runs, out, at)
			runs, recs = nil, 0
		}
	}
	s.saveRuns(ctx, runs)
	s.finishRuns(ctx, runs, out, at)
	if len(out) == len(ids) {
		return out, nil
	}
	all := make([]Processed, len(ids))
	for i, id := range ids {
		all[i] = out[at[id]]
	}
	return all, nil
}

// giveUp fails a file whose attempts are spent, with why the last one did not finish. An
// attempt that recorded nothing was cut short: the worker stopped (killed, crashed, out of
// memory) or its task timed out while on this file.
func (s *Service) giveUp(ctx context.Context, ing store.Ingest) Processed {
	last := ing.Error
	if last == "" {
		last = "the worker stopped before finishing (killed, crashed, out of memory or timed out)"
	}
	reason := fmt.Sprintf("given up after %d attempts (VIGIL_MAX_PARSE_ATTEMPTS); the last one ended: %s", s.lim.MaxAttempts, last)
	p := Processed{IngestID: ing.ID, Status: store.StatusFailed, Reason: reason}
	if _, err := s.store.Finish(ctx, ing.ID, store.StatusFailed, reason, 0); err != nil {
		p.Status, p.Reason, p.Err = "", "", fmt.Errorf("ingest %d: %w", ing.ID, err)
		return p
	}
	s.log.Warn("file given up", "ingest_id", ing.ID, "file", ing.Filename, "reason", reason)
	p.Err = fmt.Errorf("ingest %d: %s: %w", ing.ID, reason, ErrPermanent)
	return p
}

// noteAttempt keeps why an attempt on a file that stays pending did not finish. It is best
// effort: the database that just failed may well refuse this too.
func (s *Service) noteAttempt(ctx context.Context, id int64, err error) {
	if ctx.Err() != nil { // shutting down or timed out: nothing to say about the file
		return
	}
	if nerr := s.store.NoteAttemptError(ctx, id, truncateReason(err.Error())); nerr != nil {
		s.log.Debug("could not note why an attempt failed", "ingest_id", id, "err", nerr)
	}
}

// truncateReason keeps a database's error message (which may quote a whole statement) short
// enough for an ingest's error field.
func truncateReason(s string) string {
	const limit = 1000
	if len(s) <= limit {
		return s
	}
	return strings.ToValidUTF8(s[:limit], "") + "…"
}

// notClaimed fills in the files ClaimMany left out: finished already, or unknown.
func (s *Service) notClaimed(ctx context.Context, claimed []store.Claimed, out []Processed) error {
	got := make(map[int64]bool, len(claimed))
	for _, c := range claimed {
		got[c.Ingest.ID] = true
	}
	var rest []int64
	for _, p := range out {
		if !got[p.IngestID] {
			rest = append(rest, p.IngestID)
		}
	}
	ings, err := s.store.GetIngests(ctx, rest)
	if err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	known := make(map[int64]store.Ingest, len(ings))
	for _, ing := range ings {
		known[ing.ID] = ing
	}
	for i, p := range out {
		if got[p.IngestID] {
			continue
		}
		ing, ok := known[p.IngestID]
		if !ok {
			out[i].Err = fmt.Errorf("ingest %d does not exist: %w", p.IngestID, ErrPermanent)
			continue
		}
		out[i].Status, out[i].Reason, out[i].Reports = ing.Status, ing.Error, ing.ReportCount
	}
	return nil
}

// walk unwraps and parses one claimed file. Long reports and files with many reports are
// stored as they are read; the rest of the file waits in run.pending for saveRuns. run.err is
// set when the infrastructure failed (the file stays pending).
func (s *Service) walk(ctx context.Context, c store.Claimed) *fileRun {
	run := &fileRun{svc: s, ctx: ctx, id: c.Ingest.ID, filename: c.Ingest.Filename}
	data, err := decodeRaw(c.Raw, c.Ingest.SizeBytes, s.lim.FileBytes)
	if err == nil {
		err = unwrap.Walk(data, s.lim.Unwrap, run.part)
	}
	var tr transient
	if errors.As(err, &tr) {
		run.err = tr.err
		return run
	}
	if errors.Is(err, unwrap.ErrUnrecognised) || errors.Is(err, unwrap.ErrEmpty) {
		err = fmt.Errorf("not a DMARC aggregate report: %w", err)
	}
	if err != nil {
		run.o.fail("", err) // what was read before the problem is still stored
	}
	return run
}

// pendingKind is a parsed report of a KindBatch waiting to be stored.
type pendingKind struct {
	format unwrap.Format
	item   KindItem
}

// saveKinds stores the parsed reports of the KindBatch kinds waiting in runs, one Save per
// kind for all the runs, and counts them in each run's outcome.
func (s *Service) saveKinds(ctx context.Context, runs []*fileRun) error {
	var formats []unwrap.Format
	byFormat := map[unwrap.Format][]KindItem{}
	owners := map[unwrap.Format][]*fileRun{}
	for _, r := range runs {
		for _, pk := range r.kindPending {
			if _, ok := byFormat[pk.format]; !ok {
				formats = append(formats, pk.format)
			}
			byFormat[pk.format] = append(byFormat[pk.format], pk.item)
			owners[pk.format] = append(owners[pk.format], r)
		}
	}
	// Every kind is stored before anything is counted: a failure leaves the outcomes as they
	// were, for the file-by-file retry.
	dups := make(map[unwrap.Format][]bool, len(formats))
	for _, f := range formats {
		d, err := s.batches[f].Save(ctx, byFormat[f])
		if err != nil {
			return fmt.Errorf("store %d %s reports: %w", len(byFormat[f]), f, err)
		}
		if len(d) != len(byFormat[f]) {
			return fmt.Errorf("store %d %s reports: %d answers", len(byFormat[f]), f, len(d))
		}
		dups[f] = d
	}
	for _, f := range formats {
		for i, r := range owners[f] {
			r.o.count(store.Saved{Duplicate: dups[f][i]}, 0) // no DMARC records
		}
	}
	for _, r := range runs {
		r.kindPending = nil
	}
	return nil
}

// saveRuns stores the waiting reports of the runs and finishes each file whose reports all
// turned out new (nearly always), in one statement; a failed statement is tried again file by
// file, so that only a file the database refuses stays pending. The reports of KindBatch
// kinds are stored first, together.
func (s *Service) saveRuns(ctx context.Context, runs []*fileRun) {
	if len(runs) == 0 {
		return
	}
	if err := s.saveKinds(ctx, runs); err != nil {
		if len(runs) > 1 && ctx.Err() == nil {
			s.log.Warn("reports of a batch of files not stored together; storing them one by one", "files", len(runs), "err", err)
			for _, r := range runs {
				s.saveRuns(ctx, []*fileRun{r})
			}
			return
		}
		for _, r := range runs {
			r.err = err
		}
		return
	}
	files := make([]store.FileReports, len(runs))
	for i, r := range runs {
		assumed := r.o
		assumed.stored += len(r.pending)
		status, reason := assumed.status()
		files[i] = store.FileReports{IngestID: r.id, Reports: r.pending,
			Outcome: &store.Outcome{Status: status, Reason: reason, ReportCount: assumed.stored + assumed.dups}}
	}
	saved, finished, err := s.store.SaveFiles(ctx, files)
	if err != nil && len(runs) > 1 && ctx.Err() == nil {
		s.log.Warn("batch of files not stored together; storing them one by one", "files", len(runs), "err", err)
		for _, r := range runs {
			s.saveRuns(ctx, []*fileRun{r})
		}
		return
	}
	if err != nil {
		for _, r := range runs {
			r.err = err
		}
		return
	}
	for i, r := range runs {
		for k, sv := range saved[i] {
			r.o.count(sv, len(r.pending[k].Records))
			r.keep(sv, r.pending[k].Header, r.pending[k].Records)
		}
		r.pending, r.pendingRecs, r.finished = nil, 0, finished[i]
	}
}

// finishRuns records the outcome of files saveRuns could not finish, runs the after-store hook
// and fills in out.
func (s *Service) finishRuns(ctx context.Context, runs []*fileRun, out []Processed, at map[int64]int) {
	for _, r := range runs {
		p := &out[at[r.id]]
		if r.err != nil {
			s.noteAttempt(ctx, r.id, r.err)
			p.Err = fmt.Errorf("ingest %d: %w", r.id, r.err)
			continue
		}
		status, reason := r.o.status()
		if !r.finished {
			if _, err := s.store.Finish(ctx, r.id, status, reason, r.o.stored+r.o.dups); err != nil {
				s.noteAttempt(ctx, r.id, err)
				p.Err = err
				continue
			}
		}
		if r.o.stored > 0 && s.onNew != nil {
			if err := s.onNew(ctx, r.id, r.inserted); err != nil {
				s.log.Warn("after-store hook failed; the rollup catch-up will cover it", "ingest_id", r.id, "err", err)
			}
		}
		s.log.Log(ctx, s.fileLevel, "file processed", "ingest_id", r.id, "file", r.filename, "status", status, "reports", r.o.stored, "duplicates", r.o.dups, "problems", len(r.o.problems))
		p.Status, p.Reason, p.Reports = status, reason, r.o.stored+r.o.dups
		if s.obs != nil {
			s.obs.FileProcessed(status, r.o.stored, r.o.records)
		}
		if status == store.StatusFailed {
			p.Err = fmt.Errorf("ingest %d: %s: %w", r.id, reason, ErrPermanent)
		}
	}
}

// fileRun is one attempt at one file.
type fileRun struct {
	svc         *Service
	ctx         context.Context
	id          int64
	filename    string
	o           outcome
	pending     []store.Parsed
	pendingRecs int
	kindPending []pendingKind     // parsed reports of a KindBatch, not stored yet
	inserted    []store.NewReport // for the after-store hook, up to hookRecords records
	insertedRec int
	finished    bool  // the outcome is recorded
	err         error // of the infrastructure: the file stays pending
}

// part handles one payload. Problems with the part are noted and the walk goes on (one bad
// report never sinks the others in the same zip); only infrastructure errors stop it.
func (r *fileRun) part(p unwrap.Part) error {
	if kb, ok := r.svc.batches[p.Format]; ok {
		rep, err := kb.Parse(p)
		if err != nil {
			r.o.fail(p.Path, err)
			return nil
		}
		r.kindPending = append(r.kindPending, pendingKind{format: p.Format, item: KindItem{IngestID: r.id, Report: rep}})
		if len(r.kindPending) >= flushReports { // a file of many: do not hold them all
			if err := r.svc.saveKinds(r.ctx, []*fileRun{r}); err != nil {
				return transient{err}
			}
		}
		return nil
	}
	if h := r.svc.kinds[p.Format]; h != nil {
		res := h(r.ctx, r.id, p)
		switch {
		case res.Err != nil:
			return transient{res.Err}
		case res.Problem != nil:
			r.o.fail(p.Path, res.Problem)
		default:
			r.o.count(store.Saved{Duplicate: res.Duplicate}, 0) // no DMARC records
		}
		return nil
	}
	switch p.Format {
	case unwrap.FormatTLSRPT:
		r.o.fail(p.Path, errors.New("SMTP TLS report (RFC 8460) recognised; this report type is not stored yet"))
		return nil
	case unwrap.FormatFailure:
		r.o.fail(p.Path, errors.New("DMARC failure report (RFC 6591) recognised; this report type is not stored yet"))
		return nil
	case unwrap.FormatJSON:
		r.o.fail(p.Path, errors.New("JSON but not an SMTP TLS report"))
		return nil
	}
	// DMARC, other XML and unknown bytes all go through the parser: for a non-report it names
	// what it found ("expected <feedback>, found <html>") better than a sniffer can.
	dec := dmarc.NewDecoder(p.Body, r.svc.lim.Parse)
	h, err := dec.Header()
	if err != nil {
		r.o.fail(p.Path, err)
		return nil
	}
	ahead := prefetch
	if r.svc.store.Dialect() == store.SQLite {
		ahead = prefetchSQLite
	}
	head, complete, err := readUpTo(dec.Next, ahead)
	if err != nil {
		r.o.fail(p.Path, err)
		return nil
	}
	if complete {
		r.pending = append(r.pending, store.Parsed{Header: h, Records: head, Warnings: dec.Warnings()})
		if r.pendingRecs += len(head); r.pendingRecs >= flushRecords || len(r.pending) >= flushReports {
			return r.flushTransient()
		}
		return nil
	}
	if err := r.flushTransient(); err != nil {
		return err
	}
	var parseErr error
	streamed := len(head)
	// The records go by once: those the hook may get are kept as they do.
	var kept []dmarc.Record
	keeping := r.fits(len(head))
	if keeping {
		kept = append(make([]dmarc.Record, 0, 2*len(head)), head...)
	}
	next := func() (dmarc.Record, error) {
		rec, err := dec.Next()
		if err != nil && !errors.Is(err, io.EOF) {
			parseErr = err
		}
		if err == nil {
			streamed++
			if keeping = keeping && r.fits(len(kept)+1); keeping {
				kept = append(kept, rec)
			} else {
				kept = nil
			}
		}
		return rec, err
	}
	saved, err := r.svc.store.SaveReport(r.ctx, r.id, h, head, next, dec.Warnings)
	switch {
	case parseErr != nil:
		r.o.fail(p.Path, parseErr)
	case err != nil:
		return transient{err}
	default:
		r.o.count(saved, streamed)
		if keeping {
			r.keep(saved, h, kept)
		}
	}
	return nil
}

// fits reports whether n more records may be held for the after-store hook.
func (r *fileRun) fits(n int) bool { return r.insertedRec+n <= hookRecords }

// keep holds a report this file inserted for the after-store hook, if it fits.
func (r *fileRun) keep(sv store.Saved, h *dmarc.Report, recs []dmarc.Record) {
	if !sv.Inserted || !r.fits(len(recs)) {
		return
	}
	r.inserted = append(r.inserted, store.NewReport{ID: sv.ReportID, Header: h, Records: recs})
	r.insertedRec += len(recs)
}

// flush stores the collected complete reports.
func (r *fileRun) flush() error {
	saved, err := r.svc.store.SaveParsed(r.ctx, r.id, r.pending)
	if err != nil {
		return err
	}
	for k, sv := range saved {
		r.o.count(sv, len(r.pending[k].Records))
		r.keep(sv, r.pending[k].Header, r.pending[k].Records)
	}
	r.pending, r.pendingRecs = r.pending[:0], 0
	return nil
}

func (r *fileRun) flushTransient() error {
	if err := r.flush(); err != nil {
		return transient{err}
	}
	return nil
}

// readUpTo reads at most n records; complete says the report ended within them.
func readUpTo(next func() (dmarc.Record, error), n int) ([]dmarc.Record, bool, error) {
	var out []dmarc.Record
	for len(out) < n {
		r, err := next()
		if errors.Is(err, io.EOF) {
			return out, true, nil
		}
		if err != nil {
			return nil, false, err
		}
		out = append(out, r)
	}
	return out, false, nil
}

// ParseResult is what a report:parse task leaves as its result (shown in the queue monitor and
// by GET /tasks/status/{id}): the file's outcome, the same as GET /api/ingests/{id} says. The
// task of files accepted together leaves ParseBatchResult.
type ParseResult struct {
	IngestID int64  `json:"ingest_id"`
	Status   string `json:"status"`
	Reports  int    `json:"reports"`
	Reason   string `json:"reason,omitempty"`
}

// ParseBatchResult is the result of a task for several files: each file's outcome.
type ParseBatchResult struct {
	Files []ParseResult `json:"files"`
}

// HandleParse is the report:parse task handler. A file rejected for its content (unreadable,
// not a report, over a limit) is an outcome, recorded on the ingest: the task completes, so
// asynq neither retries nor archives it and its failure rate means infrastructure trouble
// only. Errors of the infrastructure (database down) are returned and retried with backoff;
// for a task of several files the retry finds the finished ones done and redoes the others.
func (s *Service) HandleParse(ctx context.Context, t *asynq.Task) error {
	var p tasks.ReportParsePayload
	if err := tasks.Decode(t, &p); err != nil {
		return err
	}
	ids := p.IDs()
	if len(ids) == 0 {
		return fmt.Errorf("ingest: %s task names no file: %w", t.Type(), asynq.SkipRetry)
	}
	res, err := s.ProcessBatch(ctx, ids)
	if err != nil {
		s.NoteOutage(err)
		return err
	}
	// The outcomes were committed asynchronously: make them durable before the task completes
	// (or is retried for the files left), or a database crash could put a file back to pending
	// with nothing queued to retry it.
	if derr := s.store.Durable(ctx); derr != nil {
		s.NoteOutage(derr)
		return fmt.Errorf("ingest %v: %w", ids, derr)
	}
	results := make([]ParseResult, 0, len(res))
	for _, r := range res {
		if r.Err != nil && !errors.Is(r.Err, ErrPermanent) {
			s.NoteOutage(r.Err)
			return r.Err
		}
		if r.Err != nil {
			s.log.Info("file rejected for its content; recorded on the ingest", "ingest_id", r.IngestID, "reason", r.Reason)
		}
		results = append(results, ParseResult{IngestID: r.IngestID, Status: r.Status, Reports: r.Reports, Reason: r.Reason})
	}
	if w := t.ResultWriter(); w != nil {
		var b []byte
		if len(results) == 1 {
			b, _ = json.Marshal(results[0])
		} else {
			b, _ = json.Marshal(ParseBatchResult{Files: results})
		}
		if _, err := w.Write(b); err != nil {
			// The outcome is in the database; a result the queue could not keep loses nothing.
			s.log.Debug("could not write the task result", "ingest_ids", ids, "err", err)
		}
	}
	return nil
}

// SweepBatch bounds one sweep; the next period picks up the rest.
const SweepBatch = 5000

// Sweep re-enqueues files pending for longer than grace and returns how many it enqueued.
func (s *Service) Sweep(ctx context.Context, grace time.Duration) (int, error) {
	n, err := s.requeueStale(ctx, s.now().Add(-grace))
	if err != nil || n == 0 {
		return n, err
	}
	s.log.Info("sweep re-enqueued pending files", "count", n)
	return n, nil
}

// requeueStale enqueues again up to SweepBatch files pending since before and marks them
// touched, so that the next round (or sweep) moves on to others; it says how many it took.
func (s *Service) requeueStale(ctx context.Context, before time.Time) (int, error) {
	ids, err := s.store.StalePending(ctx, before, SweepBatch)
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	if err := s.requeueAll(ctx, ids); err != nil {
		return 0, err
	}
	return len(ids), s.store.TouchIngests(ctx, ids)
}

func (s *Service) requeueAll(ctx context.Context, ids []int64) error {
	for _, id := range ids {
		if err := s.requeue(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// requeue enqueues a parse task, reviving one that asynq archived after its retries ran out
// (the database was down for long) or kept as completed while the file stayed pending.
func (s *Service) requeue(ctx context.Context, id int64) error {
	t, err := tasks.NewReportParseTask(id)
	if err != nil {
		return err
	}
	_, err = s.enq.EnqueueContext(ctx, t)
	if errors.Is(err, asynq.ErrTaskIDConflict) && s.inspector != nil {
		info, ierr := s.inspector.GetTaskInfo(tasks.QueueIngest, tasks.ReportParseTaskID(id))
		if ierr != nil || (info.State != asynq.TaskStateArchived && info.State != asynq.TaskStateCompleted) {
			return nil // queued, running or retrying: leave it be
		}
		if derr := s.inspector.DeleteTask(tasks.QueueIngest, info.ID); derr != nil {
			return fmt.Errorf("ingest: revive task for %d: %w", id, derr)
		}
		_, err = s.enq.EnqueueContext(ctx, t)
	}
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("ingest: re-enqueue %d: %w", id, err)
	}
	return nil
}

// HandleSweep is the ingest:sweep task handler.
func (s *Service) HandleSweep(grace time.Duration) asynq.HandlerFunc {
	return func(ctx context.Context, t *asynq.Task) error {
		_, err := s.Sweep(ctx, grace)
		return err
	}
}
