package retention

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"

	"github.com/vigilhq/vigil/pkg/alerting"
	"github.com/vigilhq/vigil/pkg/apiparams"
	"github.com/vigilhq/vigil/pkg/audit"
	"github.com/vigilhq/vigil/pkg/auth"
	"github.com/vigilhq/vigil/pkg/route"
	"github.com/vigilhq/vigil/tasks"
)

// OpenAPI is this package's fragment of the API description (pkg/httpapi merges it).
//
//go:embed openapi.json
var OpenAPI []byte

// Enqueuer queues the purge task (an *asynq.Client).
type Enqueuer interface {
	EnqueueContext(ctx context.Context, t *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// API serves the admin endpoints: the policy with a dry run's figures, and a purge now.
type API struct {
	svc   *Service
	q     Enqueuer // nil: POST answers 503
	audit *audit.Log
}

// NewAPI serves svc; q and al may be nil.
func NewAPI(svc *Service, q Enqueuer, al *audit.Log) *API { return &API{svc: svc, q: q, audit: al} }

// Routes are admin-only: retention deletes data. Safe on a nil *API (the table answers 503).
func (a *API) Routes() []route.Route {
	var get, purge, del echo.HandlerFunc
	if a != nil {
		get, purge, del = a.status, a.purge, a.deleteReport
	}
	return []route.Route{
		{Method: http.MethodGet, Path: "/api/retention", Role: auth.Admin, Handler: get},
		{Method: http.MethodPost, Path: "/api/retention/purge", Role: auth.Admin, Handler: purge},
		{Method: http.MethodDelete, Path: "/api/reports/:id", Role: auth.Admin, Handler: del},
	}
}

// Status is the policy in days (0: kept forever) and what a purge now would delete.
type Status struct {
	ReportDays  int            `json:"report_days"`
	DomainDays  map[string]int `json:"domain_days"`
	FileDays    int            `json:"file_days"`
	RollupDays  int            `json:"rollup_days"`
	AuditDays   int            `json:"audit_days"`
	DryRun      bool           `json:"dry_run"`
	Enabled     bool           `json:"enabled"`
	WouldDelete Result         `json:"would_delete"`
}

func days(d time.Duration) int { return int(d / (24 * time.Hour)) }

func (a *API) status(c echo.Context) error {
	p := a.svc.Policy()
	st := Status{ReportDays: days(p.Reports), DomainDays: map[string]int{}, FileDays: days(p.Files), RollupDays: days(p.Rollups),
		AuditDays: days(p.Audit), DryRun: p.DryRun, Enabled: p.Enabled()}
	for d, age := range p.Domains {
		st.DomainDays[d] = days(age)
	}
	res, err := a.svc.Purge(c.Request().Context(), true)
	if err != nil {
		return err
	}
	st.WouldDelete = res
	return c.JSON(http.StatusOK, st)
}

func (a *API) purge(c echo.Context) error {
	if a.q == nil {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "no task queue in this process")
	}
	now := a.svc.now()
	t, err := tasks.NewRetentionPurgeNowTask(now)
	if err != nil {
		return err
	}
	id := tasks.RetentionPurgeTaskID("manual", now)
	if _, err := a.q.EnqueueContext(c.Request().Context(), t); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue %s: %w", id, err)
	}
	alerting.Record(c, a.audit, a.svc.log, audit.Entry{Action: audit.TaskTrigger, Target: "retention", Details: map[string]any{"task_id": id}})
	return c.JSON(http.StatusAccepted, map[string]string{"task_id": id})
}

// ActionReportDelete is the audit action of DELETE /api/reports/{id}.
const ActionReportDelete = "report.delete"

// deleteReport deletes one report by hand: 204, or 404 when it is not (or no longer) stored,
// so a repeated DELETE changes nothing more. Audited either way.
func (a *API) deleteReport(c echo.Context) error {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id < 1 {
		return apiparams.BadParam("id", "want a whole number from 1")
	}
	found, err := a.svc.DeleteReport(c.Request().Context(), id)
	if err != nil {
		return err
	}
	e := audit.Entry{Action: ActionReportDelete, Target: fmt.Sprintf("report:%d", id)}
	if !found {
		e.Outcome, e.Details = audit.Failure, map[string]any{"reason": "not found"}
	}
	alerting.Record(c, a.audit, a.svc.log, e)
	if !found {
		return echo.NewHTTPError(http.StatusNotFound, fmt.Sprintf("report %d not found", id))
	}
	return c.NoContent(http.StatusNoContent)
}

// HandlePurge is the retention:purge handler: a purge (a count only when the policy says dry
// run), whose figures are the task's result.
func (s *Service) HandlePurge(ctx context.Context, t *asynq.Task) error {
	var p tasks.RetentionPurgePayload
	if err := tasks.Decode(t, &p); err != nil {
		return err
	}
	if !s.pol.Enabled() {
		return nil
	}
	res, err := s.Purge(ctx, s.pol.DryRun)
	if s.pol.DryRun && err == nil {
		s.log.Info("retention: dry run (VIGIL_RETENTION_DRY_RUN): nothing deleted", "reports", res.Reports, "records", res.Records,
			"files", res.Files, "rollup_rows", res.RollupRows, "audit_entries", res.Audit)
	}
	if w := t.ResultWriter(); w != nil {
		if b, jerr := json.Marshal(res); jerr == nil {
			w.Write(b) // best effort: the log line and the audit entry say the same
		}
	}
	return err
}
