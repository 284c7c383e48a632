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
	"sync/atomic"
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
	// MaxAttempts bounds the parse attempts of one file (0: no bound). A file whose attempts
	// keep ending without an outcome (its reports refused by the database, or a worker that
	// dies on it) would otherwise be retried for ever; past the bound it fails with the reason.
	MaxAttempts int
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
	onNew     func(ctx context.Context, ingestID int64, inserted []store.NewReport) error
	kinds     map[unwrap.Format]KindHandler // report kinds other than DMARC aggregate
	batches   map[unwrap.Format]KindBatch   // the same, stored a batch of files at a time
	obs       Observer
	fileLevel slog.Level // of the one line per processed file
	// outage is set when a task met the database or Redis unreachable; Watch recovers once
	// they answer again.
	outage atomic.Bool
}

// LogFilesAt sets the level of the line logged for each processed file (Info by default):
// `api import` lowers it to Debug, so that thousands of them do not garble its progress bar.
// Set it before the service is used.
func (s *Service) LogFilesAt(l slog.Level) { s.fileLevel = l }

// OnNewReports sets what runs after a file stored new reports (rollups), with the reports it
// inserted, header and records, as far as they fit hookRecords records (the hook finds the
// others by the ingest id). Its failure is logged, not returned: the file is done, and the
// rollup catch-up finds reports no hook handled. Set it before the service is used.
func (s *Service) OnNewReports(fn func(ctx context.Context, ingestID int64, inserted []store.NewReport) error) {
	s.onNew = fn
}

// KindResult is what a KindHandler did with one payload.
type KindResult struct {
	// Duplicate: the report was stored before from another file.
	Duplicate bool
	// Problem is why the payload is no report of its kind (recorded on the file; the other
	// parts of the file are still read).
	Problem error
	// Err is an error of the infrastructure: the whole file stays pending and is retried.
	Err error
}

// KindHandler stores the report in one payload of a kind other than DMARC aggregate (SMTP TLS
// reports, failure reports); the packages that own those kinds provide one each. It must be
// idempotent: a retried file finds its report stored from this same file, which is not a
// duplicate.
type KindHandler func(ctx context.Context, ingestID int64, p unwrap.Part) KindResult

// HandleKind routes the payloads of format f to h instead of recording them as "not stored
// yet". Set it before the service is used.
func (s *Service) HandleKind(f unwrap.Format, h KindHandler) {
	if s.kinds == nil {
		s.kinds = map[unwrap.Format]KindHandler{}
	}
	s.kinds[f] = h
}

// KindBatch stores the reports of one kind for a whole batch of files at once: Parse runs as
// each payload is read, Save once for the reports parsed from every file of a ProcessBatch (or
// sooner when one file holds many), so that small reports arriving one per file (an SMTP TLS
// report per HTTPS POST) share their statements and their commit instead of paying one
// transaction each.
type KindBatch struct {
	// Parse reads one payload; an error is why it is no report of its kind (recorded on the
	// file, the other parts of the file are still read).
	Parse func(p unwrap.Part) (any, error)
	// Save stores the parsed reports in one transaction and says for each whether it was
	// stored before from another file. Items of one file may repeat, and two files of a
	// batch may hold the same report (the later one is then a duplicate). An error is of
	// the infrastructure: nothing was stored, and the files stay pending. It must be
	// idempotent as a KindHandler is.
	Save func(ctx context.Context, items []KindItem) (duplicate []bool, err error)
}

// KindItem is one parsed report of a KindBatch with the file it came from.
type KindItem struct {
	IngestID int64
	Report   any // what Parse returned
}

// HandleKindBatch routes the payloads of format f to k (it wins over a HandleKind handler of
// the same format). Set it before the service is used.
func (s *Service) HandleKindBatch(f unwrap.Format, k KindBatch) {
	if s.batches == nil {
		s.batches = map[unwrap.Format]KindBatch{}
	}
	s.batches[f] = k
}

// Observer hears what became of each file, for the metrics (pkg/metrics). Its methods must be
// quick and never fail: they run on the ingestion path.
type Observer interface {
	// FileReceived: a file handed to Accept, its source and outcome (accepted, duplicate,
	// rejected), and its size.
	FileReceived(source, outcome string, bytes int64)
	// FileProcessed: a stored file parsed to an end (processed, duplicate, failed) and the new
	// reports and records it stored.
	FileProcessed(outcome string, reports, records int)
}

// Observe sets the observer. Set it before the service is used.
func (s *Service) Observe(o Observer) { s.obs = o }

// New builds the pipeline.
func New(st *store.Store, enq Enqueuer, inspector *asynq.Inspector, lim Limits, log *slog.Logger) *Service {
	return &Service{store: st, enq: enq, inspector: inspector, lim: lim, log: log, now: time.Now, fileLevel: slog.LevelInfo}
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
	// Earlier is, for a duplicate, the status of the earlier copy (pending, processed,
	// duplicate or failed) as the upload found it. A pending one was enqueued again: its task
	// may have been lost with Redis, or never sent when a crash came between storing and
	// queueing, and a sender that retries must not be told "duplicate" of a file nobody parses.
	Earlier string
}

// ErrRejected marks files refused before storage (empty, too large).
var ErrRejected = errors.New("file rejected")

// Accept stores a file durably and enqueues its parsing. The same bytes twice are one file.
// A failed enqueue is logged, not returned: the file is safe and the sweep will enqueue it.
func (s *Service) Accept(ctx context.Context, f File) (Result, error) {
	res, err := s.AcceptBatch(ctx, []File{f})
	if err != nil {
		return Result{}, fmt.Errorf("ingest: accept %q: %w", f.Name, err)
	}
	return res[0], nil
}

// Batches handed to AcceptBatch and ProcessBatch stay within BatchFiles files and BatchBytes
// bytes (a single larger file makes a batch of its own): large enough that the per-statement
// and per-commit costs of the database are spread over many small reports, small enough that
// a batch's originals sit in memory together without concern (its parsed reports are stored
// every batchRecords records). Measured on 8,000 small reports through `api import`
// (docs/performance.md, issue 9): 32 files per batch gave 1,050 reports/s on SQLite and
// 1,670 on PostgreSQL, 256 files 2,300 and 2,420; 512 gained little more for 25 MB more RSS.
const (
	BatchFiles = 256
	BatchBytes = 4 << 20
)

// BatchLen says how many of the files whose sizes are given, from the first, make the next
// batch: at least one.
func BatchLen(sizes []int64) int {
	var total int64
	for n, size := range sizes {
		if n == BatchFiles || (n > 0 && total+size > BatchBytes) {
			return n
		}
		total += size
	}
	return len(sizes)
}

// AcceptBatch is Accept for several files, with one durable commit for all of them (the commit
// waits for the disk, and is most of the cost of accepting a small file). Results are in the
// order of files; each file is rejected, duplicate or accepted on its own, as with Accept.
// An error means nothing was stored.
func (s *Service) AcceptBatch(ctx context.Context, files []File) ([]Result, error) {
	out := make([]Result, len(files))
	nf := make([]store.NewFile, 0, len(files))
	idx := make([]int, 0, len(files))
	for i, f := range files {
		if len(f.Data) == 0 {
			out[i] = Result{Status: Rejected, Error: "empty file"}
			continue
		}
		if int64(len(f.Data)) > s.lim.FileBytes {
			out[i] = Result{Status: Rejected, Error: fmt.Sprintf("file is larger than the %d-byte limit (VIGIL_MAX_FILE_BYTES)", s.lim.FileBytes)}
			continue
		}
		sum := sha256.Sum256(f.Data)
		enc, data, err := encodeRaw(f.Data)
		if err != nil {
			return nil, err
		}
		if f.ReceivedAt.IsZero() {
			f.ReceivedAt = s.now()
		}
		nf = append(nf, store.NewFile{SHA256: hex.EncodeToString(sum[:]), Filename: CleanName(f.Name), Source: f.Source,
			SourceRef: f.SourceRef, Size: int64(len(f.Data)), ReceivedAt: f.ReceivedAt, Encoding: enc, Data: data})
		idx = append(idx, i)
	}
	if len(nf) == 0 {
		return out, nil
	}
	stored, err := s.store.CreateIngests(ctx, nf)
	if err != nil {
		return nil, fmt.Errorf("ingest: accept: %w", err)
	}
	var dups, created []int64
	for k, st := range stored {
		if !st.Created {
			out[idx[k]] = Result{IngestID: st.ID, Status: Duplicate}
			dups = append(dups, st.ID)
			continue
		}
		out[idx[k]] = Result{IngestID: st.ID, Status: Accepted}
		created = append(created, st.ID)
	}
	s.enqueue(ctx, created)
	if len(dups) > 0 {
		if err := s.describeEarlier(ctx, out, dups); err != nil {
			return nil, err
		}
	}
	if s.obs != nil {
		for i, r := range out {
			s.obs.FileReceived(files[i].Source, r.Status, int64(len(files[i].Data)))
		}
	}
	return out, nil
}

// describeEarlier tells each duplicate in out the state of its earlier copy and enqueues the
// earlier copies still pending again (reviving a task asynq archived or completed, as the
// sweep does): the first upload of these bytes may have been stored and never queued.
func (s *Service) describeEarlier(ctx context.Context, out []Result, ids []int64) error {
	ings, err := s.store.GetIngests(ctx, ids)
	if err != nil {
		return fmt.Errorf("ingest: accept: %w", err)
	}
	status := make(map[int64]store.Ingest, len(ings))
	for _, ing := range ings {
		status[ing.ID] = ing
	}
	requeued := map[int64]bool{}
	for i, r := range out {
		if r.Status != Duplicate {
			continue
		}
		ing := status[r.IngestID]
		out[i].Earlier = ing.Status
		switch ing.Status {
		case store.StatusPending:
			out[i].Error = fmt.Sprintf("the same file was already received as ingest %d, still pending: queued again", r.IngestID)
			if s.enq != nil && !requeued[r.IngestID] {
				requeued[r.IngestID] = true
				if err := s.requeue(ctx, r.IngestID); err != nil {
					s.log.Warn("re-enqueue of a pending duplicate failed; the sweep will retry", "ingest_id", r.IngestID, "err", err)
				}
			}
		case store.StatusFailed:
			out[i].Error = fmt.Sprintf("the same file was already received as ingest %d, which failed: %s", r.IngestID, ing.Error)
		default:
			out[i].Error = fmt.Sprintf("the same file was already received as ingest %d (%s)", r.IngestID, ing.Status)
		}
	}
	return nil
}

// enqueue queues the files accepted together as one task: the worker stores them together.
func (s *Service) enqueue(ctx context.Context, ids []int64) {
	if s.enq == nil || len(ids) == 0 {
		return
	}
	t, err := tasks.NewReportParseBatchTask(ids)
	if err == nil {
		_, err = s.enq.EnqueueContext(ctx, t)
	}
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		s.log.Warn("enqueue failed; the sweep will retry", "ingest_ids", ids, "err", err)
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

// decodeRaw returns the original bytes of a stored file; size, when known, is their length.
func decodeRaw(f store.RawFile, size, max int64) ([]byte, error) {
	switch f.Encoding {
	case "identity":
		return f.Data, nil
	case "gzip":
		zr, _ := gzipReaders.Get().(*gzip.Reader)
		var err error
		if zr == nil {
			zr, err = gzip.NewReader(bytes.NewReader(f.Data))
		} else {
			err = zr.Reset(bytes.NewReader(f.Data))
		}
		if err != nil {
			return nil, fmt.Errorf("stored original of ingest %d is unreadable: %w", f.IngestID, err)
		}
		defer gzipReaders.Put(zr)
		// One allocation of the right size instead of ReadAll's doubling from 512 bytes.
		buf := bytes.NewBuffer(make([]byte, 0, min(max, size)+bytes.MinRead))
		if _, err := buf.ReadFrom(io.LimitReader(zr, max+1)); err != nil {
			return nil, fmt.Errorf("stored original of ingest %d is unreadable: %w", f.IngestID, err)
		}
		return buf.Bytes(), nil
	}
	return nil, fmt.Errorf("stored original of ingest %d has unknown encoding %q", f.IngestID, f.Encoding)
}

// gzipReaders recycles decompressors (each holds a 32 KB window and Huffman tables).
var gzipReaders sync.Pool

// Original opens the original bytes of a stored file for reading as a stream (for the raw
// download), undoing the compression the store applied; no size cap, as nothing is buffered.
func Original(f store.RawFile) (io.Reader, error) {
	switch f.Encoding {
	case "identity":
		return bytes.NewReader(f.Data), nil
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(f.Data))
		if err != nil {
			return nil, fmt.Errorf("stored original of ingest %d is unreadable: %w", f.IngestID, err)
		}
		zr.Multistream(false) // one member was written; an original that was itself gzip stays whole
		return zr, nil
	}
	return nil, fmt.Errorf("stored original of ingest %d has unknown encoding %q", f.IngestID, f.Encoding)
}
