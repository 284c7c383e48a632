package notify

import (
	_ "embed"
	"errors"
	"fmt"
	"github.com/vigilhq/vigil/pkg/route"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/vigilhq/vigil/pkg/alerting"
	"github.com/vigilhq/vigil/pkg/apiparams"
	"github.com/vigilhq/vigil/pkg/audit"
	"github.com/vigilhq/vigil/pkg/auth"
)

// OpenAPI is this package's fragment of the API description (pkg/httpapi merges it).
//
//go:embed openapi.json
var OpenAPI []byte

// Audit actions of channel management.
const (
	AuditChannelCreate = "alert.channel_create"
	AuditChannelUpdate = "alert.channel_update"
	AuditChannelDelete = "alert.channel_delete"
	AuditChannelTest   = "alert.channel_test"
)

// Routes lists the channel endpoints; channels are an admin's business (their settings say
// where data leaves the installation).
func (s *Service) Routes() []route.Route {
	const get, post, patch, del = http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete
	return []route.Route{
		{Method: get, Path: "/alerts/channels", Role: auth.Admin, Handler: s.hList},
		{Method: post, Path: "/alerts/channels", Role: auth.Admin, Handler: s.hCreate},
		{Method: get, Path: "/alerts/channels/:id", Role: auth.Admin, Handler: s.hGet},
		{Method: patch, Path: "/alerts/channels/:id", Role: auth.Admin, Handler: s.hUpdate},
		{Method: del, Path: "/alerts/channels/:id", Role: auth.Admin, Handler: s.hDelete},
		{Method: post, Path: "/alerts/channels/:id/test", Role: auth.Admin, Handler: s.hTest},
	}
}

func httpError(err error) error {
	if errors.Is(err, ErrNoKey) {
		return echo.NewHTTPError(http.StatusServiceUnavailable, err.Error())
	}
	return alerting.HTTPError(err)
}

func (s *Service) record(c echo.Context, e audit.Entry) { alerting.Record(c, s.audit, s.log, e) }

func (s *Service) hList(c echo.Context) error {
	items, err := s.List(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, apiparams.List[Channel]{Items: items, Total: int64(len(items)), Page: 1, PageSize: max(len(items), 1)})
}

func (s *Service) hGet(c echo.Context) error {
	id, err := alerting.IDParam(c, "id")
	if err != nil {
		return err
	}
	ch, err := s.Get(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ch)
}

// fieldNames names the config fields a request set, never their values (secrets).
func fieldNames(in ChannelInput) []string {
	out := []string{}
	for k := range in.Config {
		out = append(out, "config."+k)
	}
	return out
}

func (s *Service) hCreate(c echo.Context) error {
	var in ChannelInput
	if err := apiparams.ReadOptionalJSON(c, &in); err != nil {
		return err
	}
	ch, err := s.Create(c.Request().Context(), in)
	if err != nil {
		return httpError(err)
	}
	s.record(c, audit.Entry{Action: AuditChannelCreate, Target: fmt.Sprintf("channel:%d", ch.ID), Details: map[string]any{"name": ch.Name, "kind": ch.Kind}})
	c.Response().Header().Set(echo.HeaderLocation, fmt.Sprintf("/alerts/channels/%d", ch.ID))
	return c.JSON(http.StatusCreated, ch)
}

func (s *Service) hUpdate(c echo.Context) error {
	id, err := alerting.IDParam(c, "id")
	if err != nil {
		return err
	}
	var in ChannelInput
	if err := apiparams.ReadOptionalJSON(c, &in); err != nil {
		return err
	}
	ch, err := s.Update(c.Request().Context(), id, in)
	if err != nil {
		return httpError(err)
	}
	s.record(c, audit.Entry{Action: AuditChannelUpdate, Target: fmt.Sprintf("channel:%d", id), Details: map[string]any{"fields": fieldNames(in)}})
	return c.JSON(http.StatusOK, ch)
}

func (s *Service) hDelete(c echo.Context) error {
	id, err := alerting.IDParam(c, "id")
	if err != nil {
		return err
	}
	if err := s.Delete(c.Request().Context(), id); err != nil {
		return err
	}
	s.record(c, audit.Entry{Action: AuditChannelDelete, Target: fmt.Sprintf("channel:%d", id)})
	return c.NoContent(http.StatusNoContent)
}

// TestResult is the answer of POST /alerts/channels/{id}/test.
type TestResult struct {
	Status string `json:"status"` // sent, failed
	Error  string `json:"error,omitempty"`
}

// hTest sends a sample alert now (bounded by the 10 s outbound timeout) and says how it went.
func (s *Service) hTest(c echo.Context) error {
	id, err := alerting.IDParam(c, "id")
	if err != nil {
		return err
	}
	err = s.Test(c.Request().Context(), id)
	res := TestResult{Status: "sent"}
	if err != nil {
		if _, gerr := s.Get(c.Request().Context(), id); gerr != nil {
			return gerr
		}
		res = TestResult{Status: "failed", Error: strings.TrimPrefix(err.Error(), ErrPermanent.Error()+": ")}
	}
	s.record(c, audit.Entry{Action: AuditChannelTest, Target: fmt.Sprintf("channel:%d", id), Outcome: map[bool]string{true: audit.Success, false: audit.Failure}[err == nil],
		Details: map[string]any{"error": res.Error}})
	return c.JSON(http.StatusOK, res)
}
