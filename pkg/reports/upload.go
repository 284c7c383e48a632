package reports

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vigilhq/vigil/pkg/apiparams"
	"github.com/vigilhq/vigil/pkg/audit"
	"github.com/vigilhq/vigil/pkg/ingest"
	"github.com/vigilhq/vigil/pkg/store"
)

// UploadResult is one file's line in the upload answer.
type UploadResult struct {
	Filename string `json:"filename"`
	IngestID *int64 `json:"ingest_id"`
	Status   string `json:"status"`
	Error    string `json:"error,omitempty"`
	// EarlierStatus is, for a duplicate, the state of the earlier copy: scripts tell one that
	// will still be processed (pending) from one that failed without reading error.
	EarlierStatus string `json:"earlier_status,omitempty"`
}

// recordUpload audits an upload: how many files, with what outcome, and their ingest ids.
func (a *API) recordUpload(c echo.Context, files []UploadResult) {
	counts := map[string]int{}
	var ids []int64
	for _, f := range files {
		counts[f.Status]++
		if f.IngestID != nil {
			ids = append(ids, *f.IngestID)
		}
	}
	a.record(c, audit.Entry{Action: audit.Upload, Details: map[string]any{"files": len(files), "statuses": counts, "ingest_ids": ids}})
}

type spooled struct {
	name    string
	data    []byte // the file, when it was held in memory
	path    string // else its temp file; neither when the part was refused while streaming
	size    int64
	refusal string
}

// contents is the spooled file's bytes.
func (f spooled) contents() ([]byte, error) {
	if f.path == "" {
		return f.data, nil
	}
	data, err := os.ReadFile(f.path)
	if err != nil {
		return nil, fmt.Errorf("read spooled upload: %w", err)
	}
	return data, nil
}

// DefaultSpoolMemory is how much of one request's files is held in memory (a batch's worth,
// ingest.BatchBytes); the rest is spooled to temp files. Creating and removing a temp file per
// part was 70% of the api's CPU for an upload of small reports (1.5 CPU-s per 8,000 files).
const DefaultSpoolMemory = ingest.BatchBytes

// upload streams every part named "files" into memory or a temp file, refusing oversized ones
// while they stream. Only once the whole body is read, within the count and size caps, are the files
// stored: a request over a cap is a 413 that leaves nothing behind.
func (a *API) upload(c echo.Context) error {
	r := c.Request()
	if r.ContentLength > a.Limits.UploadBytes {
		return apiparams.Problem(http.StatusRequestEntityTooLarge, "request body of %d bytes exceeds the %d-byte limit (VIGIL_MAX_UPLOAD_BYTES)", r.ContentLength, a.Limits.UploadBytes)
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType)); err != nil || mt != "multipart/form-data" {
		return apiparams.Problem(http.StatusUnsupportedMediaType, "want multipart/form-data with one or more parts named files")
	}
	r.Body = http.MaxBytesReader(c.Response(), r.Body, a.Limits.UploadBytes)
	files, err := a.spool(r)
	defer func() {
		for _, f := range files {
			if f.path != "" {
				os.Remove(f.path)
			}
		}
	}()
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return apiparams.Problem(http.StatusBadRequest, "parameter files: no part named files in the request")
	}
	out, err := a.storeAll(c, files)
	if err != nil {
		return err
	}
	a.recordUpload(c, out)
	return c.JSON(http.StatusAccepted, map[string]any{"files": out})
}

func (a *API) spool(r *http.Request) ([]spooled, error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, apiparams.Problem(http.StatusBadRequest, "unreadable multipart body: %v", err)
	}
	var files []spooled
	budget := cmp.Or(a.SpoolMemory, DefaultSpoolMemory)
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return files, bodyError(err)
		}
		if part.FormName() != "files" {
			if _, err := io.Copy(io.Discard, part); err != nil {
				return files, bodyError(err)
			}
			continue
		}
		if len(files) == a.Limits.UploadFiles {
			return files, apiparams.Problem(http.StatusRequestEntityTooLarge, "more than %d files in one upload (VIGIL_MAX_UPLOAD_FILES)", a.Limits.UploadFiles)
		}
		f, err := a.spoolPart(part, budget)
		budget -= int64(len(f.data))
		files = append(files, f)
		if err != nil {
			return files, err
		}
	}
}

// spoolPart reads one part: into memory while it fits what is left of the request's memory
// budget, else into a temp file (what was read so far, then the rest).
func (a *API) spoolPart(part io.Reader, budget int64) (spooled, error) {
	f := spooled{name: ingest.CleanName(partName(part))}
	var buf bytes.Buffer
	inMemory := max(0, min(budget, a.Limits.FileBytes))
	n, err := io.Copy(&buf, io.LimitReader(part, inMemory+1))
	if err != nil {
		return f, bodyError(err)
	}
	f.size = n
	if n <= inMemory {
		f.data = buf.Bytes()
		return f, nil
	}
	if n <= a.Limits.FileBytes {
		tmp, err := os.CreateTemp(a.TempDir, "upload-*")
		if err != nil {
			return f, fmt.Errorf("spool upload: %w", err)
		}
		f.path = tmp.Name()
		rest, err := io.Copy(tmp, io.MultiReader(&buf, io.LimitReader(part, a.Limits.FileBytes+1-n)))
		f.size = rest
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return f, bodyError(err)
		}
	}
	if f.size > a.Limits.FileBytes {
		// Drain the rest so the following parts can still be read; it counts against the body cap.
		if _, err := io.Copy(io.Discard, part); err != nil {
			return f, bodyError(err)
		}
		f.refusal = fmt.Sprintf("file is larger than the %d-byte limit (VIGIL_MAX_FILE_BYTES)", a.Limits.FileBytes)
	}
	return f, nil
}

func partName(part io.Reader) string {
	if p, ok := part.(interface{ FileName() string }); ok {
		return p.FileName()
	}
	return ""
}

func bodyError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return apiparams.Problem(http.StatusRequestEntityTooLarge, "request body exceeds the %d-byte limit (VIGIL_MAX_UPLOAD_BYTES)", mbe.Limit)
	}
	return apiparams.Problem(http.StatusBadRequest, "unreadable upload: %v", err)
}

// storeAll stores the files in batches (ingest.BatchLen), as `api import` does: one durable
// commit and one parse task per batch instead of one each, which is most of the cost of
// accepting a small file. Results keep the order of the request's parts.
func (a *API) storeAll(c echo.Context, files []spooled) ([]UploadResult, error) {
	out := make([]UploadResult, len(files))
	var todo []int // indexes of the files to store
	for i, f := range files {
		if f.refusal != "" {
			out[i] = UploadResult{Filename: f.name, Status: ingest.Rejected, Error: f.refusal}
			continue
		}
		todo = append(todo, i)
	}
	sizes := make([]int64, len(todo))
	for k, i := range todo {
		sizes[k] = files[i].size
	}
	for start := 0; start < len(todo); {
		n := ingest.BatchLen(sizes[start:])
		batch := todo[start : start+n]
		start += n
		in := make([]ingest.File, len(batch))
		for k, i := range batch {
			data, err := files[i].contents()
			if err != nil {
				return nil, err
			}
			in[k] = ingest.File{Name: files[i].name, Source: "upload", ReceivedAt: time.Now(), Data: data}
		}
		res, err := a.Ingest.AcceptBatch(c.Request().Context(), in)
		if err != nil {
			return nil, err
		}
		for k, i := range batch {
			r := UploadResult{Filename: files[i].name, Status: res[k].Status, Error: res[k].Error, EarlierStatus: res[k].Earlier}
			if res[k].IngestID != 0 {
				id := res[k].IngestID
				r.IngestID = &id
			}
			out[i] = r
		}
	}
	return out, nil
}

// IngestView is a file's state.
type IngestView struct {
	ID        int64   `json:"id"`
	Filename  string  `json:"filename"`
	Source    string  `json:"source"`
	SHA256    string  `json:"sha256"`
	SizeBytes int64   `json:"size_bytes"`
	Status    string  `json:"status"`
	Error     string  `json:"error"`
	ReportIDs []int64 `json:"report_ids"` // aggregate reports, new and repeated
	// TLSReportIDs and FailureReportIDs are the SMTP TLS and failure reports the file stored
	// (a report repeated from another file is not linked to it).
	TLSReportIDs     []int64    `json:"tls_report_ids"`
	FailureReportIDs []int64    `json:"failure_report_ids"`
	Attempts         int        `json:"attempts"`
	ReceivedAt       time.Time  `json:"received_at"`
	ProcessedAt      *time.Time `json:"processed_at"`
}

func (a *API) getIngest(c echo.Context) error {
	id, err := apiparams.ID(c, "id")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	ing, err := a.Store.GetIngest(ctx, id)
	if err != nil {
		return err
	}
	ids, err := a.Store.IngestReportIDs(ctx, id)
	if err != nil {
		return err
	}
	if ids == nil {
		ids = []int64{}
	}
	v := ingestView(ing, ids)
	if err := a.kindReportIDs(ctx, []*IngestView{&v}); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

// kindReportIDs fills in the reports of the other kinds that the files stored.
func (a *API) kindReportIDs(ctx context.Context, views []*IngestView) error {
	ids := make([]int64, len(views))
	for i, v := range views {
		ids[i] = v.ID
	}
	var tls, fails map[int64][]int64
	var err error
	if a.Deps.TLSReports != nil {
		if tls, err = a.TLSReports.IngestReportIDs(ctx, ids); err != nil {
			return err
		}
	}
	if a.Deps.Failures != nil {
		if fails, err = a.Failures.IngestReportIDs(ctx, ids); err != nil {
			return err
		}
	}
	for _, v := range views {
		v.TLSReportIDs, v.FailureReportIDs = nonNil(tls[v.ID]), nonNil(fails[v.ID])
	}
	return nil
}

func nonNil(ids []int64) []int64 {
	if ids == nil {
		return []int64{}
	}
	return ids
}

func ingestView(ing store.Ingest, ids []int64) IngestView {
	v := IngestView{ID: ing.ID, Filename: ing.Filename, Source: ing.Source, SHA256: ing.SHA256, SizeBytes: ing.SizeBytes,
		Status: ing.Status, Error: ing.Error, ReportIDs: ids, Attempts: ing.Attempts, ReceivedAt: ing.ReceivedAt.UTC()}
	if ing.ProcessedAt != nil {
		t := ing.ProcessedAt.UTC()
		v.ProcessedAt = &t
	}
	return v
}
