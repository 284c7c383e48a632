package tlsrpt

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/labstack/echo/v4"

	"github.com/vigilhq/vigil/pkg/apiparams"
	"github.com/vigilhq/vigil/pkg/auth"
	"github.com/vigilhq/vigil/pkg/ingest"
	"github.com/vigilhq/vigil/pkg/route"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/unwrap"
)

// OpenAPI is this package's fragment of the API description (pkg/httpapi merges it).
//
//go:embed openapi.json
var OpenAPI []byte

// Deps are what the service needs.
type Deps struct {
	Store  *store.Store
	Ingest *ingest.Service // nil: POST /tlsrpt answers 503
	Limits Limits          // parsing, by mail and by POST (MaxBytes: the decompressed report)
	// MaxBodyBytes bounds the body of one POST /tlsrpt as sent (compressed or not).
	MaxBodyBytes int64
	Log          *slog.Logger
	Now          func() time.Time
}

// Service parses, stores and serves TLS reports.
type Service struct {
	store   *Store
	group   *ingest.Group // POSTs accepted together (nil without Ingest)
	lim     Limits
	maxBody int64
	log     *slog.Logger
	now     func() time.Time
}

// DefaultMaxBodyBytes bounds a POST body when Deps leaves it zero: RFC 8460 reports are a few
// KiB compressed; a sender of ten thousand domains stays under a megabyte.
const DefaultMaxBodyBytes = 1 << 20

// New builds the service.
func New(d Deps) *Service {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.MaxBodyBytes <= 0 {
		d.MaxBodyBytes = DefaultMaxBodyBytes
	}
	s := &Service{store: NewStore(d.Store, d.Now), lim: d.Limits.withDefaults(), maxBody: d.MaxBodyBytes, log: d.Log, now: d.Now}
	if d.Ingest != nil {
		s.group = d.Ingest.NewGroup(ingest.GroupLeads)
	}
	return s
}

// KindBatch is the pipeline's batch handler of FormatTLSRPT payloads (ingest.HandleKindBatch):
// the reports of a whole batch of files (many single-report POSTs) stored in one transaction.
func (s *Service) KindBatch() ingest.KindBatch {
	return ingest.KindBatch{
		Parse: func(p unwrap.Part) (any, error) { return Read(p.Body, s.lim) },
		Save: func(ctx context.Context, items []ingest.KindItem) ([]bool, error) {
			in := make([]Pending, len(items))
			for i, it := range items {
				r, ok := it.Report.(*Report)
				if !ok {
					return nil, fmt.Errorf("tlsrpt: item %d is a %T, not a report", i, it.Report)
				}
				in[i] = Pending{IngestID: it.IngestID, Report: r}
			}
			saved, err := s.store.SaveMany(ctx, in)
			if err != nil {
				return nil, err
			}
			dup := make([]bool, len(saved))
			for i, sv := range saved {
				dup[i] = sv.Duplicate
			}
			return dup, nil
		},
	}
}

// IngestReportIDs lists the TLS reports each file stored (GET /api/ingests, /api/ingests/{id}).
func (s *Service) IngestReportIDs(ctx context.Context, ingestIDs []int64) (map[int64][]int64, error) {
	return s.store.IngestReportIDs(ctx, ingestIDs)
}

// Routes lists the read endpoints (viewers).
func (s *Service) Routes() []route.Route {
	return []route.Route{
		{Method: http.MethodGet, Path: "/api/tls-reports", Role: auth.Viewer, Handler: s.hList},
		{Method: http.MethodGet, Path: "/api/tls-reports/:id", Role: auth.Viewer, Handler: s.hGet},
		{Method: http.MethodGet, Path: "/api/rollup/tls", Role: auth.Viewer, Handler: s.hRollup},
	}
}

// IntakeRoutes lists the HTTPS intake (RFC 8460 §3): no login, its own per-address rate limit.
func (s *Service) IntakeRoutes() []route.Route {
	return []route.Route{{Method: http.MethodPost, Path: "/tlsrpt", Role: auth.Public, Handler: s.hIntake}}
}

// Params are the query parameters of each route (the route table's "METHOD path" keys).
func Params() map[string]apiparams.Set {
	f := apiparams.Declare(filterNames...)
	return map[string]apiparams.Set{
		"GET /api/tls-reports":     f.With(apiparams.PageNames...),
		"GET /api/tls-reports/:id": apiparams.Declare(),
		"GET /api/rollup/tls":      f.With("limit"),
		"POST /tlsrpt":             apiparams.Declare(),
	}
}

// filterNames are the common filters that mean something for TLS reports; the record-level
// ones (dkim_result, spf_result, disposition) do not, and are refused as unknown.
var filterNames = []string{"domain", "org_name", "days", "start", "end", "source_ip", "source_ip_range"}

func (s *Service) check(c echo.Context, key string) error { return Params()[key].Check(c) }

func (s *Service) filter(c echo.Context) (Filter, error) {
	f, err := apiparams.Filter(c, s.now())
	if err != nil {
		return Filter{}, err
	}
	return Filter{Domain: f.Domain, OrgName: f.OrgName, Start: f.Start, End: f.End, SourceIP: f.SourceIP, SourceRange: f.SourceRange}, nil
}

// Item is one report in GET /api/tls-reports (DESIGN.md fields first).
type Item struct {
	ID                 int64     `json:"id"`
	IngestID           int64     `json:"ingest_id"`
	OrganizationName   string    `json:"organization_name"`
	ReportID           string    `json:"report_id"`
	DateBegin          time.Time `json:"date_begin"`
	DateEnd            time.Time `json:"date_end"`
	PolicyDomain       string    `json:"policy_domain"`
	PolicyDomains      []string  `json:"policy_domains"`
	SuccessfulSessions int64     `json:"successful_sessions"`
	FailedSessions     int64     `json:"failed_sessions"`
	FailureRate        float64   `json:"failure_rate"`
	ContactInfo        string    `json:"contact_info"`
	Warnings           []string  `json:"warnings"`
	CreatedAt          time.Time `json:"created_at"`
}

// Detail is GET /api/tls-reports/{id}: the item with its policies.
type Detail struct {
	Item
	Policies []Policy `json:"policies"`
}

func item(r row) Item {
	it := Item{ID: r.ID, IngestID: r.IngestID, OrganizationName: r.OrganizationName, ReportID: r.ReportID,
		DateBegin: time.Unix(r.DateBegin, 0).UTC(), DateEnd: time.Unix(r.DateEnd, 0).UTC(), PolicyDomain: r.PolicyDomain,
		SuccessfulSessions: r.SuccessfulSessions, FailedSessions: r.FailedSessions, FailureRate: rate(r.SuccessfulSessions, r.FailedSessions),
		ContactInfo: r.ContactInfo, CreatedAt: time.Unix(r.CreatedAt, 0).UTC(), PolicyDomains: []string{}, Warnings: []string{}}
	_ = json.Unmarshal([]byte(r.PolicyDomains), &it.PolicyDomains)
	_ = json.Unmarshal([]byte(r.Warnings), &it.Warnings)
	return it
}

func (s *Service) hList(c echo.Context) error {
	if err := s.check(c, "GET /api/tls-reports"); err != nil {
		return err
	}
	f, err := s.filter(c)
	if err != nil {
		return err
	}
	page, size, err := apiparams.Paging(c)
	if err != nil {
		return err
	}
	rows, total, err := s.store.List(c.Request().Context(), f, Page{Number: page, Size: size})
	if err != nil {
		return err
	}
	out := apiparams.List[Item]{Items: make([]Item, len(rows)), Total: total, Page: page, PageSize: size}
	for i, r := range rows {
		out.Items[i] = item(r)
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Service) hGet(c echo.Context) error {
	if err := s.check(c, "GET /api/tls-reports/:id"); err != nil {
		return err
	}
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id < 1 {
		return apiparams.BadParam("id", "want a report id (a whole number from 1)")
	}
	r, err := s.store.Get(c.Request().Context(), id)
	if errors.Is(err, ErrNotFound) {
		return echo.NewHTTPError(http.StatusNotFound, fmt.Sprintf("no TLS report %d", id))
	}
	if err != nil {
		return err
	}
	d := Detail{Item: item(r), Policies: []Policy{}}
	if err := json.Unmarshal([]byte(r.Policies), &d.Policies); err != nil {
		return fmt.Errorf("tlsrpt: stored policies of report %d: %w", id, err)
	}
	return c.JSON(http.StatusOK, d)
}

func (s *Service) hRollup(c echo.Context) error {
	if err := s.check(c, "GET /api/rollup/tls"); err != nil {
		return err
	}
	f, err := s.filter(c)
	if err != nil {
		return err
	}
	limit, err := apiparams.Int(c, "limit", 10, 1, 500)
	if err != nil {
		return err
	}
	out, err := s.store.Rollup(c.Request().Context(), f, limit)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

// Content types of RFC 8460 §5.3.
const (
	TypeGzip = "application/tlsrpt+gzip"
	TypeJSON = "application/tlsrpt+json"
)

// IntakeResult is the 202 answer of POST /tlsrpt.
type IntakeResult struct {
	IngestID int64  `json:"ingest_id"`
	Status   string `json:"status"` // accepted, or duplicate when the same bytes were sent before
}

// hIntake is POST /tlsrpt (RFC 8460 §3). The report is read in the request (a few KiB: cheap,
// and a sender learns at once why a report is refused, while nothing of a refused report is
// stored), then handed to the pipeline like an upload: the original kept with its SHA-256, a
// worker parses and stores it, and the same bytes again are answered with the first ingest.
// Limits: the body as sent (MaxBodyBytes, 413), the report decompressed (Limits.MaxBytes,
// 413), the route's rate per client address (429, in the route table).
func (s *Service) hIntake(c echo.Context) error {
	if err := s.check(c, "POST /tlsrpt"); err != nil {
		return err
	}
	req := c.Request()
	mt, _, err := mime.ParseMediaType(req.Header.Get(echo.HeaderContentType))
	if err != nil || (mt != TypeGzip && mt != TypeJSON) {
		return echo.NewHTTPError(http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type must be %s or %s (RFC 8460 §5.3)", TypeGzip, TypeJSON))
	}
	if req.ContentLength > s.maxBody {
		return echo.NewHTTPError(http.StatusRequestEntityTooLarge, fmt.Sprintf("body is larger than the %d-byte limit (VIGIL_TLSRPT_MAX_BYTES)", s.maxBody))
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, s.maxBody+1))
	if err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "could not read the body: "+err.Error())
	}
	if int64(len(body)) > s.maxBody {
		return echo.NewHTTPError(http.StatusRequestEntityTooLarge, fmt.Sprintf("body is larger than the %d-byte limit (VIGIL_TLSRPT_MAX_BYTES)", s.maxBody))
	}
	if len(body) == 0 {
		return echo.NewHTTPError(http.StatusBadRequest, "empty body: send one SMTP TLS report")
	}
	rep, err := s.read(mt, body)
	switch {
	case errors.Is(err, ErrLimit):
		return echo.NewHTTPError(http.StatusRequestEntityTooLarge, err.Error())
	case err != nil:
		return echo.NewHTTPError(http.StatusUnprocessableEntity, err.Error())
	}
	if s.group == nil {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "not available in this process")
	}
	name := "tlsrpt-" + rep.ReportID + ".json"
	if mt == TypeGzip {
		name += ".gz"
	}
	// Concurrent POSTs share one commit and one parse task (ingest.Group): the commit of
	// one small report alone cost more than everything else in its request.
	res, err := s.group.Accept(req.Context(), ingest.File{Name: name, Source: "https", SourceRef: c.RealIP(), ReceivedAt: s.now(), Data: body})
	if err != nil {
		return err
	}
	if res.Status == ingest.Rejected {
		return echo.NewHTTPError(http.StatusUnprocessableEntity, res.Error)
	}
	return c.JSON(http.StatusAccepted, IntakeResult{IngestID: res.IngestID, Status: res.Status})
}

// read decompresses (by content: a sender that labels gzip as +json is still understood) and
// parses a posted report.
func (s *Service) read(mt string, body []byte) (*Report, error) {
	if bytes.HasPrefix(body, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %w", ErrInvalid, err)
		}
		zr.Multistream(false)
		r, err := Read(zr, s.lim)
		if err != nil {
			return nil, err
		}
		if _, err := io.Copy(io.Discard, zr); err != nil { // the CRC is only checked at the end
			return nil, fmt.Errorf("%w: gzip: %w", ErrInvalid, err)
		}
		return r, nil
	}
	if mt == TypeGzip {
		return nil, fmt.Errorf("%w: Content-Type says gzip, the body is not gzip", ErrInvalid)
	}
	if !strings.HasPrefix(strings.TrimSpace(string(body[:min(len(body), 64)])), "{") && !bytes.HasPrefix(body, []byte("\xef\xbb\xbf")) {
		return nil, fmt.Errorf("%w: the body is not a JSON object", ErrInvalid)
	}
	return Parse(body, s.lim)
}
