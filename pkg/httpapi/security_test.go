package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
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
