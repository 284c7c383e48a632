package httpapi_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/auth"
	"github.com/vigilhq/vigil/pkg/httpapi"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// withKey sends a request with an API key instead of the fixture's token.
func withKey(f fixture, method, path, key string, body string) *httptest.ResponseRecorder {
	var req *http.Request
	if body != "" {
		req = httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
	} else {
		req = httptest.NewRequest(method, path, nil)
	}
	req.Header.Set("X-API-Key", key)
	return f.as("").req(req)
}

// Issue 18: an API key cannot create keys (a key made by a key would outlive its parent's
// expiry and revocation), and all of a user's keys and tokens share one rate-limit bucket.
func TestKeysCannotMakeKeysAndShareTheUsersBudget(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		f := newAuthFixture(t, b, fixtureOptions{rates: httpapi.Rates{
			httpapi.RateAPI: {N: 4, Per: time.Minute}, httpapi.RateAuth: {N: 100, Per: time.Minute},
		}})
		an := f.asRole(auth.Analyst)
		mk := func(name string) string {
			rec := an.json(t, http.MethodPost, "/users/api-keys", map[string]any{"name": name, "expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
			if rec.Code != 201 {
				t.Fatalf("create key %s with a session: %d %s", name, rec.Code, rec.Body)
			}
			return decode[map[string]any](t, rec)["key"].(string)
		}
		k1, k2 := mk("one"), mk("two") // 2 requests of the analyst's 4
		rec := withKey(f, http.MethodPost, "/users/api-keys", k1, `{"name":"child"}`)
		if rec.Code != 403 || !strings.Contains(rec.Body.String(), "login session") {
			t.Fatalf("a key creating a key: %d %s, want 403", rec.Code, rec.Body)
		}
		// 4 requests used (2 creations, the refused one, and this); the 5th, whichever
		// credential of the user carries it, is over the budget.
		if rec := withKey(f, http.MethodGet, "/api/domains", k2, ""); rec.Code != 200 {
			t.Fatalf("4th request with the second key: %d", rec.Code)
		}
		for name, send := range map[string]func() int{
			"first key":  func() int { return withKey(f, http.MethodGet, "/api/domains", k1, "").Code },
			"second key": func() int { return withKey(f, http.MethodGet, "/api/domains", k2, "").Code },
			"token":      func() int { return an.do(t, http.MethodGet, "/api/domains", nil, "").Code },
		} {
			if code := send(); code != 429 {
				t.Errorf("5th request of the user with the %s: %d, want 429", name, code)
			}
		}
		if rec := f.asRole(auth.Viewer).do(t, http.MethodGet, "/api/domains", nil, ""); rec.Code != 200 {
			t.Fatalf("another user: %d", rec.Code)
		}
	})
}

// logBuffer collects a test's log lines; safe for concurrent writes.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Issue 18: the admin and account flows, failures included (a 409 on PATCH /users/{id} with a
// new password fails an UPDATE that carries its hash), log no password, hash, token or key at
// any level.
func TestNoSecretsInLogs(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		var logs logBuffer
		f := newAuthFixture(t, b, fixtureOptions{log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		secrets := []string{password}
		const p1, p2, p3 = "first secret passphrase 81", "second secret passphrase 82", "third secret passphrase 83"
		secrets = append(secrets, p1, p2, p3)
		rec := f.json(t, http.MethodPost, "/users", map[string]any{"email": "sam@example.com", "password": p1, "role": "analyst", "name": "Sam"})
		if rec.Code != 201 {
			t.Fatalf("create: %d %s", rec.Code, rec.Body)
		}
		id := int64(decode[map[string]any](t, rec)["id"].(float64))
		// The 409: the e-mail is taken, and the row update carried the new password's hash.
		if rec := f.json(t, http.MethodPatch, fmt.Sprintf("/users/%d", id), map[string]any{"email": "admin@example.com", "password": p2}); rec.Code != 409 {
			t.Fatalf("patch to a taken e-mail: %d %s", rec.Code, rec.Body)
		}
		if rec := f.json(t, http.MethodPost, "/users", map[string]any{"email": "sam@example.com", "password": p2, "role": "viewer"}); rec.Code != 409 {
			t.Fatalf("create with a taken e-mail: %d %s", rec.Code, rec.Body)
		}
		f.as("").json(t, http.MethodPost, "/auth/login", map[string]any{"email": "sam@example.com", "password": p2})
		tok := f.login(t, "sam@example.com", p1)
		secrets = append(secrets, tok.AccessToken, tok.RefreshToken)
		sam := f.as("Bearer " + tok.AccessToken)
		rec = sam.json(t, http.MethodPost, "/users/api-keys", map[string]any{"name": "script"})
		if rec.Code != 201 {
			t.Fatalf("key: %d %s", rec.Code, rec.Body)
		}
		key := decode[map[string]any](t, rec)["key"].(string)
		secrets = append(secrets, key)
		withKey(f, http.MethodGet, "/api/reports", key, "")
		withKey(f, http.MethodGet, "/api/reports", key[:len(key)-1]+"x", "")
		rec = f.as("").json(t, http.MethodPost, "/auth/refresh", map[string]any{"refresh_token": tok.RefreshToken})
		if rec.Code != 200 {
			t.Fatalf("refresh: %d %s", rec.Code, rec.Body)
		}
		next := decode[auth.Tokens](t, rec)
		secrets = append(secrets, next.AccessToken, next.RefreshToken)
		f.as("").json(t, http.MethodPost, "/auth/refresh", map[string]any{"refresh_token": tok.RefreshToken}) // a replay
		sam = f.as("Bearer " + f.login(t, "sam@example.com", p1).AccessToken)
		sam.json(t, http.MethodPatch, "/users/me", map[string]any{"password": p3, "current_password": p2})
		if rec := sam.json(t, http.MethodPatch, "/users/me", map[string]any{"password": p3, "current_password": p1}); rec.Code != 200 {
			t.Fatalf("own password change: %d %s", rec.Code, rec.Body)
		}
		f.json(t, http.MethodPatch, fmt.Sprintf("/users/%d", id), map[string]any{"password": p2})
		f.do(t, http.MethodDelete, fmt.Sprintf("/users/%d", id), nil, "")

		var hashes []string
		if err := f.st.DB().Raw("SELECT password_hash FROM users").Scan(&hashes).Error; err != nil {
			t.Fatal(err)
		}
		var keyHashes []string
		f.st.DB().Raw("SELECT key_hash FROM api_keys").Scan(&keyHashes)
		secrets = append(append(secrets, hashes...), keyHashes...)
		out := logs.String()
		if !strings.Contains(out, "query failed") {
			t.Fatalf("no failed statement was logged, so this test proves nothing:\n%s", out)
		}
		for _, s := range append(secrets, "$argon2id$", "vgl_") {
			if s != "" && strings.Contains(out, s) {
				t.Errorf("the log carries %.24q…", s)
			}
		}
	})
}

// Issue 18: current_password on PATCH /users/me is guessed against the login lockout: after
// the account's threshold of wrong ones, even the right one is a 429 with Retry-After.
func TestCurrentPasswordIsThrottled(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		f := newAuthFixture(t, b, fixtureOptions{})
		v := f.asRole(auth.Viewer)
		codes := map[int]int{}
		for range 12 {
			codes[v.json(t, http.MethodPatch, "/users/me", map[string]any{"password": "a brand new passphrase", "current_password": "not it at all"}).Code]++
		}
		if codes[400] != 5 || codes[429] != 7 {
			t.Fatalf("12 wrong current passwords: %v, want 5×400 then 429s", codes)
		}
		rec := v.json(t, http.MethodPatch, "/users/me", map[string]any{"password": "a brand new passphrase", "current_password": password})
		if rec.Code != 429 || rec.Header().Get("Retry-After") == "" {
			t.Fatalf("the right current password after 12 wrong ones: %d %s, want 429", rec.Code, rec.Body)
		}
		if rec := f.as("").json(t, http.MethodPost, "/auth/login", map[string]any{"email": "viewer@example.com", "password": password}); rec.Code != 429 {
			t.Fatalf("login of the locked account: %d, want 429", rec.Code)
		}
	})
}

// downRedis fails its ping the way a driver does, naming an internal address.
type downRedis struct{}

func (downRedis) Ping(context.Context) error {
	return errors.New("dial tcp 10.1.2.3:16383: connect: connection refused")
}

// Issue 18: /ready tells an anonymous caller which dependency is down, never the driver's
// error; an admin gets the detail.
func TestReadyHidesDetailFromAnonymousCallers(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t, testenv.Backends()[0], fixtureOptions{redis: downRedis{}})
	for _, c := range []struct {
		who    string
		f      fixture
		detail bool
	}{
		{"anonymous", f.as(""), false},
		{"a forged token", f.as("Bearer not-a-token"), false},
		{"a viewer", f.asRole(auth.Viewer), false},
		{"an admin", f.asRole(auth.Admin), true},
	} {
		rec := c.f.do(t, http.MethodGet, "/ready", nil, "")
		body := rec.Body.String()
		if rec.Code != http.StatusServiceUnavailable || !strings.Contains(body, `"redis":"`) || !strings.Contains(body, `"database":"ok"`) {
			t.Fatalf("%s: %d %s", c.who, rec.Code, body)
		}
		if got := strings.Contains(body, "10.1.2.3") || strings.Contains(body, "refused"); got != c.detail {
			t.Errorf("%s: detail shown %v, want %v: %s", c.who, got, c.detail, body)
		}
	}
}

// Issue 18: a JSON body that is not UTF-8, raw or through an unpaired surrogate escape, is a
// 400; encoding/json would have turned it into U+FFFD and so set another password than the
// one sent. A proper surrogate pair is a character like any other.
func TestPasswordsAreStrictUTF8(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t, testenv.Backends()[0], fixtureOptions{})
	post := func(fx fixture, path, body string) *httptest.ResponseRecorder {
		return fx.do(t, http.MethodPost, path, strings.NewReader(body), "application/json")
	}
	for name, pw := range map[string]string{
		"raw invalid bytes":   "long enough password \xff\xfe",
		"a lone high escape":  `long enough password \ud800`,
		"a lone low escape":   `long enough password \udc00 tail`,
		"a reversed pair":     `long enough password \udc00\ud800`,
		"a high at the end":   `long enough password \ud83d`,
		"a high before ascii": `long enough password \ud83d\u0041`,
	} {
		rec := post(f, "/users", `{"email":"utf@example.com","role":"viewer","password":"`+pw+`"}`)
		if rec.Code != 400 || !strings.Contains(rec.Body.String(), "UTF-8") && !strings.Contains(rec.Body.String(), "surrogate") {
			t.Errorf("create with %s: %d %s, want 400", name, rec.Code, rec.Body)
		}
		if rec := post(f.as(""), "/auth/login", `{"email":"viewer@example.com","password":"`+pw+`"}`); rec.Code != 400 {
			t.Errorf("login with %s: %d %s, want 400", name, rec.Code, rec.Body)
		}
	}
	if rec := post(f, "/users", `{"email":"utf@example.com","role":"viewer","password":"long enough password \ud83d\ude00 \\ud800"}`); rec.Code != 201 {
		t.Fatalf("a surrogate pair and an escaped backslash: %d %s", rec.Code, rec.Body)
	}
	f.login(t, "utf@example.com", "long enough password \U0001F600 \\ud800")
}

// Issue 18: an uploaded file's name is stored without bidi overrides or other invisible
// characters, so "report<U+202E>lmx.exe" cannot pass for an XML file in a listing.
func TestUploadedNamesLoseBidiCharacters(t *testing.T) {
	t.Parallel()
	f := newAuthFixture(t, testenv.Backends()[0], fixtureOptions{})
	body, ctype := multipartBody(t, []part{{"files", "report\u202Elmx.exe\u200B", []byte("<feedback/>")}})
	rec := f.asRole(auth.Analyst).do(t, http.MethodPost, "/api/upload", body, ctype)
	if rec.Code != 202 {
		t.Fatalf("upload: %d %s", rec.Code, rec.Body)
	}
	got := decode[map[string][]map[string]any](t, rec)["files"]
	if len(got) != 1 || got[0]["filename"] != "reportlmx.exe" {
		t.Fatalf("upload answer %v", got)
	}
	id := int64(got[0]["ingest_id"].(float64))
	rec = f.do(t, http.MethodGet, fmt.Sprintf("/api/ingests/%d", id), nil, "")
	if name := decode[map[string]any](t, rec)["filename"]; name != "reportlmx.exe" {
		t.Fatalf("stored name %q", name)
	}
}
