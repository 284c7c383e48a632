// Package accounts serves who may use the API and what they did over HTTP: logging in and out
// (tokens from pkg/auth), one's own account and API keys, the users an admin manages, and the
// audit log of those actions (pkg/audit).
package accounts

import (
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/vigilhq/vigil/pkg/apiparams"
	"github.com/vigilhq/vigil/pkg/audit"
	"github.com/vigilhq/vigil/pkg/auth"
	"github.com/vigilhq/vigil/pkg/route"
)

// API holds the handlers' dependencies.
type API struct {
	Auth  *auth.Service
	Audit *audit.Log // nil: nothing is audited
	log   *slog.Logger
}

// New builds the API.
func New(a *auth.Service, l *audit.Log, log *slog.Logger) *API {
	return &API{Auth: a, Audit: l, log: log}
}

// AuthRoutes are the public routes that get and give up tokens (the route table's auth rate
// limit, per client address).
func (a *API) AuthRoutes() []route.Route {
	const post = http.MethodPost
	none := apiparams.Declare()
	return []route.Route{
		{Method: post, Path: "/auth/login", Role: auth.Public, Handler: a.login, Params: &none},
		{Method: post, Path: "/auth/refresh", Role: auth.Public, Handler: a.refresh, Params: &none},
		{Method: post, Path: "/auth/logout", Role: auth.Public, Handler: a.logout, Params: &none},
	}
}

// Routes are one's own account and keys (any role) and the users and audit log (admins).
func (a *API) Routes() []route.Route {
	const get, post, patch, del = http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete
	none, page := apiparams.Declare(), apiparams.Declare(apiparams.PageNames...)
	auditParams := page.With("action", "outcome", "actor_id", "start", "end")
	return []route.Route{
		{Method: get, Path: "/users/me", Role: auth.Viewer, Handler: a.me, Params: &none},
		{Method: patch, Path: "/users/me", Role: auth.Viewer, Handler: a.updateMe, Params: &none},
		{Method: get, Path: "/users/api-keys", Role: auth.Viewer, Handler: a.listKeys, Params: &page},
		{Method: post, Path: "/users/api-keys", Role: auth.Viewer, Handler: a.createKey, Params: &none},
		{Method: del, Path: "/users/api-keys/:id", Role: auth.Viewer, Handler: a.deleteKey, Params: &none},

		{Method: get, Path: "/users", Role: auth.Admin, Handler: a.listUsers, Params: &page},
		{Method: post, Path: "/users", Role: auth.Admin, Handler: a.createUser, Params: &none},
		{Method: get, Path: "/users/:id", Role: auth.Admin, Handler: a.getUser, Params: &none},
		{Method: patch, Path: "/users/:id", Role: auth.Admin, Handler: a.updateUser, Params: &none},
		{Method: del, Path: "/users/:id", Role: auth.Admin, Handler: a.deleteUser, Params: &none},
		{Method: get, Path: "/audit", Role: auth.Admin, Handler: a.listAudit, Params: &auditParams},
	}
}

func (a *API) record(c echo.Context, e audit.Entry) { route.Record(c, a.Audit, a.log, e) }
