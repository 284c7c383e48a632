package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/vigilhq/vigil/pkg/apiparams"
	"github.com/vigilhq/vigil/pkg/audit"
	"github.com/vigilhq/vigil/pkg/auth"
)

// maxJSONBody bounds every JSON request body (SECURITY-CASES D.31).
const maxJSONBody = 1 << 20

// readOptionalJSON is readJSON for routes whose body may be left out: no body leaves v as it is.
func readOptionalJSON(c echo.Context, v any) error {
	if c.Request().ContentLength == 0 {
		return nil
	}
	return readJSON(c, v)
}

// strictUTF8 refuses a JSON text that is not UTF-8 (RFC 8259 §8.1), raw or through an
// unpaired surrogate escape such as "\ud800". encoding/json would turn either into U+FFFD
// without a word, so a password of invalid bytes would silently become another password
// (issue 18).
func strictUTF8(body []byte) error {
	if !utf8.Valid(body) {
		return errors.New("not valid UTF-8")
	}
	for i := 0; i < len(body); i++ {
		if body[i] != '\\' || i+1 >= len(body) {
			continue
		}
		if body[i+1] != 'u' {
			i++ // an escape of one character, such as \\ or \"
			continue
		}
		r, ok := hex4(body[i+2:])
		switch {
		case !ok:
			i++
		case r >= 0xDC00 && r <= 0xDFFF:
			return errors.New("an unpaired surrogate escape (\\u" + string(body[i+2:i+6]) + ") is not a character")
		case r >= 0xD800 && r <= 0xDBFF:
			if lo, ok := hex4(body[min(i+8, len(body)):]); i+7 < len(body) && body[i+6] == '\\' && body[i+7] == 'u' && ok && lo >= 0xDC00 && lo <= 0xDFFF {
				i += 11
				continue
			}
			return errors.New("an unpaired surrogate escape (\\u" + string(body[i+2:i+6]) + ") is not a character")
		default:
			i += 5
		}
	}
	return nil
}

// hex4 reads the 4 hex digits of a \u escape.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// readJSON decodes a JSON object body into v, refusing other content types (415), bodies over
// 1 MiB (413), unknown fields and wrong types (400 naming the field), so a client cannot slip
// in a field the handler did not mean to take (mass assignment), and text that is not UTF-8.
func readJSON(c echo.Context, v any) error {
	req := c.Request()
	if mt, _, err := mime.ParseMediaType(req.Header.Get(echo.HeaderContentType)); err != nil || mt != echo.MIMEApplicationJSON {
		return problem(http.StatusUnsupportedMediaType, "want Content-Type: application/json")
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), req.Body, maxJSONBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return problem(http.StatusRequestEntityTooLarge, "request body exceeds %d bytes", maxJSONBody)
		}
		return problem(http.StatusBadRequest, "unreadable body: %v", err)
	}
	if err := strictUTF8(body); err != nil {
		return problem(http.StatusBadRequest, "invalid JSON body: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te) && te.Field == "":
			return problem(http.StatusBadRequest, "the body must be a JSON object")
		case errors.As(err, &te):
			return badParam(te.Field, "want %s", jsonKind(te.Type))
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return apiparams.Fail(apiparams.KindUnknownField, "parameter "+name+": not a field this request takes")
		default:
			// Errors from a field's own UnmarshalJSON (a role name) land here.
			return problem(http.StatusBadRequest, "invalid JSON body: %v", err)
		}
	}
	if dec.More() {
		return problem(http.StatusBadRequest, "invalid JSON body: more than one value")
	}
	return nil
}

// jsonKind names the JSON value a Go type takes, for people (never "a int64").
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "another kind of value"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "another kind of value"
}

// record writes an audit entry for the request's principal (or the anonymous actor given).
// An entry that cannot be written is logged loudly; the action itself already happened.
func (a *API) record(c echo.Context, e audit.Entry) {
	if a.Audit == nil {
		return
	}
	p := principal(c)
	if p.User.ID != 0 && e.ActorID == nil {
		id := p.User.ID
		e.ActorID, e.Actor = &id, p.User.Email
		if p.KeyID != 0 {
			k := p.KeyID
			e.APIKeyID = &k
		}
	}
	e.IP = c.RealIP()
	if err := a.Audit.Record(c.Request().Context(), e); err != nil {
		a.log.Error("audit entry lost", "action", e.Action, "actor", e.Actor, "err", err)
	}
}

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
	if err := readJSON(c, &in); err != nil {
		return err
	}
	if in.Email == "" || in.Password == "" {
		return badParam("email", "email and password are required")
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
	if err := readJSON(c, &in); err != nil {
		return err
	}
	if in.RefreshToken == "" {
		return badParam("refresh_token", "required")
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
	if err := readJSON(c, &in); err != nil {
		return err
	}
	if in.RefreshToken == "" {
		return badParam("refresh_token", "required")
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
	u, err := a.Auth.GetUser(c.Request().Context(), principal(c).User.ID)
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
	if err := readJSON(c, &in); err != nil {
		return err
	}
	ctx, p := c.Request().Context(), principal(c)
	if in.Password != nil {
		if in.CurrentPassword == nil {
			return badParam("current_password", "required to change the password")
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
	pg, err := pageParams(c)
	if err != nil {
		return err
	}
	users, total, err := a.Auth.ListUsers(c.Request().Context(), pg.Number, pg.Size)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, List[auth.User]{Items: users, Total: total, Page: pg.Number, PageSize: pg.Size})
}

func (a *API) getUser(c echo.Context) error {
	id, err := idParam(c, "id")
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
	if err := readJSON(c, &in); err != nil {
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
	id, err := idParam(c, "id")
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
	if err := readJSON(c, &in); err != nil {
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
	id, err := idParam(c, "id")
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
	pg, err := pageParams(c)
	if err != nil {
		return err
	}
	keys, err := a.Auth.ListKeys(c.Request().Context(), principal(c).User.ID)
	if err != nil {
		return err
	}
	// A user has few keys: they are paged here, like every other list, not in the query.
	lo := min(len(keys), (pg.Number-1)*pg.Size)
	items := keys[lo:min(len(keys), lo+pg.Size)]
	return c.JSON(http.StatusOK, List[auth.Key]{Items: items, Total: int64(len(keys)), Page: pg.Number, PageSize: pg.Size})
}

func (a *API) createKey(c echo.Context) error {
	var in struct {
		Name      string     `json:"name"`
		Role      *auth.Role `json:"role"`
		ExpiresAt *string    `json:"expires_at"` // read here, so a bad one is a 400 naming it
	}
	if err := readJSON(c, &in); err != nil {
		return err
	}
	n := auth.NewKey{Name: in.Name}
	if in.ExpiresAt != nil {
		t, err := time.Parse(time.RFC3339, *in.ExpiresAt)
		if err != nil {
			return badParam("expires_at", "want an RFC 3339 time such as 2030-01-01T00:00:00Z")
		}
		n.ExpiresAt = &t
	}
	if in.Role != nil {
		n.Role = *in.Role
	}
	k, secret, err := a.Auth.CreateKey(c.Request().Context(), principal(c), n)
	if err != nil {
		return err
	}
	a.record(c, audit.Entry{Action: audit.KeyCreate, Target: "key:" + strconv.FormatInt(k.ID, 10), Details: map[string]any{"name": k.Name, "role": k.Role.String()}})
	return c.JSON(http.StatusCreated, KeyCreated{Key: k, Secret: secret})
}

func (a *API) deleteKey(c echo.Context) error {
	id, err := idParam(c, "id")
	if err != nil {
		return err
	}
	k, err := a.Auth.RevokeKey(c.Request().Context(), principal(c).User.ID, id)
	if err != nil {
		return err
	}
	a.record(c, audit.Entry{Action: audit.KeyRevoke, Target: "key:" + strconv.FormatInt(k.ID, 10), Details: map[string]any{"name": k.Name}})
	return c.NoContent(http.StatusNoContent)
}

func (a *API) listAudit(c echo.Context) error {
	pg, err := pageParams(c)
	if err != nil {
		return err
	}
	f := audit.Filter{Action: c.QueryParam("action"), Outcome: c.QueryParam("outcome")}
	if v := c.QueryParam("actor_id"); v != "" {
		if f.ActorID, err = strconv.ParseInt(v, 10, 64); err != nil || f.ActorID < 1 {
			return badParam("actor_id", "want a positive whole number")
		}
	}
	if f.Outcome != "" && f.Outcome != audit.Success && f.Outcome != audit.Failure {
		return badParam("outcome", "want success or failure")
	}
	if v := c.QueryParam("start"); v != "" {
		if f.Since, err = apiparams.DateOrTime(v, false); err != nil {
			return badParam("start", "want a date such as 2024-01-31 or an RFC 3339 time such as 2024-01-31T00:00:00Z")
		}
	}
	if v := c.QueryParam("end"); v != "" {
		if f.Until, err = apiparams.DateOrTime(v, true); err != nil {
			return badParam("end", "want a date such as 2024-01-31 or an RFC 3339 time such as 2024-01-31T00:00:00Z")
		}
	}
	entries, total, err := a.Audit.List(c.Request().Context(), f, pg.Number, pg.Size)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, List[audit.Entry]{Items: entries, Total: total, Page: pg.Number, PageSize: pg.Size})
}

// recordUpload audits an upload: how many files, with what outcome, and their ingest ids.
func (a *API) recordUpload(c echo.Context, files []UploadResult) {
	counts := map[string]int{}
	var ids []int64
	for _, f := range files {
		counts[f.Status]++
		if f.IngestID != nil {
			ids = append(ids, *f.IngestID)
		}
	}
	a.record(c, audit.Entry{Action: audit.Upload, Details: map[string]any{"files": len(files), "statuses": counts, "ingest_ids": ids}})
}
