package accounts

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/vigilhq/vigil/pkg/apiparams"
	"github.com/vigilhq/vigil/pkg/audit"
	"github.com/vigilhq/vigil/pkg/auth"
	"github.com/vigilhq/vigil/pkg/route"
)

func actor(u auth.User) (*int64, string) {
	id := u.ID
	return &id, u.Email
}

type credentials struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

type refreshBody struct {
	RefreshToken string `json:"refresh_token"`
}

// login answers tokens for a right e-mail and password. Unknown e-mail, wrong password and
// inactive account are one answer, in the same time (pkg/auth).
func (a *API) login(c echo.Context) error {
	var in credentials
	if err := apiparams.ReadJSON(c, &in); err != nil {
		return err
	}
	if in.Email == "" || in.Password == "" {
		return apiparams.BadParam("email", "email and password are required")
	}
	tok, u, err := a.Auth.Login(c.Request().Context(), in.Email, in.Password, auth.Meta{IP: c.RealIP(), UserAgent: c.Request().UserAgent()})
	var locked *auth.LockedError
	switch {
	case err == nil:
		id, email := actor(u)
		a.record(c, audit.Entry{ActorID: id, Actor: email, Action: audit.Login, Target: fmt.Sprintf("user:%d", u.ID)})
		return c.JSON(http.StatusOK, tok)
	case errors.Is(err, auth.ErrInvalidCredentials), errors.As(err, &locked):
		reason := "invalid credentials"
		if locked != nil {
			reason = "locked out"
		}
		a.record(c, audit.Entry{Actor: truncateRunes(in.Email, 254), Action: audit.Login, Outcome: audit.Failure, Details: map[string]any{"reason": reason}})
	}
	return err
}

func truncateRunes(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n])
	}
	return s
}

// refresh rotates a refresh token (each works once; a replay revokes its family).
func (a *API) refresh(c echo.Context) error {
	var in refreshBody
	if err := apiparams.ReadJSON(c, &in); err != nil {
		return err
	}
	if in.RefreshToken == "" {
		return apiparams.BadParam("refresh_token", "required")
	}
	tok, u, err := a.Auth.Refresh(c.Request().Context(), in.RefreshToken)
	if errors.Is(err, auth.ErrRefreshReplay) {
		id, email := actor(u)
		a.record(c, audit.Entry{ActorID: id, Actor: email, Action: audit.RefreshReplay, Outcome: audit.Failure, Target: fmt.Sprintf("user:%d", u.ID)})
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, tok)
}

// logout revokes the refresh token's session, and with it the session's access tokens.
func (a *API) logout(c echo.Context) error {
	var in refreshBody
	if err := apiparams.ReadJSON(c, &in); err != nil {
		return err
	}
	if in.RefreshToken == "" {
		return apiparams.BadParam("refresh_token", "required")
	}
	u, err := a.Auth.Logout(c.Request().Context(), in.RefreshToken)
	if err != nil {
		return err
	}
	id, email := actor(u)
	a.record(c, audit.Entry{ActorID: id, Actor: email, Action: audit.Logout, Target: fmt.Sprintf("user:%d", u.ID)})
	return c.NoContent(http.StatusNoContent)
}

func (a *API) me(c echo.Context) error {
	u, err := a.Auth.GetUser(c.Request().Context(), route.Principal(c).User.ID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, u)
}

// updateMe changes one's own name or password (with the current one). The role, the e-mail
// and the active flag are not fields here: sending one is a 400, not a silent escalation.
func (a *API) updateMe(c echo.Context) error {
	var in struct {
		Name            *string `json:"name"`
		Password        *string `json:"password"`
		CurrentPassword *string `json:"current_password"`
	}
	if err := apiparams.ReadJSON(c, &in); err != nil {
		return err
	}
	ctx, p := c.Request().Context(), route.Principal(c)
	if in.Password != nil {
		if in.CurrentPassword == nil {
			return apiparams.BadParam("current_password", "required to change the password")
		}
		if err := a.Auth.ChangePassword(ctx, p.User.ID, *in.CurrentPassword, *in.Password, auth.Meta{IP: c.RealIP(), UserAgent: c.Request().UserAgent()}); err != nil {
			if ie := (*auth.InvalidError)(nil); errors.As(err, &ie) && ie.Field == "current_password" {
				a.record(c, audit.Entry{Action: audit.PasswordChange, Outcome: audit.Failure, Target: fmt.Sprintf("user:%d", p.User.ID)})
			}
			return err
		}
		a.record(c, audit.Entry{Action: audit.PasswordChange, Target: fmt.Sprintf("user:%d", p.User.ID), Details: map[string]any{"revoked": "all sessions and API keys"}})
	}
	if in.Name != nil {
		if _, err := a.Auth.UpdateName(ctx, p.User.ID, *in.Name); err != nil {
			return err
		}
		a.record(c, audit.Entry{Action: audit.UserUpdate, Target: fmt.Sprintf("user:%d", p.User.ID), Details: map[string]any{"fields": []string{"name"}}})
	}
	return a.me(c)
}

func (a *API) listUsers(c echo.Context) error {
	pg, err := apiparams.Page(c)
	if err != nil {
		return err
	}
	users, total, err := a.Auth.ListUsers(c.Request().Context(), pg.Number, pg.Size)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, apiparams.List[auth.User]{Items: users, Total: total, Page: pg.Number, PageSize: pg.Size})
}

func (a *API) getUser(c echo.Context) error {
	id, err := apiparams.ID(c, "id")
	if err != nil {
		return err
	}
	u, err := a.Auth.GetUser(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, u)
}

func (a *API) createUser(c echo.Context) error {
	var in struct {
		Email    string     `json:"email"`
		Password string     `json:"password"`
		Role     *auth.Role `json:"role"`
		Name     string     `json:"name"`
	}
	if err := apiparams.ReadJSON(c, &in); err != nil {
		return err
	}
	role := auth.Viewer
	if in.Role != nil {
		role = *in.Role
	}
	u, err := a.Auth.CreateUser(c.Request().Context(), auth.NewUser{Email: in.Email, Name: in.Name, Password: in.Password, Role: role})
	if err != nil {
		return err
	}
	a.record(c, audit.Entry{Action: audit.UserCreate, Target: fmt.Sprintf("user:%d", u.ID), Details: map[string]any{"email": u.Email, "role": u.Role.String()}})
	return c.JSON(http.StatusCreated, u)
}

func (a *API) updateUser(c echo.Context) error {
	id, err := apiparams.ID(c, "id")
	if err != nil {
		return err
	}
	var in struct {
		Email    *string    `json:"email"`
		Name     *string    `json:"name"`
		Role     *auth.Role `json:"role"`
		Active   *bool      `json:"active"`
		Password *string    `json:"password"`
	}
	if err := apiparams.ReadJSON(c, &in); err != nil {
		return err
	}
	u, ch, err := a.Auth.UpdateUser(c.Request().Context(), id, auth.Patch{Email: in.Email, Name: in.Name, Role: in.Role, Active: in.Active, Password: in.Password})
	if err != nil {
		return err
	}
	if len(ch.Fields) > 0 {
		d := map[string]any{"fields": ch.Fields, "role": u.Role.String(), "active": u.Active}
		if ch.Revoked {
			d["revoked"] = "all sessions and API keys"
		}
		a.record(c, audit.Entry{Action: audit.UserUpdate, Target: fmt.Sprintf("user:%d", id), Details: d})
	}
	return c.JSON(http.StatusOK, u)
}

func (a *API) deleteUser(c echo.Context) error {
	id, err := apiparams.ID(c, "id")
	if err != nil {
		return err
	}
	u, err := a.Auth.DeleteUser(c.Request().Context(), id)
	if err != nil {
		return err
	}
	a.record(c, audit.Entry{Action: audit.UserDelete, Target: fmt.Sprintf("user:%d", id), Details: map[string]any{"email": u.Email}})
	return c.NoContent(http.StatusNoContent)
}

// KeyCreated is the one answer that shows a key's secret.
type KeyCreated struct {
	auth.Key
	Secret string `json:"key"`
}

func (a *API) listKeys(c echo.Context) error {
	pg, err := apiparams.Page(c)
	if err != nil {
		return err
	}
	keys, err := a.Auth.ListKeys(c.Request().Context(), route.Principal(c).User.ID)
	if err != nil {
		return err
	}
	// A user has few keys: they are paged here, like every other list, not in the query.
	lo := min(len(keys), (pg.Number-1)*pg.Size)
	items := keys[lo:min(len(keys), lo+pg.Size)]
	return c.JSON(http.StatusOK, apiparams.List[auth.Key]{Items: items, Total: int64(len(keys)), Page: pg.Number, PageSize: pg.Size})
}

func (a *API) createKey(c echo.Context) error {
	var in struct {
		Name      string     `json:"name"`
		Role      *auth.Role `json:"role"`
		ExpiresAt *string    `json:"expires_at"` // read here, so a bad one is a 400 naming it
	}
	if err := apiparams.ReadJSON(c, &in); err != nil {
		return err
	}
	n := auth.NewKey{Name: in.Name}
	if in.ExpiresAt != nil {
		t, err := time.Parse(time.RFC3339, *in.ExpiresAt)
		if err != nil {
			return apiparams.BadParam("expires_at", "want an RFC 3339 time such as 2030-01-01T00:00:00Z")
		}
		n.ExpiresAt = &t
	}
	if in.Role != nil {
		n.Role = *in.Role
	}
	k, secret, err := a.Auth.CreateKey(c.Request().Context(), route.Principal(c), n)
	if err != nil {
		return err
	}
	a.record(c, audit.Entry{Action: audit.KeyCreate, Target: "key:" + strconv.FormatInt(k.ID, 10), Details: map[string]any{"name": k.Name, "role": k.Role.String()}})
	return c.JSON(http.StatusCreated, KeyCreated{Key: k, Secret: secret})
}

func (a *API) deleteKey(c echo.Context) error {
	id, err := apiparams.ID(c, "id")
	if err != nil {
		return err
	}
	k, err := a.Auth.RevokeKey(c.Request().Context(), route.Principal(c).User.ID, id)
	if err != nil {
		return err
	}
	a.record(c, audit.Entry{Action: audit.KeyRevoke, Target: "key:" + strconv.FormatInt(k.ID, 10), Details: map[string]any{"name": k.Name}})
	return c.NoContent(http.StatusNoContent)
}

func (a *API) listAudit(c echo.Context) error {
	pg, err := apiparams.Page(c)
	if err != nil {
		return err
	}
	f := audit.Filter{Action: c.QueryParam("action"), Outcome: c.QueryParam("outcome")}
	if v := c.QueryParam("actor_id"); v != "" {
		if f.ActorID, err = strconv.ParseInt(v, 10, 64); err != nil || f.ActorID < 1 {
			return apiparams.BadParam("actor_id", "want a positive whole number")
		}
	}
	if f.Outcome != "" && f.Outcome != audit.Success && f.Outcome != audit.Failure {
		return apiparams.BadParam("outcome", "want success or failure")
	}
	if v := c.QueryParam("start"); v != "" {
		if f.Since, err = apiparams.DateOrTime(v, false); err != nil {
			return apiparams.BadParam("start", "want a date such as 2024-01-31 or an RFC 3339 time such as 2024-01-31T00:00:00Z")
		}
	}
	if v := c.QueryParam("end"); v != "" {
		if f.Until, err = apiparams.DateOrTime(v, true); err != nil {
			return apiparams.BadParam("end", "want a date such as 2024-01-31 or an RFC 3339 time such as 2024-01-31T00:00:00Z")
		}
	}
	entries, total, err := a.Audit.List(c.Request().Context(), f, pg.Number, pg.Size)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, apiparams.List[audit.Entry]{Items: entries, Total: total, Page: pg.Number, PageSize: pg.Size})
}
