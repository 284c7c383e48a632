package alerting

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/vigilhq/vigil/pkg/route"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"

	"github.com/vigilhq/vigil/pkg/apiparams"
	"github.com/vigilhq/vigil/pkg/audit"
	"github.com/vigilhq/vigil/pkg/auth"
	"github.com/vigilhq/vigil/tasks"
)

// OpenAPI is this package's fragment of the API description (pkg/httpapi merges it).
//
//go:embed openapi.json
var OpenAPI []byte

// Audit actions of alerting.
const (
	AuditRuleCreate        = audit.RuleChange
	AuditRuleUpdate        = "alert.rule_update"
	AuditRuleDelete        = "alert.rule_delete"
	AuditAcknowledge       = "alert.acknowledge"
	AuditResolve           = "alert.resolve"
	AuditSuppressionCreate = "alert.suppression_create"
	AuditSuppressionDelete = "alert.suppression_delete"
	AuditCheck             = "alert.check"
)

// Routes lists the alert endpoints: viewers read, analysts acknowledge and resolve, admins
// manage rules and maintenance windows and trigger checks.
func (s *Service) Routes() []route.Route {
	const get, post, patch, del = http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete
	return []route.Route{
		{Method: get, Path: "/alerts/history", Role: auth.Viewer, Handler: s.hList},
		{Method: get, Path: "/alerts/stats", Role: auth.Viewer, Handler: s.hStats},
		{Method: get, Path: "/alerts/rules", Role: auth.Viewer, Handler: s.hListRules},
		{Method: get, Path: "/alerts/rules/:id", Role: auth.Viewer, Handler: s.hGetRule},
		{Method: get, Path: "/alerts/suppressions", Role: auth.Viewer, Handler: s.hListSuppressions},
		{Method: get, Path: "/alerts/:id", Role: auth.Viewer, Handler: s.hGet},
		{Method: patch, Path: "/alerts/:id/acknowledge", Role: auth.Analyst, Handler: s.hAcknowledge},
		{Method: patch, Path: "/alerts/:id/resolve", Role: auth.Analyst, Handler: s.hResolve},
		{Method: post, Path: "/alerts/rules", Role: auth.Admin, Handler: s.hCreateRule},
		{Method: patch, Path: "/alerts/rules/:id", Role: auth.Admin, Handler: s.hUpdateRule},
		{Method: del, Path: "/alerts/rules/:id", Role: auth.Admin, Handler: s.hDeleteRule},
		{Method: post, Path: "/alerts/suppressions", Role: auth.Admin, Handler: s.hCreateSuppression},
		{Method: del, Path: "/alerts/suppressions/:id", Role: auth.Admin, Handler: s.hDeleteSuppression},
		{Method: post, Path: "/alerts/check", Role: auth.Admin, Handler: s.hCheck},
	}
}

// HTTPError maps the service's errors to problems: 422 for bad input, 409 for conflicts; the
// API's error handler maps not-found to 404 and renders them all.
func HTTPError(err error) error {
	switch {
	case errors.Is(err, ErrInvalid):
		return echo.NewHTTPError(http.StatusUnprocessableEntity, strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": "))
	case errors.Is(err, ErrConflict):
		return echo.NewHTTPError(http.StatusConflict, strings.TrimPrefix(err.Error(), ErrConflict.Error()+": "))
	}
	return err
}

// Principal is who the request acts as (set by the API's guard).
func Principal(c echo.Context) auth.Principal { return route.Principal(c) }

// ActorName is how history and audit name the caller.
func ActorName(c echo.Context) string {
	p := Principal(c)
	if p.User.Email == "" {
		return "unknown"
	}
	if p.KeyID != 0 {
		return fmt.Sprintf("%s (key %d)", p.User.Email, p.KeyID)
	}
	return p.User.Email
}

// Record writes an audit entry for the request's caller (route.Record); a lost entry is
// logged, not hidden.
func Record(c echo.Context, l *audit.Log, log interface{ Error(string, ...any) }, e audit.Entry) {
	route.Record(c, l, log, e)
}

func (s *Service) record(c echo.Context, e audit.Entry) { Record(c, s.audit, s.log, e) }

// IDParam reads a positive id from the path.
func IDParam(c echo.Context, name string) (int64, error) {
	id, err := strconv.ParseInt(c.Param(name), 10, 64)
	if err != nil || id < 1 {
		return 0, apiparams.BadParam(name, "want a positive whole number")
	}
	return id, nil
}

func (s *Service) hList(c echo.Context) error {
	page, err := apiparams.Int(c, "page", 1, 1, 1_000_000)
	if err != nil {
		return err
	}
	size, err := apiparams.Int(c, "page_size", 50, 1, 500)
	if err != nil {
		return err
	}
	var f Filter
	q := c.QueryParam
	if f.Status, err = enumParam("status", q("status"), StatusOpen, StatusAcknowledged, StatusResolved, StatusSuppressed); err != nil {
		return err
	}
	if f.Severity, err = enumParam("severity", q("severity"), SeverityInfo, SeverityWarning, SeverityCritical); err != nil {
		return err
	}
	if f.Type, err = enumParam("type", q("type"), Types()...); err != nil {
		return err
	}
	f.Domain = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(q("domain"))), ".")
	if v := q("rule_id"); v != "" {
		if f.RuleID, err = strconv.ParseInt(v, 10, 64); err != nil || f.RuleID < 1 {
			return apiparams.BadParam("rule_id", "want a rule id")
		}
	}
	if f.Since, f.Until, err = window(c, s.now()); err != nil {
		return err
	}
	items, total, err := s.List(c.Request().Context(), f, page, size)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, apiparams.List[Alert]{Items: items, Total: total, Page: page, PageSize: size})
}

// window reads days, or start/end (dates or RFC 3339), as the common filters do; no value:
// all time.
func window(c echo.Context, now time.Time) (time.Time, time.Time, error) {
	f, err := apiparams.Filter(c, now)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	return f.Start, f.End, nil
}

func enumParam(name, v string, allowed ...string) (string, error) {
	v = strings.ToLower(strings.TrimSpace(v))
	if v == "" {
		return "", nil
	}
	for _, a := range allowed {
		if a == v {
			return v, nil
		}
	}
	return "", apiparams.BadParam(name, "want one of %s", strings.Join(allowed, ", "))
}

func (s *Service) hGet(c echo.Context) error {
	id, err := IDParam(c, "id")
	if err != nil {
		return err
	}
	a, err := s.Get(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, a)
}

type noteBody struct {
	Note string `json:"note"`
}

func (s *Service) transition(c echo.Context, to, action string) error {
	id, err := IDParam(c, "id")
	if err != nil {
		return err
	}
	var in noteBody
	if err := apiparams.ReadOptionalJSON(c, &in); err != nil {
		return err
	}
	a, err := s.Transition(c.Request().Context(), id, to, ActorName(c), in.Note)
	if err != nil {
		return HTTPError(err)
	}
	s.record(c, audit.Entry{Action: action, Target: fmt.Sprintf("alert:%d", id), Details: map[string]any{"note": in.Note}})
	return c.JSON(http.StatusOK, a)
}

func (s *Service) hAcknowledge(c echo.Context) error {
	return s.transition(c, StatusAcknowledged, AuditAcknowledge)
}
func (s *Service) hResolve(c echo.Context) error {
	return s.transition(c, StatusResolved, AuditResolve)
}

func (s *Service) hStats(c echo.Context) error {
	now := s.now()
	since, until, err := window(c, now)
	if err != nil {
		return err
	}
	if since.IsZero() {
		since = now.Add(-30 * 24 * time.Hour)
	}
	if until.IsZero() {
		until = now.Add(time.Second)
	}
	st, err := s.Stats(c.Request().Context(), since, until)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, st)
}

func (s *Service) hListRules(c echo.Context) error {
	rules, err := s.ListRules(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, apiparams.List[Rule]{Items: rules, Total: int64(len(rules)), Page: 1, PageSize: max(len(rules), 1)})
}

func (s *Service) hGetRule(c echo.Context) error {
	id, err := IDParam(c, "id")
	if err != nil {
		return err
	}
	r, err := s.GetRule(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, r)
}

func (s *Service) hCreateRule(c echo.Context) error {
	var in RuleInput
	if err := apiparams.ReadOptionalJSON(c, &in); err != nil {
		return err
	}
	r, err := s.CreateRule(c.Request().Context(), in)
	if err != nil {
		return HTTPError(err)
	}
	s.record(c, audit.Entry{Action: AuditRuleCreate, Target: fmt.Sprintf("rule:%d", r.ID), Details: map[string]any{"name": r.Name, "type": r.Type}})
	c.Response().Header().Set(echo.HeaderLocation, fmt.Sprintf("/alerts/rules/%d", r.ID))
	return c.JSON(http.StatusCreated, r)
}

func (s *Service) hUpdateRule(c echo.Context) error {
	id, err := IDParam(c, "id")
	if err != nil {
		return err
	}
	var in RuleInput
	if err := apiparams.ReadOptionalJSON(c, &in); err != nil {
		return err
	}
	r, err := s.UpdateRule(c.Request().Context(), id, in)
	if err != nil {
		return HTTPError(err)
	}
	b, _ := json.Marshal(in)
	var fields map[string]any
	_ = json.Unmarshal(b, &fields)
	s.record(c, audit.Entry{Action: AuditRuleUpdate, Target: fmt.Sprintf("rule:%d", id), Details: fields})
	return c.JSON(http.StatusOK, r)
}

func (s *Service) hDeleteRule(c echo.Context) error {
	id, err := IDParam(c, "id")
	if err != nil {
		return err
	}
	if err := s.DeleteRule(c.Request().Context(), id); err != nil {
		return err
	}
	s.record(c, audit.Entry{Action: AuditRuleDelete, Target: fmt.Sprintf("rule:%d", id)})
	return c.NoContent(http.StatusNoContent)
}

func (s *Service) hListSuppressions(c echo.Context) error {
	items, err := s.ListSuppressions(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, apiparams.List[Suppression]{Items: items, Total: int64(len(items)), Page: 1, PageSize: max(len(items), 1)})
}

func (s *Service) hCreateSuppression(c echo.Context) error {
	var in SuppressionInput
	if err := apiparams.ReadOptionalJSON(c, &in); err != nil {
		return err
	}
	sp, err := s.CreateSuppression(c.Request().Context(), in, ActorName(c))
	if err != nil {
		return HTTPError(err)
	}
	s.record(c, audit.Entry{Action: AuditSuppressionCreate, Target: fmt.Sprintf("suppression:%d", sp.ID)})
	return c.JSON(http.StatusCreated, sp)
}

func (s *Service) hDeleteSuppression(c echo.Context) error {
	id, err := IDParam(c, "id")
	if err != nil {
		return err
	}
	if err := s.DeleteSuppression(c.Request().Context(), id); err != nil {
		return err
	}
	s.record(c, audit.Entry{Action: AuditSuppressionDelete, Target: fmt.Sprintf("suppression:%d", id)})
	return c.NoContent(http.StatusNoContent)
}

// hCheck enqueues an evaluation of every rule now (one per minute however many clicks).
func (s *Service) hCheck(c echo.Context) error {
	if s.q == nil {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "no task queue in this process")
	}
	now := s.now()
	t, err := tasks.NewAlertCheckNowTask(now)
	if err != nil {
		return err
	}
	id := tasks.AlertCheckTaskID("manual", nil, now.UTC().Truncate(time.Minute))
	if _, err := s.q.EnqueueContext(c.Request().Context(), t); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue %s: %w", id, err)
	}
	s.record(c, audit.Entry{Action: AuditCheck, Target: "alerts", Details: map[string]any{"task_id": id}})
	return c.JSON(http.StatusAccepted, map[string]string{"task_id": id})
}

// HandleCheck is the alert:check handler. A scheduled check also purges expired maintenance
// windows and re-enqueues deliveries left pending.
func (s *Service) HandleCheck(ctx context.Context, t *asynq.Task) error {
	var p tasks.AlertCheckPayload
	if err := tasks.Decode(t, &p); err != nil {
		return err
	}
	var domains []string
	if len(p.Domains) > 0 {
		domains = p.Domains
	}
	res, err := s.Evaluate(ctx, domains)
	if err != nil {
		return err
	}
	if p.Reason == "schedule" {
		if _, err := s.PurgeExpired(ctx); err != nil {
			s.log.Warn("alerting: expired windows not purged", "err", err)
		}
		if _, err := s.RequeuePending(ctx, 15*time.Minute); err != nil {
			s.log.Warn("alerting: pending deliveries not requeued", "err", err)
		}
	}
	if w := t.ResultWriter(); w != nil {
		b, _ := json.Marshal(res)
		_, _ = w.Write(b)
	}
	return nil
}
