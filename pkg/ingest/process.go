package ingest

import (
	"context"
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
// on the ingest; the task handler turns it into asynq.SkipRetry.
var ErrPermanent = errors.New("permanent failure")

// transient marks an error of the infrastructure (database, context) met while storing: the
// whole file is retried later and nothing about the file is recorded as failed.
type transient struct{ err error }

func (t transient) Error() string { return t.err.Error() }
func (t transient) Unwrap() error { return t.err }

// outcome collects what one file yielded, part by part.
type outcome struct {
	stored, dups int
	problems     []string
}

func (o *outcome) count(s store.Saved) {
	if s.Duplicate {
		o.dups++
	} else {
		o.stored++
	}
}

func (o *outcome) fail(path string, err error) {
	if path == "" {
		o.problems = append(o.problems, err.Error())
		return
	}
	o.problems = append(o.problems, fmt.Sprintf("%s: %v", path, err))
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

// Reports are read ahead up to prefetch records: complete ones (nearly all) are collected and
// stored together, up to flushRecords records or flushReports reports at a time, in as few
// statements as the database allows; a longer report streams into a transaction of its own.
const (
	prefetch     = 1000
	flushRecords = 4000
	flushReports = 100
)

// Process unwraps, parses and stores one pending file. It is idempotent: a file that is no
// longer pending is left alone; a re-run after a crash, or a second delivery racing the
// first, finds its own reports stored (linked, not duplicated) and the outcome is recorded
// once. Errors wrapping ErrPermanent concern the file; others are worth retrying.
func (s *Service) Process(ctx context.Context, id int64) error {
	ing, raw, pending, err := s.store.Claim(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("ingest %d does not exist: %w", id, ErrPermanent)
	}
	if err != nil || !pending {
		return err
	}
	run := &fileRun{svc: s, ctx: ctx, id: id}
	data, err := decodeRaw(raw, s.lim.FileBytes)
	if err == nil {
		err = unwrap.Walk(data, s.lim.Unwrap, run.part)
	}
	var tr transient
	if errors.As(err, &tr) {
		return fmt.Errorf("ingest %d: %w", id, tr.err)
	}
	if errors.Is(err, unwrap.ErrUnrecognised) || errors.Is(err, unwrap.ErrEmpty) {
		err = fmt.Errorf("not a DMARC aggregate report: %w", err)
	}
	if err != nil {
		run.o.fail("", err) // what was read before the problem is still stored
	}
	finished, err := run.finalFlush()
	if err != nil {
		return fmt.Errorf("ingest %d: %w", id, err)
	}
	status, reason := run.o.status()
	if !finished {
		if _, err := s.store.Finish(ctx, id, status, reason, run.o.stored+run.o.dups); err != nil {
			return err
		}
	}
	if run.o.stored > 0 && s.onNew != nil {
		if err := s.onNew(ctx, id); err != nil {
			s.log.Warn("after-store hook failed; the rollup catch-up will cover it", "ingest_id", id, "err", err)
		}
	}
	s.log.Info("file processed", "ingest_id", id, "file", ing.Filename, "status", status, "reports", run.o.stored, "duplicates", run.o.dups, "problems", len(run.o.problems))
	if status == store.StatusFailed {
		return fmt.Errorf("ingest %d: %s: %w", id, reason, ErrPermanent)
	}
	return nil
}

// fileRun is one attempt at one file.
type fileRun struct {
	svc         *Service
	ctx         context.Context
	id          int64
	o           outcome
	pending     []store.Parsed
	pendingRecs int
}

// part handles one payload. Problems with the part are noted and the walk goes on (one bad
// report never sinks the others in the same zip); only infrastructure errors stop it.
func (r *fileRun) part(p unwrap.Part) error {
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
	head, complete, err := readUpTo(dec.Next, prefetch)
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
	next := func() (dmarc.Record, error) {
		rec, err := dec.Next()
		if err != nil && !errors.Is(err, io.EOF) {
			parseErr = err
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
		r.o.count(saved)
	}
	return nil
}

// flush stores the collected complete reports.
func (r *fileRun) flush() error {
	saved, err := r.svc.store.SaveParsed(r.ctx, r.id, r.pending)
	if err != nil {
		return err
	}
	for _, sv := range saved {
		r.o.count(sv)
	}
	r.pending, r.pendingRecs = r.pending[:0], 0
	return nil
}

// finalFlush stores the last collected reports and, when they all turn out new (nearly always),
// records the file's outcome in the same statement.
func (r *fileRun) finalFlush() (bool, error) {
	if len(r.pending) == 0 {
		return false, nil
	}
	assumed := r.o
	assumed.stored += len(r.pending)
	status, reason := assumed.status()
	out := store.Outcome{Status: status, Reason: reason, ReportCount: assumed.stored + assumed.dups}
	saved, finished, err := r.svc.store.SaveParsedAndFinish(r.ctx, r.id, r.pending, out)
	if err != nil {
		return false, err
	}
	for _, sv := range saved {
		r.o.count(sv)
	}
	r.pending, r.pendingRecs = r.pending[:0], 0
	return finished, nil
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

// HandleParse is the report:parse task handler.
func (s *Service) HandleParse(ctx context.Context, t *asynq.Task) error {
	var p tasks.ReportParsePayload
	if err := tasks.Decode(t, &p); err != nil {
		return err
	}
	err := s.Process(ctx, p.IngestID)
	if errors.Is(err, ErrPermanent) {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	return err
}

// SweepBatch bounds one sweep; the next period picks up the rest.
const SweepBatch = 5000

// Sweep re-enqueues files pending for longer than grace and returns how many it enqueued.
func (s *Service) Sweep(ctx context.Context, grace time.Duration) (int, error) {
	ids, err := s.store.StalePending(ctx, s.now().Add(-grace), SweepBatch)
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		if err := s.requeue(ctx, id); err != nil {
			return n, err
		}
		n++
	}
	if err := s.store.TouchIngests(ctx, ids); err != nil {
		return n, err
	}
	s.log.Info("sweep re-enqueued pending files", "count", n)
	return n, nil
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
