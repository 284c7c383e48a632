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

// Process unwraps, parses and stores one pending file, in one transaction. It is idempotent:
// a file that is no longer pending is left alone, and a second attempt racing the first rolls
// back. Errors wrapping ErrPermanent concern the file; others are worth retrying.
func (s *Service) Process(ctx context.Context, id int64) error {
	ing, pending, err := s.store.BeginAttempt(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("ingest %d does not exist: %w", id, ErrPermanent)
	}
	if err != nil || !pending {
		return err
	}
	raw, err := s.store.RawFile(ctx, id)
	if err != nil {
		return err
	}
	var o outcome
	var status, reason string
	err = s.store.ProcessFile(ctx, id, func(ft *store.FileTx) error {
		o = outcome{}
		data, err := decodeRaw(raw, s.lim.FileBytes)
		if err == nil {
			err = unwrap.Walk(data, s.lim.Unwrap, func(p unwrap.Part) error { return s.part(ft, p, &o) })
		}
		var tr transient
		if errors.As(err, &tr) {
			return tr.err
		}
		if errors.Is(err, unwrap.ErrUnrecognised) || errors.Is(err, unwrap.ErrEmpty) {
			err = fmt.Errorf("not a DMARC aggregate report: %w", err)
		}
		if err != nil {
			o.fail("", err)
		}
		status, reason = o.status()
		return ft.Finish(status, reason, o.stored+o.dups)
	})
	if errors.Is(err, store.ErrAlreadyFinished) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("ingest %d: %w", id, err)
	}
	s.log.Info("file processed", "ingest_id", id, "file", ing.Filename, "status", status, "reports", o.stored, "duplicates", o.dups, "problems", len(o.problems))
	if status == store.StatusFailed {
		return fmt.Errorf("ingest %d: %s: %w", id, reason, ErrPermanent)
	}
	return nil
}

// part handles one payload. Problems with the part are noted and the walk goes on (one bad
// report never sinks the others in the same zip); only infrastructure errors stop it.
func (s *Service) part(ft *store.FileTx, p unwrap.Part, o *outcome) error {
	switch p.Format {
	case unwrap.FormatTLSRPT:
		o.fail(p.Path, errors.New("SMTP TLS report (RFC 8460) recognised; this report type is not stored yet"))
		return nil
	case unwrap.FormatFailure:
		o.fail(p.Path, errors.New("DMARC failure report (RFC 6591) recognised; this report type is not stored yet"))
		return nil
	case unwrap.FormatJSON:
		o.fail(p.Path, errors.New("JSON but not an SMTP TLS report"))
		return nil
	}
	// DMARC, other XML and unknown bytes all go through the parser: for a non-report it names
	// what it found ("expected <feedback>, found <html>") better than a sniffer can.
	dec := dmarc.NewDecoder(p.Body, s.lim.Parse)
	h, err := dec.Header()
	if err != nil {
		o.fail(p.Path, err)
		return nil
	}
	var parseErr error
	next := func() (dmarc.Record, error) {
		r, err := dec.Next()
		if err != nil && !errors.Is(err, io.EOF) {
			parseErr = err
		}
		return r, err
	}
	saved, err := ft.SaveReport(h, next, dec.Warnings)
	switch {
	case parseErr != nil:
		o.fail(p.Path, parseErr)
	case err != nil:
		return transient{err}
	case saved.Duplicate:
		o.dups++
	default:
		o.stored++
	}
	return nil
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
