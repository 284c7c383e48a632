// Package reports serves the aggregate reports and the files they came in over the API: the
// upload, the received files (ingests) with their outcome and original bytes, the reports with
// their records, and the policy domains. It reads what pkg/store keeps and hands uploads to
// pkg/ingest; parsing happens on workers.
package reports

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vigilhq/vigil/pkg/analytics"
	"github.com/vigilhq/vigil/pkg/apiparams"
	"github.com/vigilhq/vigil/pkg/audit"
	"github.com/vigilhq/vigil/pkg/auth"
	"github.com/vigilhq/vigil/pkg/ingest"
	"github.com/vigilhq/vigil/pkg/route"
	"github.com/vigilhq/vigil/pkg/store"
)

// Limits bound what one upload request may carry.
type Limits struct {
	UploadFiles int
	UploadBytes int64
	FileBytes   int64
}

// KindReports is a store of another report kind (TLS, failure) that links its reports to the
// files they came in, so an ingest lists every report it stored.
type KindReports interface {
	IngestReportIDs(ctx context.Context, ingestIDs []int64) (map[int64][]int64, error)
}

// Deps are what the routes need.
type Deps struct {
	Store  *store.Store
	Ingest *ingest.Service
	Limits Limits
	// TempDir is where uploads are spooled before they are stored, past SpoolMemory.
	TempDir string
	// SpoolMemory is how many bytes of one request's files are held in memory before the
	// next ones go to TempDir; 0: DefaultSpoolMemory.
	SpoolMemory int64
	// TLSReports and Failures fill an ingest's tls_report_ids and failure_report_ids; nil: empty.
	TLSReports KindReports
	Failures   KindReports
	// Describe is what enrichment knows of some sources, for the enrichment fields of records;
	// nil: they stay null.
	Describe func(ctx context.Context, ips []netip.Addr) (map[netip.Addr]analytics.SourceInfo, error)
	Audit    *audit.Log // nil: uploads and raw downloads are not audited
	Log      *slog.Logger
	Now      func() time.Time // nil: time.Now
}

// API holds the handlers.
type API struct {
	Deps
}

// New builds the API.
func New(d Deps) *API {
	if d.Now == nil {
		d.Now = time.Now
	}
	return &API{Deps: d}
}

func (a *API) now() time.Time { return a.Now() }

// Routes are the read routes (the route table's API rate limit), each with the query
// parameters it takes.
func (a *API) Routes() []route.Route {
	const get = http.MethodGet
	none := apiparams.Declare()
	page := apiparams.Declare(apiparams.PageNames...)
	filtered := apiparams.FilterSet.With(apiparams.PageNames...)
	// Records take the record-level filters only: the report is already chosen.
	records := page.With("source_ip", "source_ip_range", "dkim_result", "spf_result", "disposition", "sender", "country", "asn")
	return []route.Route{
		{Method: get, Path: "/api/ingests", Role: auth.Viewer, Handler: a.listIngests},
		{Method: get, Path: "/api/ingests/:id", Role: auth.Viewer, Handler: a.getIngest, Params: &none},
		{Method: get, Path: "/api/reports", Role: auth.Viewer, Handler: a.listReports, Params: ptr(filtered.With("sort"))},
		{Method: get, Path: "/api/reports/:id", Role: auth.Viewer, Handler: a.getReport, Params: &none},
		{Method: get, Path: "/api/reports/:id/records", Role: auth.Viewer, Handler: a.listRecords, Params: &records},
		{Method: get, Path: "/api/domains", Role: auth.Viewer, Handler: a.listDomains, Params: &filtered},
		// The original bytes may hold a person's message (failure reports): admins only.
		{Method: get, Path: "/api/ingests/:id/raw", Role: auth.Admin, Handler: a.rawIngest, Params: &none},
	}
}

// UploadRoutes is POST /api/upload (the route table's upload rate limit).
func (a *API) UploadRoutes() []route.Route {
	none := apiparams.Declare()
	return []route.Route{{Method: http.MethodPost, Path: "/api/upload", Role: auth.Analyst, Handler: a.upload, Params: &none}}
}

func ptr[T any](v T) *T { return &v }

func (a *API) record(c echo.Context, e audit.Entry) { route.Record(c, a.Audit, a.Log, e) }
