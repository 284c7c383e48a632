// Package ingest moves report files from their sources (upload, import, mailbox) into the
// store: it keeps the original durably, hands it to a worker through a report:parse task, and
// there unwraps, parses and stores every report inside, ending each file processed, duplicate
// or failed with a reason. A periodic sweep re-enqueues files left pending, so losing Redis
// loses no report.
package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/klauspost/compress/gzip"

	"github.com/vigilhq/vigil/pkg/dmarc"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/unwrap"
	"github.com/vigilhq/vigil/tasks"
)

// Enqueuer is the part of *asynq.Client the pipeline needs.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Limits bound the work one file may cause.
type Limits struct {
	FileBytes int64
	Unwrap    unwrap.Limits
	Parse     dmarc.Limits
}

// Service is the pipeline. Enqueuer may be nil: then files are only stored and the caller runs
// Process itself (the one-shot import on the embedded default).
type Service struct {
	store     *store.Store
	enq       Enqueuer
	inspector *asynq.Inspector // optional: lets the sweep revive archived tasks
	lim       Limits
	log       *slog.Logger
	now       func() time.Time
	onNew     func(ctx context.Context, ingestID int64) error
}

// OnNewReports sets what runs after a file stored new reports (rollups): typically an
// enqueue. Its failure is logged, not returned: the file is done, and the rollup catch-up
// finds reports no hook handled. Set it before the service is used.
func (s *Service) OnNewReports(fn func(ctx context.Context, ingestID int64) error) { s.onNew = fn }

// New builds the pipeline.
func New(st *store.Store, enq Enqueuer, inspector *asynq.Inspector, lim Limits, log *slog.Logger) *Service {
	return &Service{store: st, enq: enq, inspector: inspector, lim: lim, log: log, now: time.Now}
}

// File is what a source hands over.
type File struct {
	Name       string // as the sender named it: a label only, never a path
	Source     string // upload, import, imap
	SourceRef  string
	ReceivedAt time.Time
	Data       []byte
}

// Accept outcomes, as the upload API reports them.
const (
	Accepted  = "accepted"
	Duplicate = "duplicate"
	Rejected  = "rejected"
)

// Result tells a source what became of one file.
type Result struct {
	IngestID int64
	Status   string // accepted, duplicate, rejected
	Error    string
}

// ErrRejected marks files refused before storage (empty, too large).
var ErrRejected = errors.New("file rejected")

// Accept stores a file durably and enqueues its parsing. The same bytes twice are one file.
// A failed enqueue is logged, not returned: the file is safe and the sweep will enqueue it.
func (s *Service) Accept(ctx context.Context, f File) (Result, error) {
	if len(f.Data) == 0 {
		return Result{Status: Rejected, Error: "empty file"}, nil
	}
	if int64(len(f.Data)) > s.lim.FileBytes {
		return Result{Status: Rejected, Error: fmt.Sprintf("file is larger than the %d-byte limit (VIGIL_MAX_FILE_BYTES)", s.lim.FileBytes)}, nil
	}
	sum := sha256.Sum256(f.Data)
	enc, data, err := encodeRaw(f.Data)
	if err != nil {
		return Result{}, err
	}
	if f.ReceivedAt.IsZero() {
		f.ReceivedAt = s.now()
	}
	ing, created, err := s.store.CreateIngest(ctx, store.NewFile{SHA256: hex.EncodeToString(sum[:]), Filename: f.Name,
		Source: f.Source, SourceRef: f.SourceRef, Size: int64(len(f.Data)), ReceivedAt: f.ReceivedAt, Encoding: enc, Data: data})
	if err != nil {
		return Result{}, fmt.Errorf("ingest: accept %q: %w", f.Name, err)
	}
	if !created {
		return Result{IngestID: ing.ID, Status: Duplicate, Error: fmt.Sprintf("the same file was already received as ingest %d", ing.ID)}, nil
	}
	s.enqueue(ctx, ing.ID)
	return Result{IngestID: ing.ID, Status: Accepted}, nil
}

func (s *Service) enqueue(ctx context.Context, id int64) {
	if s.enq == nil {
		return
	}
	t, err := tasks.NewReportParseTask(id)
	if err == nil {
		_, err = s.enq.EnqueueContext(ctx, t)
	}
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		s.log.Warn("enqueue failed; the sweep will retry", "ingest_id", id, "err", err)
	}
}

// Raw files already compressed are kept as they are; others are gzipped (reports compress
// about 30:1), so keeping every original stays cheap.
func encodeRaw(b []byte) (string, []byte, error) {
	if bytes.HasPrefix(b, []byte{0x1f, 0x8b}) || bytes.HasPrefix(b, []byte("PK\x03\x04")) {
		return "identity", b, nil
	}
	var buf bytes.Buffer
	buf.Grow(len(b)/8 + 64)
	zw := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(zw)
	zw.Reset(&buf)
	if _, err := zw.Write(b); err != nil {
		return "", nil, fmt.Errorf("ingest: compress original: %w", err)
	}
	if err := zw.Close(); err != nil {
		return "", nil, fmt.Errorf("ingest: compress original: %w", err)
	}
	return "gzip", buf.Bytes(), nil
}

// gzipWriters recycles compressors: a new flate writer allocates and clears about 1 MB, which
// at thousands of small files a second costs more than compressing them. klauspost/compress
// writes the same gzip format two to three times faster than the standard library.
var gzipWriters = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed) // a valid level never errors
	return zw
}}

func decodeRaw(f store.RawFile, max int64) ([]byte, error) {
	switch f.Encoding {
	case "identity":
		return f.Data, nil
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(f.Data))
		if err != nil {
			return nil, fmt.Errorf("stored original of ingest %d is unreadable: %w", f.IngestID, err)
		}
		b, err := io.ReadAll(io.LimitReader(zr, max+1))
		if err != nil {
			return nil, fmt.Errorf("stored original of ingest %d is unreadable: %w", f.IngestID, err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("stored original of ingest %d has unknown encoding %q", f.IngestID, f.Encoding)
}
