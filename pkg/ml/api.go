package ml

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
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

// Audit actions.
const (
	AuditTrain  = "ml.train"
	AuditDeploy = "ml.deploy"
	AuditDetect = "ml.detect"
)

// Routes lists the ML endpoints: viewers read models, anomalies, forecasts and advice;
// analysts ask for a scoring run; admins train and deploy models.
func (s *Service) Routes() []route.Route {
	const get, post = http.MethodGet, http.MethodPost
	return []route.Route{
		{Method: get, Path: "/analytics/ml/models", Role: auth.Viewer, Handler: s.hModels},
		{Method: get, Path: "/analytics/ml/models/:id", Role: auth.Viewer, Handler: s.hModel},
		{Method: get, Path: "/analytics/ml/models/:id/stats", Role: auth.Viewer, Handler: s.hStats},
		{Method: get, Path: "/analytics/anomalies/recent", Role: auth.Viewer, Handler: s.hRecent},
		{Method: get, Path: "/analytics/forecast", Role: auth.Viewer, Handler: s.hForecast},
		{Method: get, Path: "/analytics/policy-advice", Role: auth.Viewer, Handler: s.hAdvice},
		{Method: post, Path: "/analytics/anomalies/detect", Role: auth.Analyst, Handler: s.hDetect},
		{Method: post, Path: "/analytics/ml/train", Role: auth.Admin, Handler: s.hTrain},
		{Method: post, Path: "/analytics/ml/deploy", Role: auth.Admin, Handler: s.hDeploy},
	}
}

// httpError maps the service's errors to problems; not-found is the API's error handler's.
func httpError(err error) error {
	switch {
	case errors.Is(err, ErrInvalid):
		return echo.NewHTTPError(http.StatusUnprocessableEntity, strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": "))
	case errors.Is(err, ErrConflict):
		return echo.NewHTTPError(http.StatusConflict, strings.TrimPrefix(err.Error(), ErrConflict.Error()+": "))
	}
	return err
}

var (
	pageOnly    = apiparams.Declare(apiparams.PageNames...)
	noParams    = apiparams.Declare()
	recentNames = apiparams.Declare(append([]string{"all", "model_id", "ip", "domain"}, apiparams.PageNames...)...)
)

func pageOf(c echo.Context) (int, int, error) {
	page, err := apiparams.Int(c, "page", 1, 1, 1_000_000)
	if err != nil {
		return 0, 0, err
	}
	size, err := apiparams.Int(c, "page_size", 50, 1, 500)
	return page, size, err
}

func (s *Service) hModels(c echo.Context) error {
	if err := pageOnly.Check(c); err != nil {
		return err
	}
	page, size, err := pageOf(c)
	if err != nil {
		return err
	}
	items, total, err := s.Models(c.Request().Context(), page, size)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, apiparams.List[Model]{Items: items, Total: total, Page: page, PageSize: size})
}

func (s *Service) hModel(c echo.Context) error {
	if err := noParams.Check(c); err != nil {
		return err
	}
	id, err := alerting.IDParam(c, "id")
	if err != nil {
		return err
	}
	m, err := s.Get(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, m)
}

func (s *Service) hStats(c echo.Context) error {
	if err := noParams.Check(c); err != nil {
		return err
	}
	id, err := alerting.IDParam(c, "id")
	if err != nil {
		return err
	}
	st, err := s.ModelStats(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, st)
}

func (s *Service) hRecent(c echo.Context) error {
	if err := recentNames.Check(c); err != nil {
		return err
	}
	page, size, err := pageOf(c)
	if err != nil {
		return err
	}
	var f Filter
	switch v := c.QueryParam("all"); v {
	case "", "false":
	case "true":
		f.All = true
	default:
		return apiparams.BadParam("all", "want true or false")
	}
	if v := c.QueryParam("model_id"); v != "" {
		n, err := apiparams.Int(c, "model_id", 0, 1, 1<<62)
		if err != nil {
			return err
		}
		f.ModelID = int64(n)
	}
	if v := c.QueryParam("ip"); v != "" {
		ip, err := netip.ParseAddr(strings.TrimSpace(v))
		if err != nil {
			return apiparams.BadParam("ip", "want an IPv4 or IPv6 address")
		}
		f.IP = ip.Unmap().String()
	}
	f.Domain = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(c.QueryParam("domain"))), ".")
	items, total, err := s.Recent(c.Request().Context(), f, page, size)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, apiparams.List[Prediction]{Items: items, Total: total, Page: page, PageSize: size})
}

func domainParam(c echo.Context) (string, error) {
	d := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(c.QueryParam("domain"))), ".")
	if d == "" {
		return "", apiparams.BadParam("domain", "required: the policy domain, e.g. example.com")
	}
	if len(d) > 253 {
		return "", apiparams.BadParam("domain", "longer than a domain name can be")
	}
	return d, nil
}

var forecastNames = apiparams.Declare("domain", "days", "horizon")

func (s *Service) hForecast(c echo.Context) error {
	if err := forecastNames.Check(c); err != nil {
		return err
	}
	d, err := domainParam(c)
	if err != nil {
		return err
	}
	days, err := apiparams.Int(c, "days", DefaultHistoryDays, MinHistoryDays, MaxHistoryDays)
	if err != nil {
		return err
	}
	h, err := apiparams.Int(c, "horizon", DefaultHorizon, MinHorizon, MaxHorizon)
	if err != nil {
		return err
	}
	f, err := s.Forecast(c.Request().Context(), d, days, h)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, f)
}

var adviceNames = apiparams.Declare("domain", "days")

func (s *Service) hAdvice(c echo.Context) error {
	if err := adviceNames.Check(c); err != nil {
		return err
	}
	d, err := domainParam(c)
	if err != nil {
		return err
	}
	days, err := apiparams.Int(c, "days", DefaultAdviceDays, MinAdviceDays, MaxAdviceDays)
	if err != nil {
		return err
	}
	a, err := s.Advise(c.Request().Context(), d, days)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, a)
}

// DaysInput is the body of POST /analytics/ml/train and /analytics/anomalies/detect.
type DaysInput struct {
	Days *int `json:"days"`
}

func readDays(c echo.Context, def, lo, hi int) (int, error) {
	var in DaysInput
	if err := apiparams.ReadOptionalJSON(c, &in); err != nil {
		return 0, err
	}
	if in.Days == nil {
		return def, nil
	}
	if *in.Days < lo || *in.Days > hi {
		return 0, echo.NewHTTPError(http.StatusUnprocessableEntity, fmt.Sprintf("days: want %d to %d", lo, hi))
	}
	return *in.Days, nil
}

func (s *Service) enqueue(c echo.Context, t *asynq.Task, id, action string, days int) error {
	if _, err := s.q.EnqueueContext(c.Request().Context(), t); err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue %s: %w", id, err)
	}
	alerting.Record(c, s.audit, s.log, audit.Entry{Action: action, Target: "ml", Details: map[string]any{"task_id": id, "days": days}})
	return c.JSON(http.StatusAccepted, map[string]string{"task_id": id})
}

func (s *Service) hTrain(c echo.Context) error {
	if err := noParams.Check(c); err != nil {
		return err
	}
	if s.q == nil {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "no task queue in this process")
	}
	days, err := readDays(c, s.cfg.TrainDays, MinTrainDays, MaxTrainDays)
	if err != nil {
		return err
	}
	now := s.now()
	t, err := tasks.NewMLTrainTask(days, alerting.ActorName(c), now)
	if err != nil {
		return err
	}
	return s.enqueue(c, t, tasks.MLTaskID(tasks.TypeMLTrain, "manual", now.UTC().Truncate(time.Minute)), AuditTrain, days)
}

func (s *Service) hDetect(c echo.Context) error {
	if err := noParams.Check(c); err != nil {
		return err
	}
	if s.q == nil {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "no task queue in this process")
	}
	days, err := readDays(c, s.cfg.DetectDays, MinDetectDays, MaxDetectDays)
	if err != nil {
		return err
	}
	now := s.now()
	t, err := tasks.NewMLDetectTask(days, alerting.ActorName(c), now)
	if err != nil {
		return err
	}
	return s.enqueue(c, t, tasks.MLTaskID(tasks.TypeMLDetect, "manual", now.UTC().Truncate(time.Minute)), AuditDetect, days)
}

// DeployInput is the body of POST /analytics/ml/deploy.
type DeployInput struct {
	ModelID int64 `json:"model_id"`
}

func (s *Service) hDeploy(c echo.Context) error {
	if err := noParams.Check(c); err != nil {
		return err
	}
	var in DeployInput
	if err := apiparams.ReadOptionalJSON(c, &in); err != nil {
		return err
	}
	if in.ModelID < 1 {
		return echo.NewHTTPError(http.StatusUnprocessableEntity, "model_id: want the id of a ready model")
	}
	m, err := s.Deploy(c.Request().Context(), in.ModelID, alerting.ActorName(c))
	if err != nil {
		return httpError(err)
	}
	alerting.Record(c, s.audit, s.log, audit.Entry{Action: AuditDeploy, Target: fmt.Sprintf("model:%d", m.ID), Details: map[string]any{"version": m.Version}})
	return c.JSON(http.StatusOK, m)
}

// HandleTrain is the ml:train handler. Another training running makes it retry later; a
// model that could not be trained (too few sources) completes the task with a failed model.
func (s *Service) HandleTrain(ctx context.Context, t *asynq.Task) error {
	var p tasks.MLPayload
	if err := tasks.Decode(t, &p); err != nil {
		return err
	}
	if p.Days == 0 {
		p.Days = s.cfg.TrainDays
	}
	res, err := s.Train(ctx, p.Days, p.By)
	if errors.Is(err, ErrInvalid) {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	if err != nil {
		return err
	}
	writeResult(t, res)
	return nil
}

// HandleDetect is the ml:detect handler. Without a deployed model, a scheduled run trains
// the first model (so a new installation scores from its first day) and a requested one
// completes with that said in its error (no retry).
func (s *Service) HandleDetect(ctx context.Context, t *asynq.Task) error {
	var p tasks.MLPayload
	if err := tasks.Decode(t, &p); err != nil {
		return err
	}
	if p.Days == 0 {
		p.Days = s.cfg.DetectDays
	}
	res, err := s.Detect(ctx, p.Days)
	if errors.Is(err, ErrNoModel) && p.Reason == "schedule" {
		if tr, terr := s.Train(ctx, s.cfg.TrainDays, "schedule (first model)"); terr != nil {
			return terr
		} else if tr.Deployed {
			res, err = s.Detect(ctx, p.Days)
		}
	}
	if errors.Is(err, ErrInvalid) || errors.Is(err, ErrNoModel) {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	if err != nil {
		return err
	}
	writeResult(t, res)
	return nil
}

func writeResult(t *asynq.Task, v any) {
	if w := t.ResultWriter(); w != nil {
		b, _ := json.Marshal(v)
		_, _ = w.Write(b)
	}
}
