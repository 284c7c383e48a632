package httpapi_test

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/vigilhq/vigil/pkg/apiparams"
	"github.com/vigilhq/vigil/pkg/audit"
	"github.com/vigilhq/vigil/pkg/auth"
	"github.com/vigilhq/vigil/pkg/httpapi"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// okHandler stands in for Asynqmon.
var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("monitor " + r.URL.Path)) })

// SECURITY-CASES D.30 (BFLA): every route the router serves is declared in the route table,
// and each answers 401 without credentials, 403 to the role just below its own, and neither
// to its own role.
func TestRouteTable(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		f := newAuthFixture(t, b, fixtureOptions{monitoring: okHandler})
		declared := map[string]httpapi.Route{}
		for _, rt := range httpapi.Routes() {
			declared[rt.Method+" "+rt.Path] = rt
		}
		seen := 0
		for _, r := range f.e.Routes() {
			if r.Method == "echo_route_not_found" {
				continue
			}
			rt, ok := declared[r.Method+" "+r.Path]
			if !ok {
				rt, ok = declared["* "+r.Path]
			}
			if !ok {
				t.Errorf("%s %s is served but not declared in the route table", r.Method, r.Path)
				continue
			}
			seen++
			path := strings.NewReplacer(":id", "999", "*", "queues").Replace(r.Path)
			call := func(cred string) int {
				req := httptest.NewRequest(r.Method, path, strings.NewReader("{}"))
				req.Header.Set("Content-Type", "application/json")
				return f.as(cred).req(req).Code
			}
			if r.Method == http.MethodOptions {
				// The CORS middleware answers every OPTIONS itself, before any guard or handler.
				req := httptest.NewRequest(r.Method, path, nil)
				if rec := f.as("").req(req); rec.Code != http.StatusNoContent || rec.Body.Len() != 0 {
					t.Errorf("OPTIONS %s: %d %q, want an empty 204", path, rec.Code, rec.Body)
				}
				continue
			}
			if rt.Role == auth.Public {
				if code := call(""); code == http.StatusUnauthorized || code == http.StatusForbidden {
					t.Errorf("public %s %s: %d without credentials", r.Method, path, code)
				}
				continue
			}
			if code := call(""); code != http.StatusUnauthorized {
				t.Errorf("%s %s without credentials: %d, want 401", r.Method, path, code)
			}
			if rt.Role > auth.Viewer {
				if code := call(f.creds[rt.Role-1]); code != http.StatusForbidden {
					t.Errorf("%s %s as %s: %d, want 403", r.Method, path, rt.Role-1, code)
				}
			}
			if code := call(f.creds[rt.Role]); code == http.StatusUnauthorized || code == http.StatusForbidden {
				t.Errorf("%s %s as %s: %d, want neither 401 nor 403", r.Method, path, rt.Role, code)
			}
		}
		if seen < len(declared) {
			t.Errorf("%d routes served of %d declared", seen, len(declared))
		}
		// The admin check covers everything below /monitoring, not only the index.
		for _, p := range []string{"/monitoring", "/monitoring/", "/monitoring/api/queues", "/monitoring/static/js/x.js"} {
			if code := call(f, http.MethodGet, p, f.creds[auth.Analyst]); code != http.StatusForbidden {
				t.Errorf("GET %s as analyst: %d, want 403", p, code)
			}
		}
	})
}

func call(f fixture, method, path, cred string) int {
	return f.as(cred).req(httptest.NewRequest(method, path, nil)).Code
}

// Browsers reach Asynqmon with Basic auth carrying an admin API key; a cross-site POST with
// those cached credentials is refused (CSRF).
func TestMonitoringBasicAuth(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t, testenv.Backends()[0], fixtureOptions{monitoring: okHandler})
	rec := f.as("").req(httptest.NewRequest(http.MethodGet, "/monitoring/", nil))
	if rec.Code != 401 || !strings.Contains(strings.Join(rec.Header().Values("WWW-Authenticate"), ","), "Basic") {
		t.Fatalf("no credentials: %d %v", rec.Code, rec.Header())
	}
	key := decode[map[string]any](t, f.json(t, http.MethodPost, "/users/api-keys", map[string]any{"name": "monitor"}))["key"].(string)
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+key))
	if rec := f.as(basic).req(httptest.NewRequest(http.MethodGet, "/monitoring/", nil)); rec.Code != 200 || rec.Body.String() != "monitor /monitoring/" {
		t.Fatalf("Basic with an admin key: %d %s", rec.Code, rec.Body)
	}
	if rec := f.as(basic).req(httptest.NewRequest(http.MethodGet, "/users/me", nil)); rec.Code != 401 {
		t.Fatalf("Basic outside /monitoring: %d", rec.Code)
	}
	req := httptest.NewRequest(http.MethodPost, "/monitoring/api/queues/default:pause", nil)
	req.Header.Set("Origin", "https://evil.example")
	if rec := f.as(basic).req(req); rec.Code != 403 {
		t.Fatalf("cross-origin POST with Basic: %d", rec.Code)
	}
	req = httptest.NewRequest(http.MethodPost, "/monitoring/api/queues/default:pause", nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if rec := f.as(basic).req(req); rec.Code != 403 {
		t.Fatalf("cross-site POST with Basic: %d", rec.Code)
	}
	req = httptest.NewRequest(http.MethodPost, "/monitoring/api/queues/default:pause", nil)
	req.Header.Set("Origin", "http://example.com") // httptest's Host
	if rec := f.as(basic).req(req); rec.Code != 200 {
		t.Fatalf("same-origin POST with Basic: %d", rec.Code)
	}
	viewerKey := decode[map[string]any](t, f.json(t, http.MethodPost, "/users/api-keys", map[string]any{"name": "v", "role": "viewer"}))["key"].(string)
	vb := "Basic " + base64.StdEncoding.EncodeToString([]byte("x:"+viewerKey))
	if rec := f.as(vb).req(httptest.NewRequest(http.MethodGet, "/monitoring/", nil)); rec.Code != 403 {
		t.Fatalf("Basic with a viewer key: %d", rec.Code)
	}
}

// The login flow over HTTP: tokens, /users/me, refresh rotation, replay, logout.
func TestLoginRefreshLogout(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		f := newAuthFixture(t, b, fixtureOptions{})
		tok := f.login(t, "Analyst@Example.com", password)
		if tok.TokenType != "bearer" || tok.ExpiresIn != 900 || tok.AccessToken == "" || tok.RefreshToken == "" {
			t.Fatalf("tokens %+v", tok)
		}
		me := decode[map[string]any](t, f.as("Bearer "+tok.AccessToken).do(t, http.MethodGet, "/users/me", nil, ""))
		if me["email"] != "analyst@example.com" || me["role"] != "analyst" || me["last_login_at"] == nil {
			t.Fatalf("me: %v", me)
		}
		for k := range me {
			if strings.Contains(k, "hash") || strings.Contains(k, "password") || k == "token_version" {
				t.Fatalf("/users/me shows %s", k)
			}
		}
		anon := f.as("")
		rec := anon.json(t, http.MethodPost, "/auth/refresh", map[string]string{"refresh_token": tok.RefreshToken})
		if rec.Code != 200 {
			t.Fatalf("refresh: %d %s", rec.Code, rec.Body)
		}
		next := decode[auth.Tokens](t, rec)
		// Replay of the used refresh token: 401, and the session is gone.
		if rec := anon.json(t, http.MethodPost, "/auth/refresh", map[string]string{"refresh_token": tok.RefreshToken}); rec.Code != 401 {
			t.Fatalf("replayed refresh token: %d", rec.Code)
		}
		if rec := f.as("Bearer "+next.AccessToken).do(t, http.MethodGet, "/users/me", nil, ""); rec.Code != 401 {
			t.Fatalf("access token of a replayed family: %d", rec.Code)
		}
		entries, _, _ := f.audit.List(t.Context(), audit.Filter{Action: audit.RefreshReplay}, 1, 10)
		if len(entries) != 1 || entries[0].Actor != "analyst@example.com" {
			t.Fatalf("replay audit: %+v", entries)
		}
		// Logout revokes the access token at once.
		tok = f.login(t, "analyst@example.com", password)
		if rec := anon.json(t, http.MethodPost, "/auth/logout", map[string]string{"refresh_token": tok.RefreshToken}); rec.Code != 204 {
			t.Fatalf("logout: %d %s", rec.Code, rec.Body)
		}
		if rec := f.as("Bearer "+tok.AccessToken).do(t, http.MethodGet, "/users/me", nil, ""); rec.Code != 401 {
			t.Fatalf("access token after logout: %d", rec.Code)
		}
		if rec := anon.json(t, http.MethodPost, "/auth/logout", map[string]string{"refresh_token": "garbage"}); rec.Code != 401 {
			t.Fatalf("logout with garbage: %d", rec.Code)
		}
		// Concurrent refreshes over HTTP: exactly one 200.
		tok = f.login(t, "analyst@example.com", password)
		var wg sync.WaitGroup
		var mu sync.Mutex
		codes := map[int]int{}
		for range 10 {
			wg.Go(func() {
				rec := anon.json(t, http.MethodPost, "/auth/refresh", map[string]string{"refresh_token": tok.RefreshToken})
				mu.Lock()
				codes[rec.Code]++
				mu.Unlock()
			})
		}
		wg.Wait()
		if codes[200] != 1 || codes[401] != 9 {
			t.Fatalf("concurrent refreshes: %v, want one 200 and nine 401", codes)
		}
	})
}

// SECURITY-CASES D.26 over HTTP: forged tokens are 401 with a problem body and WWW-Authenticate.
func TestForgedTokens(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t, testenv.Backends()[0], fixtureOptions{})
	tok := f.login(t, "admin@example.com", password)
	parts := strings.Split(tok.AccessToken, ".")
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(tok.AccessToken, claims); err != nil {
		t.Fatal(err)
	}
	noExp := jwt.MapClaims{}
	for k, v := range claims {
		if k != "exp" {
			noExp[k] = v
		}
	}
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
	unsignedNoExp, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, noExp).SignedString([]byte("httpapi-test-secret-of-at-least-32-bytes"))
	wrongAud := jwt.MapClaims{}
	for k, v := range claims {
		wrongAud[k] = v
	}
	wrongAud["aud"] = "vigil-refresh"
	wa, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, wrongAud).SignedString([]byte("httpapi-test-secret-of-at-least-32-bytes"))
	for name, cred := range map[string]string{
		"alg none":         "Bearer " + none,
		"no exp":           "Bearer " + unsignedNoExp,
		"wrong aud":        "Bearer " + wa,
		"refresh token":    "Bearer " + tok.RefreshToken,
		"bad signature":    "Bearer " + parts[0] + "." + parts[1] + ".AAAA",
		"basic on the api": "Basic " + base64.StdEncoding.EncodeToString([]byte("admin@example.com:"+password)),
		"empty bearer":     "Bearer ",
	} {
		rec := f.as(cred).do(t, http.MethodGet, "/api/reports", nil, "")
		if rec.Code != 401 || rec.Header().Get("Content-Type") != "application/problem+json" || !strings.Contains(rec.Header().Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: %d %s %v", name, rec.Code, rec.Body, rec.Header())
		}
	}
	// Both credentials at once are refused rather than one silently preferred.
	req := httptest.NewRequest(http.MethodGet, "/api/reports", nil)
	req.Header.Set("X-API-Key", "vgl_whatever")
	if rec := f.req(req); rec.Code != 401 {
		t.Fatalf("bearer and key together: %d", rec.Code)
	}
}

// SECURITY-CASES D.29: unknown e-mail and wrong password answer the same status and body.
func TestLoginLooksTheSame(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t, testenv.Backends()[0], fixtureOptions{}).as("")
	unknown := f.json(t, http.MethodPost, "/auth/login", map[string]string{"email": "nobody@example.com", "password": "wrong password here"})
	wrong := f.json(t, http.MethodPost, "/auth/login", map[string]string{"email": "viewer@example.com", "password": "wrong password here"})
	if unknown.Code != 401 || wrong.Code != unknown.Code || wrong.Body.String() != unknown.Body.String() {
		t.Fatalf("unknown user %d %s; wrong password %d %s", unknown.Code, unknown.Body, wrong.Code, wrong.Body)
	}
	for _, h := range []string{"Content-Type", "WWW-Authenticate"} {
		if unknown.Header().Get(h) != wrong.Header().Get(h) {
			t.Errorf("header %s differs: %q vs %q", h, unknown.Header().Get(h), wrong.Header().Get(h))
		}
	}
	fails, _, _ := f.audit.List(t.Context(), audit.Filter{Action: audit.Login, Outcome: audit.Failure}, 1, 10)
	if len(fails) != 2 || fails[1].Actor != "nobody@example.com" || fails[0].IP != "192.0.2.1" {
		t.Fatalf("failed logins audited: %+v", fails)
	}
}

// SECURITY-CASES D.29: rotating X-Forwarded-For does not reset the per-address throttle; with
// a trusted proxy, the address is the one the proxy saw.
func TestForwardedForCannotResetThrottle(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		attempt := func(f fixture, email, xff string) *httptest.ResponseRecorder {
			req := httptest.NewRequest(http.MethodPost, "/auth/login", strings.NewReader(fmt.Sprintf(`{"email":%q,"password":"wrong password here"}`, email)))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Forwarded-For", xff)
			return f.as("").req(req)
		}
		f := newAuthFixture(t, b, fixtureOptions{})
		// 20 failures from one peer, each with another X-Forwarded-For and another account.
		for i := range 20 {
			attempt(f, fmt.Sprintf("user%d@example.com", i), fmt.Sprintf("203.0.113.%d", i))
		}
		rec := attempt(f, "fresh@example.com", "198.51.100.1")
		if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
			t.Fatalf("21st failure from one peer behind rotating X-Forwarded-For: %d %v", rec.Code, rec.Header())
		}

		// Behind a trusted proxy (httptest's peer is 192.0.2.1), clients are told apart by XFF,
		// and a client cannot smuggle an address in front of its own.
		g := newAuthFixture(t, b, fixtureOptions{proxies: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")}})
		for i := range 20 {
			attempt(g, fmt.Sprintf("user%d@example.com", i), fmt.Sprintf("10.9.9.%d, 203.0.113.50", i))
		}
		if rec := attempt(g, "fresh@example.com", "203.0.113.50"); rec.Code != http.StatusTooManyRequests {
			t.Fatalf("client 203.0.113.50 spoofing a first hop: %d, want 429", rec.Code)
		}
		if rec := attempt(g, "fresh@example.com", "203.0.113.51"); rec.Code != http.StatusUnauthorized {
			t.Fatalf("another client behind the proxy: %d, want 401", rec.Code)
		}
	})
}

// SECURITY-CASES D.31: mass assignment on /users/me is refused and changes nothing; no answer
// carries a hash or a secret.
func TestMassAssignment(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		f := newAuthFixture(t, b, fixtureOptions{})
		v := f.asRole(auth.Viewer)
		for _, body := range []map[string]any{
			{"role": "admin"}, {"name": "x", "role": "admin"}, {"active": true}, {"email": "admin@example.com"}, {"token_version": 9}, {"password_hash": "x"},
		} {
			rec := v.json(t, http.MethodPatch, "/users/me", body)
			if rec.Code != 400 {
				t.Errorf("PATCH /users/me %v: %d %s, want 400", body, rec.Code, rec.Body)
			}
		}
		me := decode[map[string]any](t, v.do(t, http.MethodGet, "/users/me", nil, ""))
		if me["role"] != "viewer" || me["name"] != "viewer" {
			t.Fatalf("after refused patches: %v", me)
		}
		if rec := v.do(t, http.MethodGet, "/users", nil, ""); rec.Code != 403 {
			t.Fatalf("viewer lists users: %d", rec.Code)
		}
		if rec := v.json(t, http.MethodPatch, "/users/me", map[string]any{"name": "Vera"}); rec.Code != 200 || decode[map[string]any](t, rec)["name"] != "Vera" {
			t.Fatalf("name change: %d %s", rec.Code, rec.Body)
		}
		for _, path := range []string{"/users", "/users/1", "/users/me", "/users/api-keys", "/audit"} {
			body := f.do(t, http.MethodGet, path, nil, "").Body.String()
			for _, bad := range []string{"argon2", "password", "key_hash", "token_version"} {
				if strings.Contains(body, bad) {
					t.Errorf("GET %s shows %q: %s", path, bad, body)
				}
			}
		}
	})
}

// A password change through /users/me needs the current password and logs every session out.
func TestChangeOwnPassword(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t, testenv.Backends()[0], fixtureOptions{})
	v := f.asRole(auth.Viewer)
	if rec := v.json(t, http.MethodPatch, "/users/me", map[string]any{"password": "a brand new passphrase"}); rec.Code != 400 || !strings.Contains(rec.Body.String(), "current_password") {
		t.Fatalf("without current_password: %d %s", rec.Code, rec.Body)
	}
	if rec := v.json(t, http.MethodPatch, "/users/me", map[string]any{"password": "a brand new passphrase", "current_password": "not it at all"}); rec.Code != 400 {
		t.Fatalf("wrong current_password: %d %s", rec.Code, rec.Body)
	}
	if rec := v.json(t, http.MethodPatch, "/users/me", map[string]any{"password": "password1234", "current_password": password}); rec.Code != 400 || !strings.Contains(rec.Body.String(), "common") {
		t.Fatalf("common new password: %d %s", rec.Code, rec.Body)
	}
	if rec := v.json(t, http.MethodPatch, "/users/me", map[string]any{"password": "a brand new passphrase", "current_password": password}); rec.Code != 200 {
		t.Fatalf("password change: %d %s", rec.Code, rec.Body)
	}
	if rec := v.do(t, http.MethodGet, "/users/me", nil, ""); rec.Code != 401 {
		t.Fatalf("old token after a password change: %d", rec.Code)
	}
	f.login(t, "viewer@example.com", "a brand new passphrase")
}

// Admin user management over HTTP, audited.
func TestUserAdmin(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		f := newAuthFixture(t, b, fixtureOptions{})
		rec := f.json(t, http.MethodPost, "/users", map[string]any{"email": "New@Example.com", "password": "another long passphrase", "role": "analyst", "name": "Nina"})
		if rec.Code != 201 {
			t.Fatalf("create: %d %s", rec.Code, rec.Body)
		}
		u := decode[map[string]any](t, rec)
		id := int64(u["id"].(float64))
		if u["email"] != "new@example.com" || u["role"] != "analyst" || u["active"] != true {
			t.Fatalf("created %v", u)
		}
		cases := []struct {
			body   map[string]any
			status int
			detail string
		}{
			{map[string]any{"email": "new@example.com", "password": "another long passphrase"}, 409, "in use"},
			{map[string]any{"email": "x@example.com", "password": "short"}, 400, "password"},
			{map[string]any{"email": "x@example.com", "password": "qwertyuiop123"}, 400, "common"},
			{map[string]any{"email": "not-an-email", "password": "another long passphrase"}, 400, "email"},
			{map[string]any{"email": "x@example.com", "password": "another long passphrase", "role": "root"}, 400, "role"},
			{map[string]any{"email": "x@example.com", "password": "another long passphrase", "is_admin": true}, 400, "is_admin"},
		}
		for _, c := range cases {
			rec := f.json(t, http.MethodPost, "/users", c.body)
			if rec.Code != c.status || !strings.Contains(rec.Body.String(), c.detail) {
				t.Errorf("POST /users %v: %d %s, want %d naming %q", c.body, rec.Code, rec.Body, c.status, c.detail)
			}
		}
		tok := f.login(t, "new@example.com", "another long passphrase")
		rec = f.json(t, http.MethodPatch, fmt.Sprintf("/users/%d", id), map[string]any{"role": "viewer"})
		if rec.Code != 200 || decode[map[string]any](t, rec)["role"] != "viewer" {
			t.Fatalf("demote: %d %s", rec.Code, rec.Body)
		}
		if rec := f.as("Bearer "+tok.AccessToken).do(t, http.MethodGet, "/users/me", nil, ""); rec.Code != 401 {
			t.Fatalf("token after a role change: %d", rec.Code)
		}
		list := decode[apiparams.List[map[string]any]](t, f.do(t, http.MethodGet, "/users?page_size=2", nil, ""))
		if list.Total != 4 || len(list.Items) != 2 {
			t.Fatalf("users: %+v", list)
		}
		admin := decode[map[string]any](t, f.do(t, http.MethodGet, "/users/me", nil, ""))
		if rec := f.json(t, http.MethodPatch, fmt.Sprintf("/users/%v", admin["id"]), map[string]any{"active": false}); rec.Code != 409 {
			t.Fatalf("deactivating the last admin: %d %s", rec.Code, rec.Body)
		}
		if rec := f.do(t, http.MethodDelete, fmt.Sprintf("/users/%d", id), nil, ""); rec.Code != 204 {
			t.Fatalf("delete: %d %s", rec.Code, rec.Body)
		}
		if rec := f.do(t, http.MethodGet, fmt.Sprintf("/users/%d", id), nil, ""); rec.Code != 404 {
			t.Fatalf("deleted user: %d", rec.Code)
		}
		got := decode[apiparams.List[audit.Entry]](t, f.do(t, http.MethodGet, "/audit?page_size=100", nil, ""))
		actions := map[string]int{}
		for _, e := range got.Items {
			actions[e.Action]++
			if e.Action == audit.UserCreate && (e.Actor != "admin@example.com" || e.IP == "" || e.Target != fmt.Sprintf("user:%d", id)) {
				t.Errorf("user.create entry %+v", e)
			}
		}
		if actions[audit.UserCreate] != 1 || actions[audit.UserUpdate] != 1 || actions[audit.UserDelete] != 1 || actions[audit.Login] < 4 {
			t.Fatalf("audit actions %v", actions)
		}
		if rec := f.do(t, http.MethodGet, "/audit?outcome=maybe", nil, ""); rec.Code != 400 || !strings.Contains(rec.Body.String(), "outcome") {
			t.Fatalf("bad outcome filter: %d", rec.Code)
		}
	})
}

// SECURITY-CASES D.30 over HTTP: keys shown once, usable in X-API-Key only, never in the URL,
// someone else's key is 404, revocation is immediate, a viewer key cannot upload.
func TestAPIKeysOverHTTP(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		f := newAuthFixture(t, b, fixtureOptions{})
		an := f.asRole(auth.Analyst)
		rec := an.json(t, http.MethodPost, "/users/api-keys", map[string]any{"name": "uploader", "expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
		if rec.Code != 201 {
			t.Fatalf("create key: %d %s", rec.Code, rec.Body)
		}
		k := decode[map[string]any](t, rec)
		key, id := k["key"].(string), int64(k["id"].(float64))
		if k["role"] != "analyst" || k["expires_at"] == nil || !strings.HasPrefix(key, k["prefix"].(string)) {
			t.Fatalf("key answer %v", k)
		}
		list := an.do(t, http.MethodGet, "/users/api-keys", nil, "").Body.String()
		if strings.Contains(list, key) || !strings.Contains(list, "uploader") {
			t.Fatalf("key list shows the key or misses it: %s", list)
		}
		withKey := func(method, path, key string) int {
			req := httptest.NewRequest(method, path, nil)
			req.Header.Set("X-API-Key", key)
			return f.as("").req(req).Code
		}
		if code := withKey(http.MethodGet, "/api/reports", key); code != 200 {
			t.Fatalf("GET with the key: %d", code)
		}
		if code := call(f, http.MethodGet, "/api/reports?api_key="+key, ""); code != 401 {
			t.Fatalf("key in the query string: %d, want 401", code)
		}
		if rec := an.json(t, http.MethodPost, "/users/api-keys", map[string]any{"name": "up", "role": "admin"}); rec.Code != 403 {
			t.Fatalf("analyst asking for an admin key: %d", rec.Code)
		}
		viewerKey := decode[map[string]any](t, an.json(t, http.MethodPost, "/users/api-keys", map[string]any{"name": "ro", "role": "viewer"}))["key"].(string)
		body, ctype := multipartBody(t, []part{{"files", "a.xml", []byte("<feedback/>")}})
		req := httptest.NewRequest(http.MethodPost, "/api/upload", body)
		req.Header.Set("Content-Type", ctype)
		req.Header.Set("X-API-Key", viewerKey)
		if rec := f.as("").req(req); rec.Code != 403 {
			t.Fatalf("upload with a viewer key: %d", rec.Code)
		}
		// BOLA: another user (even an admin) cannot see or revoke it: 404.
		if code := call(f, http.MethodDelete, fmt.Sprintf("/users/api-keys/%d", id), f.creds[auth.Admin]); code != 404 {
			t.Fatalf("admin revoking the analyst's key: %d, want 404", code)
		}
		if strings.Contains(f.do(t, http.MethodGet, "/users/api-keys", nil, "").Body.String(), "uploader") {
			t.Fatal("the admin's key list shows the analyst's key")
		}
		if code := withKey(http.MethodGet, "/api/reports", key); code != 200 {
			t.Fatalf("key after someone else's revoke attempt: %d", code)
		}
		if code := call(f, http.MethodDelete, fmt.Sprintf("/users/api-keys/%d", id), f.creds[auth.Analyst]); code != 204 {
			t.Fatalf("owner revoking: %d", code)
		}
		if code := withKey(http.MethodGet, "/api/reports", key); code != 401 {
			t.Fatalf("revoked key: %d, want 401 at once", code)
		}
		entries, _, _ := f.audit.List(t.Context(), audit.Filter{Action: audit.KeyRevoke}, 1, 10)
		if len(entries) != 1 || entries[0].Actor != "analyst@example.com" {
			t.Fatalf("key.revoke audit: %+v", entries)
		}
	})
}

// Rate limits: per user or key, 429 with Retry-After; a lockout answers 429 with Retry-After too.
func TestRateLimits(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		f := newAuthFixture(t, b, fixtureOptions{rates: httpapi.Rates{
			httpapi.RateAPI: {N: 3, Per: time.Minute}, httpapi.RateUpload: {N: 1, Per: time.Hour}, httpapi.RateAuth: {N: 100, Per: time.Minute},
		}})
		v := f.asRole(auth.Viewer)
		for i := 1; i <= 4; i++ {
			rec := v.do(t, http.MethodGet, "/api/domains", nil, "")
			if i <= 3 && rec.Code != 200 {
				t.Fatalf("request %d: %d", i, rec.Code)
			}
			if i == 4 {
				ra, err := strconv.Atoi(rec.Header().Get("Retry-After"))
				if rec.Code != 429 || err != nil || ra < 1 || ra > 60 || rec.Header().Get("Content-Type") != "application/problem+json" {
					t.Fatalf("request 4: %d Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
				}
			}
		}
		// Another user has their own budget; so has the same user's upload class.
		if rec := f.asRole(auth.Analyst).do(t, http.MethodGet, "/api/domains", nil, ""); rec.Code != 200 {
			t.Fatalf("another user: %d", rec.Code)
		}
		up := func() int {
			body, ctype := multipartBody(t, []part{{"files", "a.xml", []byte("<feedback/>")}})
			return f.asRole(auth.Analyst).do(t, http.MethodPost, "/api/upload", body, ctype).Code
		}
		if c1, c2 := up(), up(); c1 != 202 || c2 != 429 {
			t.Fatalf("uploads at 1/h: %d then %d", c1, c2)
		}
		// Five wrong passwords lock the account: the sixth attempt is 429 with Retry-After.
		anon := f.as("")
		for range 5 {
			anon.json(t, http.MethodPost, "/auth/login", map[string]string{"email": "viewer@example.com", "password": "wrong password here"})
		}
		rec := anon.json(t, http.MethodPost, "/auth/login", map[string]string{"email": "viewer@example.com", "password": password})
		if rec.Code != 429 || rec.Header().Get("Retry-After") == "" {
			t.Fatalf("login on a locked account: %d %v", rec.Code, rec.Header())
		}
	})
}

// SECURITY-CASES D.31 and D.34: JSON bodies are bounded and typed; every answer, errors
// included, carries the security headers.
func TestBodiesAndHeaders(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t, testenv.Backends()[0], fixtureOptions{monitoring: okHandler})
	big := bytes.Repeat([]byte("a"), 1<<20+10)
	if rec := f.do(t, http.MethodPost, "/users", bytes.NewReader(append(append([]byte(`{"name":"`), big...), '"', '}')), "application/json"); rec.Code != 413 {
		t.Fatalf("body over 1 MiB: %d", rec.Code)
	}
	if rec := f.as("").do(t, http.MethodPost, "/auth/login", strings.NewReader("email=a&password=b"), "application/x-www-form-urlencoded"); rec.Code != 415 {
		t.Fatalf("form-encoded login: %d", rec.Code)
	}
	if rec := f.as("").do(t, http.MethodPost, "/auth/login", strings.NewReader(`{"email":1}`), "application/json"); rec.Code != 400 || !strings.Contains(rec.Body.String(), "email") {
		t.Fatalf("wrong type: %d %s", rec.Code, rec.Body)
	}
	for _, c := range []struct {
		method, path, cred string
		https              bool
		status             int
	}{
		{http.MethodGet, "/health", "", false, 200},
		{http.MethodGet, "/api/reports", "", false, 401},
		{http.MethodGet, "/users", f.creds[auth.Viewer], false, 403},
		{http.MethodGet, "/nowhere", "", false, 404},
		{http.MethodPut, "/health", "", false, 405},
		{http.MethodGet, "/api/reports?page_size=9999", f.creds[auth.Viewer], true, 400},
		{http.MethodGet, "/monitoring/", f.creds[auth.Admin], true, 200},
	} {
		req := httptest.NewRequest(c.method, c.path, nil)
		req.Header.Set("X-Forwarded-Proto", "https") // from an untrusted peer: ignored
		if c.https {
			req.TLS = &tls.ConnectionState{}
		}
		rec := f.as(c.cred).req(req)
		h := rec.Header()
		if rec.Code != c.status {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, rec.Code, c.status)
		}
		csp := h.Get("Content-Security-Policy")
		if h.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(csp, "frame-ancestors 'none'") || h.Get("Referrer-Policy") != "no-referrer" ||
			h.Get("Cache-Control") != "no-store" || h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s %s (%d): headers %v", c.method, c.path, rec.Code, h)
		}
		if hsts := h.Get("Strict-Transport-Security"); (hsts != "") != c.https {
			t.Errorf("%s %s: HSTS %q over https=%v", c.method, c.path, hsts, c.https)
		}
	}
}

// SECURITY-CASES D.34: CORS for the listed origins only, compared exactly; Vary: Origin; never
// "*" and never with credentials.
func TestCORS(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t, testenv.Backends()[0], fixtureOptions{origins: []string{"https://vigil.example.com"}})
	send := func(method, origin string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, "/api/reports", nil)
		req.Header.Set("Origin", origin)
		if method == http.MethodOptions {
			req.Header.Set("Access-Control-Request-Method", "GET")
			req.Header.Set("Access-Control-Request-Headers", "authorization")
		}
		return f.as("").req(req)
	}
	for _, m := range []string{http.MethodGet, http.MethodOptions} {
		ok := send(m, "https://vigil.example.com")
		if ok.Header().Get("Access-Control-Allow-Origin") != "https://vigil.example.com" || ok.Header().Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("%s from the allowed origin: %v", m, ok.Header())
		}
		for _, bad := range []string{"https://evil.example", "null", "https://vigil.example.com.evil.com", "https://evil-vigil.example.com", "http://vigil.example.com", "https://vigil.example.com:8443"} {
			rec := send(m, bad)
			if acao := rec.Header().Get("Access-Control-Allow-Origin"); acao != "" {
				t.Errorf("%s from %s: Access-Control-Allow-Origin %q", m, bad, acao)
			}
			if !strings.Contains(strings.Join(rec.Header().Values("Vary"), ","), "Origin") {
				t.Errorf("%s from %s: no Vary: Origin", m, bad)
			}
		}
	}
	if pre := send(http.MethodOptions, "https://vigil.example.com"); pre.Code != 204 || !strings.Contains(strings.ToLower(pre.Header().Get("Access-Control-Allow-Headers")), "authorization") {
		t.Fatalf("preflight: %d %v", pre.Code, pre.Header())
	}
}

// openapi.json states each operation's least role (x-vigil-min-role); it must be the table's.
func TestOpenAPIRolesMatchTable(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t, testenv.Backends()[0], fixtureOptions{})
	spec := decode[struct {
		Paths map[string]map[string]map[string]any `json:"paths"`
	}](t, f.do(t, http.MethodGet, "/openapi.json", nil, ""))
	for _, rt := range httpapi.Routes() {
		p := rt.Path
		for _, seg := range strings.Split(p, "/") {
			if strings.HasPrefix(seg, ":") {
				p = strings.Replace(p, seg, "{"+seg[1:]+"}", 1)
			}
		}
		method := strings.ToLower(rt.Method)
		if rt.Method == "*" {
			if p != "/monitoring" {
				continue
			}
			method = "get"
		}
		op, ok := spec.Paths[p][method]
		if !ok {
			t.Errorf("%s %s: not in openapi.json", rt.Method, p)
			continue
		}
		if got := op["x-vigil-min-role"]; got != rt.Role.String() {
			t.Errorf("%s %s: openapi.json says %v, the route table %s", rt.Method, p, got, rt.Role)
		}
	}
}
