package export

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/hibiken/asynq"
	"gorm.io/gorm"

	"github.com/vigilhq/vigil/pkg/analytics"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/tasks"
)

// Defaults of the configuration (VIGIL_EXPORT_*).
const (
	DefaultRowLimit  = 100_000
	DefaultRetention = 24 * time.Hour
)

// Enqueuer is the part of *asynq.Client the API needs.
type Enqueuer interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Deps are what the service needs. Queue may be nil (no asynchronous exports: an export over
// the limit answers 503); Dir is where rendered files are kept until their retention ends,
// and must be shared by the api and the workers.
type Deps struct {
	Store     *store.Store
	Analytics *analytics.API
	Queue     Enqueuer
	Dir       string
	RowLimit  int64         // 0: DefaultRowLimit
	Retention time.Duration // 0: DefaultRetention
	Log       *slog.Logger
	Now       func() time.Time
}

// Service renders exports, in the request or on a worker.
type Service struct {
	store     *store.Store
	db        *gorm.DB
	analytics *analytics.API
	queue     Enqueuer
	dir       string
	limit     int64
	retention time.Duration
	log       *slog.Logger
	now       func() time.Time
}

// New builds the service.
func New(d Deps) *Service {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.RowLimit <= 0 {
		d.RowLimit = DefaultRowLimit
	}
	if d.Retention <= 0 {
		d.Retention = DefaultRetention
	}
	return &Service{store: d.Store, db: d.Store.DB(), analytics: d.Analytics, queue: d.Queue, dir: d.Dir, limit: d.RowLimit,
		retention: d.Retention, log: d.Log, now: d.Now}
}

// Formats and their media types (DESIGN.md).
const (
	TypeCSV  = "text/csv; charset=utf-8"
	TypeXLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
	TypePDF  = "application/pdf"
)

func contentType(format string) string {
	switch format {
	case "csv":
		return TypeCSV
	case "xlsx":
		return TypeXLSX
	}
	return TypePDF
}

// Filename is the timestamped name of an export file.
func Filename(view, format string, at time.Time) string {
	return fmt.Sprintf("vigil-%s-%s.%s", view, stamp(at), format)
}

// Render writes view (reports, records, sources, workbook or report) in format to w, whatever
// its size; the API decides before whether it is small enough for a request.
func (s *Service) Render(ctx context.Context, w io.Writer, viewName, format string, f store.Filter) (int64, error) {
	switch {
	case viewName == "report" && format == "pdf":
		sum, err := s.Collect(ctx, f)
		if err != nil {
			return 0, err
		}
		return 1, writePDF(w, sum)
	case viewName == "workbook" && format == "xlsx":
		return s.writeWorkbook(ctx, w, f)
	}
	v, ok := s.view(viewName)
	if !ok {
		return 0, fmt.Errorf("export: no view %q", viewName)
	}
	if format == "xlsx" {
		return writeXLSX(ctx, w, v, f)
	}
	return writeCSV(ctx, w, v, f)
}

// PDF renders the summary PDF of f (the digest attaches it).
func (s *Service) PDF(ctx context.Context, w io.Writer, f store.Filter) error {
	_, err := s.Render(ctx, w, "report", "pdf", f)
	return err
}

// Workbook renders the one-sheet-per-view workbook of f.
func (s *Service) Workbook(ctx context.Context, w io.Writer, f store.Filter) error {
	_, err := s.writeWorkbook(ctx, w, f)
	return err
}

// writeWorkbook writes a summary sheet, then reports, records and sources, one sheet each.
func (s *Service) writeWorkbook(ctx context.Context, w io.Writer, f store.Filter) (int64, error) {
	sum, err := s.analytics.Query(ctx, f)
	if err != nil {
		return 0, err
	}
	k, err := sum.Summary(ctx)
	if err != nil {
		return 0, err
	}
	b, err := newBook()
	if err != nil {
		return 0, err
	}
	kv := [][2]any{{"generated_at", s.now().UTC().Format(time.RFC3339)}, {"filters", filterSummary(f)},
		{"total_reports", k.TotalReports}, {"total_messages", k.TotalMessages}, {"dmarc_pass_messages", k.DMARCPassMessages},
		{"dmarc_fail_messages", k.DMARCFailMessages}, {"dmarc_pass_rate", k.DMARCPassRate}, {"domains", k.Domains},
		{"reporters", k.Reporters}, {"sources", k.Sources}}
	if err := b.writeKV("summary", kv); err != nil {
		b.close()
		return 0, err
	}
	var total int64
	for _, name := range Views {
		v, _ := s.view(name)
		n, err := b.writeView(ctx, v, f)
		total += n
		if err != nil {
			b.close()
			return total, err
		}
	}
	return total, b.finish(w)
}

// rows is how many rows an export of view would hold: what the row limit is checked against.
func (s *Service) rows(ctx context.Context, viewName string, f store.Filter) (int64, error) {
	switch viewName {
	case "report":
		return 0, nil // a summary: bounded tables from the rollups, whatever the data size
	case "workbook":
		var total int64
		for _, name := range Views {
			v, _ := s.view(name)
			n, err := v.count(ctx, f)
			if err != nil {
				return 0, err
			}
			total += n
		}
		return total, nil
	}
	v, ok := s.view(viewName)
	if !ok {
		return 0, fmt.Errorf("export: no view %q", viewName)
	}
	return v.count(ctx, f)
}

// File is an export rendered by a worker (a row of export_files).
type File struct {
	ID         string `gorm:"primaryKey"`
	UserID     int64
	View       string
	Format     string
	Filters    string
	Status     string
	Filename   string
	RowsCount  int64
	SizeBytes  int64
	Error      string
	CreatedAt  int64 `gorm:"autoCreateTime:false"`
	FinishedAt *int64
	ExpiresAt  int64
}

// TableName is export_files.
func (File) TableName() string { return "export_files" }

// Result is an export:render task's result (TaskStatus.result, "ExportResult" in the spec).
type Result struct {
	ExportID    string    `json:"export_id"`
	DownloadURL string    `json:"download_url"`
	Filename    string    `json:"filename"`
	ContentType string    `json:"content_type"`
	Rows        int64     `json:"rows"`
	SizeBytes   int64     `json:"size_bytes"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// DownloadPath is where a rendered export is served.
func DownloadPath(id string) string { return "/api/export/files/" + id }

func (s *Service) path(id, format string) string { return filepath.Join(s.dir, id+"."+format) }

// enqueue records an export and queues its rendering; the answer is its task id.
func (s *Service) enqueue(ctx context.Context, userID int64, viewName, format string, f store.Filter) (string, error) {
	if s.queue == nil {
		return "", errNoQueue
	}
	fj, err := json.Marshal(f)
	if err != nil {
		return "", err
	}
	now := s.now()
	row := File{ID: rand.Text(), UserID: userID, View: viewName, Format: format, Filters: string(fj), Status: "pending",
		CreatedAt: now.Unix(), ExpiresAt: now.Add(s.retention).Unix()}
	if err := s.db.WithContext(ctx).Create(&row).Error; err != nil {
		return "", fmt.Errorf("export: record: %w", err)
	}
	t, err := tasks.NewExportRenderTask(row.ID, userID, s.retention)
	if err != nil {
		return "", err
	}
	info, err := s.queue.EnqueueContext(ctx, t)
	if err != nil {
		return "", fmt.Errorf("export: enqueue: %w", err)
	}
	return info.ID, nil
}

var errNoQueue = errors.New("export: no task queue in this process")

// HandleRender is the export:render handler. It is idempotent: a file already rendered (a
// retry after the result was lost, a duplicate delivery) is answered again, not re-rendered;
// a half-written file from a killed attempt is replaced, since the file only gets its final
// name once complete.
func (s *Service) HandleRender(ctx context.Context, t *asynq.Task) error {
	var p tasks.ExportRenderPayload
	if err := tasks.Decode(t, &p); err != nil {
		return err
	}
	var row File
	err := s.db.WithContext(ctx).Take(&row, "id = ?", p.ExportID).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return fmt.Errorf("export %s: gone (expired or never recorded): %w", p.ExportID, asynq.SkipRetry)
	}
	if err != nil {
		return fmt.Errorf("export %s: %w", p.ExportID, err)
	}
	final := s.path(row.ID, row.Format)
	if row.Status != "done" {
		if err := s.renderFile(ctx, &row, final); err != nil {
			return err
		}
	} else if _, err := os.Stat(final); err != nil {
		return fmt.Errorf("export %s: file missing: %w", row.ID, asynq.SkipRetry)
	}
	res, err := json.Marshal(Result{ExportID: row.ID, DownloadURL: DownloadPath(row.ID), Filename: row.Filename,
		ContentType: contentType(row.Format), Rows: row.RowsCount, SizeBytes: row.SizeBytes, ExpiresAt: time.Unix(row.ExpiresAt, 0).UTC()})
	if err != nil {
		return err
	}
	if w := t.ResultWriter(); w != nil {
		if _, err := w.Write(res); err != nil {
			return fmt.Errorf("export %s: write result: %w", row.ID, err)
		}
	}
	return nil
}

func (s *Service) renderFile(ctx context.Context, row *File, final string) error {
	var f store.Filter
	if err := json.Unmarshal([]byte(row.Filters), &f); err != nil {
		return fmt.Errorf("export %s: filters: %v: %w", row.ID, err, asynq.SkipRetry)
	}
	if err := os.MkdirAll(s.dir, 0o750); err != nil {
		return fmt.Errorf("export dir: %w", err)
	}
	tmp, err := os.CreateTemp(s.dir, row.ID+".*.part")
	if err != nil {
		return fmt.Errorf("export %s: %w", row.ID, err)
	}
	defer os.Remove(tmp.Name()) // gone after the rename; cleans up a failed attempt
	n, err := s.Render(ctx, tmp, row.View, row.Format, f)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("export %s: render: %w", row.ID, err)
	}
	st, err := os.Stat(tmp.Name())
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return fmt.Errorf("export %s: %w", row.ID, err)
	}
	now := s.now().Unix()
	created := time.Unix(row.CreatedAt, 0)
	row.Status, row.RowsCount, row.SizeBytes, row.FinishedAt, row.Filename = "done", n, st.Size(), &now, Filename(row.View, row.Format, created)
	return s.db.WithContext(ctx).Model(&File{}).Where("id = ?", row.ID).
		Updates(map[string]any{"status": row.Status, "rows_count": n, "size_bytes": row.SizeBytes, "finished_at": now, "filename": row.Filename}).Error
}

// HandleCleanup deletes exports past their retention, rows and files, and stray partial
// files older than the retention (an attempt killed mid-write).
func (s *Service) HandleCleanup(ctx context.Context, _ *asynq.Task) error {
	_, err := s.Cleanup(ctx)
	return err
}

// Cleanup is HandleCleanup's work; it returns how many exports it removed.
func (s *Service) Cleanup(ctx context.Context) (int, error) {
	now := s.now()
	var old []File
	if err := s.db.WithContext(ctx).Where("expires_at <= ?", now.Unix()).Find(&old).Error; err != nil {
		return 0, fmt.Errorf("export cleanup: %w", err)
	}
	for _, r := range old {
		if err := os.Remove(s.path(r.ID, r.Format)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return 0, fmt.Errorf("export cleanup %s: %w", r.ID, err)
		}
		if err := s.db.WithContext(ctx).Delete(&File{}, "id = ?", r.ID).Error; err != nil {
			return 0, fmt.Errorf("export cleanup %s: %w", r.ID, err)
		}
	}
	parts, _ := filepath.Glob(filepath.Join(s.dir, "*.part"))
	for _, p := range parts {
		if st, err := os.Stat(p); err == nil && now.Sub(st.ModTime()) > s.retention {
			_ = os.Remove(p)
		}
	}
	return len(old), nil
}
