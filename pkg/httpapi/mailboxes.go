package httpapi

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// triggerMail enqueues a poll of every mailbox now (keyed to the minute, so a double click
// enqueues nothing more).
func (a *API) triggerMail(c echo.Context) error {
	if a.Mail == nil {
		return problem(http.StatusServiceUnavailable, "mailbox polling is not available in this process")
	}
	ids, err := a.Mail.TriggerAll(c.Request().Context())
	if err != nil {
		return err
	}
	if ids == nil {
		ids = []string{}
	}
	return c.JSON(http.StatusAccepted, map[string]any{"task_ids": ids})
}

// getMailbox tells a mailbox's progress and last result.
func (a *API) getMailbox(c echo.Context) error {
	if a.Mail == nil {
		return problem(http.StatusServiceUnavailable, "mailbox polling is not available in this process")
	}
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	st, err := a.Mail.Status(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, st)
}
