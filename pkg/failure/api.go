package failure

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

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
	Store *store.Store
	// Redact: store no address local part and no message body (VIGIL_FAILURE_REDACT).
	Redact bool
	// MaxBodyBytes bounds a sample body kept without redaction (0: 64 KiB).
	MaxBodyBytes int
	Log          *slog.Logger
	Now          func() time.Time
}

// Service parses, stores and serves failure reports.
type Service struct {
	store *Store
	opt   Options
	log   *slog.Logger
	now   func() time.Time
}

// New builds the service.
func New(d Deps) *Service {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	return &Service{store: NewStore(d.Store, d.Now), opt: Options{Redact: d.Redact, MaxBodyBytes: d.MaxBodyBytes}, log: d.Log, now: d.Now}
}

// HandlePart is the pipeline's handler of FormatFailure payloads (ingest.HandleKind): the
// whole report message.
func (s *Service) HandlePart(ctx context.Context, ingestID int64, p unwrap.Part) ingest.KindResult {
	b, err := io.ReadAll(io.LimitReader(p.Body, 10<<20+1))
	if err != nil {
		return ingest.KindResult{Problem: err}
	}
	r, err := Parse(b, s.opt)
	if err != nil {
		return ingest.KindResult{Problem: err}
	}
	saved, err := s.store.Save(ctx, ingestID, r, s.now())
	if err != nil {
		return ingest.KindResult{Err: err}
	}
	return ingest.KindResult{Duplicate: saved.Duplicate}
}

// IngestReportIDs lists the failure reports each file stored (GET /api/ingests, /api/ingests/{id}).
func (s *Service) IngestReportIDs(ctx context.Context, ingestIDs []int64) (map[int64][]int64, error) {
	return s.store.IngestReportIDs(ctx, ingestIDs)
}

// Routes lists the endpoints (viewers read).
func (s *Service) Routes() []route.Route {
	return []route.Route{
		{Method: http.MethodGet, Path: "/api/failure-reports", Role: auth.Viewer, Handler: s.hList},
		{Method: http.MethodGet, Path: "/api/failure-reports/:id", Role: auth.Viewer, Handler: s.hGet},
		{Method: http.MethodGet, Path: "/api/rollup/failures", Role: auth.Viewer, Handler: s.hRollup},
	}
}

// Params are the query parameters of each route.
func Params() map[string]apiparams.Set {
	return map[string]apiparams.Set{
		"GET /api/failure-reports":     apiparams.FilterSet.With(apiparams.PageNames...),
		"GET /api/failure-reports/:id": apiparams.Declare(),
		"GET /api/rollup/failures":     apiparams.FilterSet.With("limit"),
	}
}

// Item is one report in GET /api/failure-reports (DESIGN.md fields first).
type Item struct {
	ID               int64      `json:"id"`
	IngestID         int64      `json:"ingest_id"`
	Domain           string     `json:"domain"`
	SourceIP         *string    `json:"source_ip"`
	ArrivalDate      *time.Time `json:"arrival_date"`
	AuthFailure      string     `json:"auth_failure"`
	ReportedBy       string     `json:"reported_by"`
	Format           string     `json:"format"`
	FeedbackType     string     `json:"feedback_type"`
	UserAgent        string     `json:"user_agent"`
	Version          string     `json:"version"`
	OriginalMailFrom string     `json:"original_mail_from"`
	DeliveryResult   string     `json:"delivery_result"`
	DKIMResult       string     `json:"dkim_result"`
	SPFResult        string     `json:"spf_result"`
	Disposition      string     `json:"disposition"`
	Subject          string     `json:"subject"`
	Redacted         bool       `json:"redacted"`
	Warnings         []string   `json:"warnings"`
	CreatedAt        time.Time  `json:"created_at"`
}

// Detail is GET /api/failure-reports/{id}: everything the report said (as redacted).
type Detail struct {
	Item
	OriginalRcptTo        []string `json:"original_rcpt_to"`
	OriginalEnvelopeID    string   `json:"original_envelope_id"`
	AuthenticationResults []string `json:"authentication_results"`
	DKIMDomain            string   `json:"dkim_domain"`
	DKIMIdentity          string   `json:"dkim_identity"`
	DKIMSelector          string   `json:"dkim_selector"`
	SPFDNS                string   `json:"spf_dns"`
	IdentityAlignment     string   `json:"identity_alignment"`
	ReportedURI           []string `json:"reported_uri"`
	SampleHeaders         []Field  `json:"sample_headers"`
	SampleBody            *string  `json:"sample_body"`
}

func item(r row) Item {
	it := Item{ID: r.ID, IngestID: r.IngestID, Domain: r.Domain, AuthFailure: r.AuthFailure, ReportedBy: r.ReportedBy,
		Format: r.Format, FeedbackType: r.FeedbackType, UserAgent: r.UserAgent, Version: r.Version, OriginalMailFrom: r.OriginalMailFrom,
		DeliveryResult: r.DeliveryResult, DKIMResult: r.DKIMResult, SPFResult: r.SPFResult, Disposition: r.Disposition,
		Subject: r.Subject, Redacted: r.Redacted, Warnings: []string{}, CreatedAt: time.Unix(r.CreatedAt, 0).UTC()}
	if r.SourceIP != "" {
		ip := r.SourceIP
		it.SourceIP = &ip
	}
	if r.ArrivalDate != nil {
		t := time.Unix(*r.ArrivalDate, 0).UTC()
		it.ArrivalDate = &t
	}
	_ = json.Unmarshal([]byte(r.Warnings), &it.Warnings)
	return it
}

func strs(s string) []string {
	out := []string{}
	_ = json.Unmarshal([]byte(s), &out)
	return out
}

func (s *Service) filter(c echo.Context, key string) (Filter, error) {
	if err := Params()[key].Check(c); err != nil {
		return Filter{}, err
	}
	f, err := apiparams.Filter(c, s.now())
	return Filter{f}, err
}

func (s *Service) hList(c echo.Context) error {
	f, err := s.filter(c, "GET /api/failure-reports")
	if err != nil {
		return err
	}
	page, size, err := apiparams.Paging(c)
	if err != nil {
		return err
	}
	rows, total, err := s.store.List(c.Request().Context(), f, page, size)
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
	if err := Params()["GET /api/failure-reports/:id"].Check(c); err != nil {
		return err
	}
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id < 1 {
		return apiparams.BadParam("id", "want a report id (a whole number from 1)")
	}
	r, err := s.store.Get(c.Request().Context(), id)
	if errors.Is(err, ErrNotFound) {
		return echo.NewHTTPError(http.StatusNotFound, fmt.Sprintf("no failure report %d", id))
	}
	if err != nil {
		return err
	}
	d := Detail{Item: item(r), OriginalRcptTo: strs(r.OriginalRcptTo), OriginalEnvelopeID: r.OriginalEnvelopeID,
		AuthenticationResults: strs(r.AuthenticationResults), DKIMDomain: r.DKIMDomain, DKIMIdentity: r.DKIMIdentity,
		DKIMSelector: r.DKIMSelector, SPFDNS: r.SPFDNS, IdentityAlignment: r.IdentityAlignment, ReportedURI: strs(r.ReportedURI),
		SampleHeaders: []Field{}, SampleBody: r.SampleBody}
	_ = json.Unmarshal([]byte(r.SampleHeaders), &d.SampleHeaders)
	return c.JSON(http.StatusOK, d)
}

func (s *Service) hRollup(c echo.Context) error {
	f, err := s.filter(c, "GET /api/rollup/failures")
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
