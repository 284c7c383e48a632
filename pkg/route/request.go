package route

import (
	"github.com/labstack/echo/v4"

	"github.com/vigilhq/vigil/pkg/audit"
	"github.com/vigilhq/vigil/pkg/auth"
)

// principalKey is where the route table's guard leaves who the request acts as.
const principalKey = "vigil.principal"

// SetPrincipal is what the guard calls once it has authenticated the request.
func SetPrincipal(c echo.Context, p auth.Principal) { c.Set(principalKey, p) }

// Principal is who the request acts as; the zero Principal on public routes.
func Principal(c echo.Context) auth.Principal {
	p, _ := c.Get(principalKey).(auth.Principal)
	return p
}

// Record writes an audit entry for the request's principal (or the anonymous actor the entry
// names already), with the client's address. An entry that cannot be written is logged
// loudly; the action itself already happened. A nil log records nothing.
func Record(c echo.Context, l *audit.Log, log interface{ Error(string, ...any) }, e audit.Entry) {
	if l == nil {
		return
	}
	p := Principal(c)
	if p.User.ID != 0 && e.ActorID == nil {
		id := p.User.ID
		e.ActorID, e.Actor = &id, p.User.Email
		if p.KeyID != 0 {
			k := p.KeyID
			e.APIKeyID = &k
		}
	}
	e.IP = c.RealIP()
	if err := l.Record(c.Request().Context(), e); err != nil {
		log.Error("audit entry lost", "action", e.Action, "actor", e.Actor, "err", err)
	}
}
