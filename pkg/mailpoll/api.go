package mailpoll

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/vigilhq/vigil/pkg/apiparams"
	"github.com/vigilhq/vigil/pkg/audit"
	"github.com/vigilhq/vigil/pkg/auth"
	"github.com/vigilhq/vigil/pkg/route"
)

// OpenAPI documents POST /api/mailboxes/{id}/test (pkg/httpapi merges it; the other mailbox
// routes are in its base document).
//
//go:embed openapi.json
var OpenAPI []byte

// API serves the mailboxes over HTTP: admins list, add, change, remove and test them, and
// trigger a poll now.
type API struct {
	svc   *Service // nil: every route answers 503
	audit *audit.Log
	log   *slog.Logger
}

// NewAPI builds the API on the service (nil in a process built without mailbox polling);
// changes are audited in a (nil: not audited).
func NewAPI(s *Service, a *audit.Log, log *slog.Logger) *API {
	return &API{svc: s, audit: a, log: log}
}

// Routes are the mailbox routes, all for admins.
func (a *API) Routes() []route.Route {
	const get, post, patch, del = http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete
	none, page := apiparams.Declare(), apiparams.Declare(apiparams.PageNames...)
	return []route.Route{
		{Method: post, Path: "/tasks/trigger/email-ingestion", Role: auth.Admin, Handler: a.triggerMail, Params: &none},
		{Method: get, Path: "/api/mailboxes", Role: auth.Admin, Handler: a.listMailboxes, Params: &page},
		{Method: post, Path: "/api/mailboxes", Role: auth.Admin, Handler: a.createMailbox, Params: &none},
		{Method: get, Path: "/api/mailboxes/:id", Role: auth.Admin, Handler: a.getMailbox, Params: &none},
		{Method: patch, Path: "/api/mailboxes/:id", Role: auth.Admin, Handler: a.updateMailbox, Params: &none},
		{Method: del, Path: "/api/mailboxes/:id", Role: auth.Admin, Handler: a.deleteMailbox, Params: &none},
		{Method: post, Path: "/api/mailboxes/:id/test", Role: auth.Admin, Handler: a.testMailbox, Params: &none},
	}
}

func (a *API) record(c echo.Context, e audit.Entry) { route.Record(c, a.audit, a.log, e) }

func (a *API) mail() (*Service, error) {
	if a.svc == nil {
		return nil, apiparams.Problem(http.StatusServiceUnavailable, "mailbox polling is not available in this process")
	}
	return a.svc, nil
}

// mailError maps the service's errors to problems; the rest go to the API's error handler.
func mailError(err error) error {
	switch {
	case errors.Is(err, ErrInvalid):
		return apiparams.Problem(http.StatusUnprocessableEntity, "%s", strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": "))
	case errors.Is(err, ErrNameTaken), errors.Is(err, ErrEnvMailbox), errors.Is(err, ErrNotConfigured):
		return apiparams.Problem(http.StatusConflict, "%s", err.Error())
	case errors.Is(err, ErrNoKey):
		return apiparams.Problem(http.StatusServiceUnavailable, "%s", err.Error())
	}
	return err
}

// triggerMailBody optionally names one mailbox.
type triggerMailBody struct {
	MailboxID *int64 `json:"mailbox_id"` // nil: every enabled mailbox
}

// triggerMail enqueues a poll of every enabled mailbox, or of the one named, now (keyed to
// the minute, so a double click enqueues nothing more).
func (a *API) triggerMail(c echo.Context) error {
	m, err := a.mail()
	if err != nil {
		return err
	}
	var in triggerMailBody
	if err := apiparams.ReadOptionalJSON(c, &in); err != nil {
		return err
	}
	var id int64 // 0: every enabled mailbox
	if in.MailboxID != nil {
		// 0 is not "all": a client that meant one mailbox and sent a zero value would poll
		// every one.
		if id = *in.MailboxID; id < 1 {
			return apiparams.BadParam("mailbox_id", "want a mailbox id from 1, or leave it out for every mailbox")
		}
	}
	ids, err := m.Trigger(c.Request().Context(), id)
	if err != nil {
		return mailError(err)
	}
	a.record(c, audit.Entry{Action: audit.TaskTrigger, Target: "email-ingestion", Details: map[string]any{"task_ids": ids}})
	return c.JSON(http.StatusAccepted, map[string]any{"task_ids": ids})
}

// getMailbox tells a mailbox's settings, progress and last result.
func (a *API) getMailbox(c echo.Context) error {
	m, id, err := a.mailAndID(c)
	if err != nil {
		return err
	}
	st, err := m.Status(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, st)
}

func (a *API) listMailboxes(c echo.Context) error {
	m, err := a.mail()
	if err != nil {
		return err
	}
	p, err := apiparams.Page(c)
	if err != nil {
		return err
	}
	items, total, err := m.List(c.Request().Context(), p)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, apiparams.List[MailboxStatus]{Items: items, Total: total, Page: p.Number, PageSize: p.Size})
}

func (a *API) createMailbox(c echo.Context) error {
	m, err := a.mail()
	if err != nil {
		return err
	}
	var in Input
	if err := apiparams.ReadJSON(c, &in); err != nil {
		return err
	}
	st, err := m.Create(c.Request().Context(), in)
	if err != nil {
		return mailError(err)
	}
	a.record(c, audit.Entry{Action: audit.MailboxCreate, Target: fmt.Sprintf("mailbox:%d", st.ID),
		Details: map[string]any{"name": st.Name, "host": st.Host, "username": st.Username}})
	c.Response().Header().Set(echo.HeaderLocation, fmt.Sprintf("/api/mailboxes/%d", st.ID))
	return c.JSON(http.StatusCreated, st)
}

// mailAndID is the mailbox service and the {id} of the path.
func (a *API) mailAndID(c echo.Context) (*Service, int64, error) {
	m, err := a.mail()
	if err != nil {
		return nil, 0, err
	}
	id, err := apiparams.ID(c, "id")
	return m, id, err
}

func (a *API) updateMailbox(c echo.Context) error {
	m, id, err := a.mailAndID(c)
	if err != nil {
		return err
	}
	var in Input
	if err := apiparams.ReadJSON(c, &in); err != nil {
		return err
	}
	st, err := m.Update(c.Request().Context(), id, in)
	if err != nil {
		return mailError(err)
	}
	a.record(c, audit.Entry{Action: audit.MailboxUpdate, Target: fmt.Sprintf("mailbox:%d", id), Details: map[string]any{"fields": inputFields(in)}})
	return c.JSON(http.StatusOK, st)
}

func (a *API) deleteMailbox(c echo.Context) error {
	m, id, err := a.mailAndID(c)
	if err != nil {
		return err
	}
	if err := m.Delete(c.Request().Context(), id); err != nil {
		return mailError(err)
	}
	a.record(c, audit.Entry{Action: audit.MailboxDelete, Target: fmt.Sprintf("mailbox:%d", id)})
	return c.NoContent(http.StatusNoContent)
}

// inputFields names the fields a PATCH set (never their values: one may be a password).
func inputFields(in Input) []string {
	b, _ := json.Marshal(in)
	var m map[string]any
	json.Unmarshal(b, &m)
	out := []string{}
	for k, v := range m {
		if v != nil {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// testMailbox tries a mailbox's connection, login and folder now, without polling it: the
// answer (200 whether the test passed or not) says which step failed and why, so a wrong
// password or certificate shows at once rather than at the next poll.
func (a *API) testMailbox(c echo.Context) error {
	m, id, err := a.mailAndID(c)
	if err != nil {
		return err
	}
	res, err := m.Test(c.Request().Context(), id)
	if err != nil {
		return mailError(err)
	}
	// A test sends the stored password to the mailbox's server: who did it, and how it went, is
	// recorded like a change (an unreachable or refusing server is a failed test, not a failed action).
	d := map[string]any{"ok": res.OK, "host": res.Host}
	if !res.OK {
		d["stage"] = res.Stage
	}
	a.record(c, audit.Entry{Action: audit.MailboxTest, Target: fmt.Sprintf("mailbox:%d", id), Details: d})
	return c.JSON(http.StatusOK, res)
}
