package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/pkg/apicontract"
	"github.com/vigilhq/vigil/pkg/audit"
	"github.com/vigilhq/vigil/pkg/auth"
	"github.com/vigilhq/vigil/pkg/dmarc"
	"github.com/vigilhq/vigil/pkg/httpapi"
	"github.com/vigilhq/vigil/pkg/ingest"
	"github.com/vigilhq/vigil/pkg/mailpoll"
	"github.com/vigilhq/vigil/pkg/ratelimit"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
	"github.com/vigilhq/vigil/pkg/unwrap"
)

// redisDB is this package's database on the real server; tests share it under their own prefix.
const redisDB = 7

var realRedis struct {
	once sync.Once
	opt  asynq.RedisClientOpt
}

func testRedis(t *testing.T, b testenv.Backend) *redis.Client {
	t.Helper()
	var opt asynq.RedisClientOpt
	if b.Real() {
		realRedis.once.Do(func() { realRedis.opt = b.Redis(t, redisDB) })
		opt = realRedis.opt
	} else {
		opt = b.Redis(t, redisDB)
	}
	c := redis.NewClient(&redis.Options{Addr: opt.Addr, Password: opt.Password, DB: opt.DB})
	t.Cleanup(func() { c.Close() })
	return c
}

var fixtureSeq atomic.Int64

const password = "correct horse battery staple"

type fixtureOptions struct {
	limits     httpapi.Limits
	rates      httpapi.Rates // nil: generous limits that no test reaches by accident
	proxies    []netip.Prefix
	origins    []string
	monitoring http.Handler
	log        *slog.Logger // nil: testenv.Logger(); given, the store and the API log there
	redis      httpapi.Pinger
	store      *store.Store // nil: a fresh one of the backend
	mail       *mailpoll.Service
}

var roleEmails = map[auth.Role]string{auth.Viewer: "viewer@example.com", auth.Analyst: "analyst@example.com", auth.Admin: "admin@example.com"}

// newAuthFixture builds the API with authentication on the backend's store and Redis, one
// user per role, and a bearer token for each.
func newAuthFixture(t *testing.T, b testenv.Backend, o fixtureOptions) fixture {
	t.Helper()
	if o.limits == (httpapi.Limits{}) {
		o.limits = defaultLimits
	}
	if o.rates == nil {
		o.rates = httpapi.Rates{httpapi.RateAPI: {N: 10000, Per: time.Minute}, httpapi.RateUpload: {N: 10000, Per: time.Minute}, httpapi.RateAuth: {N: 10000, Per: time.Minute}}
	}
	st := o.store
	if o.log == nil {
		o.log = testenv.Logger()
		if st == nil {
			st = b.Store(t)
		}
	} else if st == nil {
		st = storeLoggingTo(t, b, o.log)
	}
	rdb := testRedis(t, b)
	lim := ratelimit.New(rdb, fmt.Sprintf("test:%s:%d:", t.Name(), fixtureSeq.Add(1)))
	throttle := auth.NewThrottle(lim, auth.ThrottleConfig{
		Account: ratelimit.Lockout{MaxFailures: 5, Window: 15 * time.Minute, Base: time.Minute, Max: 15 * time.Minute},
		Address: ratelimit.Lockout{MaxFailures: 20, Window: 15 * time.Minute, Base: time.Minute, Max: 15 * time.Minute},
	})
	as, err := auth.New(st.DB(), auth.Config{Secret: []byte("httpapi-test-secret-of-at-least-32-bytes"), Params: auth.Params{Memory: 1024, Time: 1, Threads: 1}}, throttle)
	if err != nil {
		t.Fatal(err)
	}
	svc := ingest.New(st, nil, nil, ingest.Limits{FileBytes: o.limits.FileBytes, Unwrap: unwrap.DefaultLimits, Parse: dmarc.DefaultLimits}, testenv.Logger())
	al := audit.New(st)
	e := httpapi.New(httpapi.Deps{Store: st, Ingest: svc, Limits: o.limits, TempDir: t.TempDir(), Log: o.log,
		Auth: as, Audit: al, Limiter: lim, Rates: o.rates, TrustedProxies: o.proxies, CORSOrigins: o.origins, Monitoring: o.monitoring,
		Redis: o.redis, Mail: o.mail})
	f := fixture{t: t, e: e, st: st, svc: svc, auth: as, audit: al, creds: map[auth.Role]string{}}
	for role, email := range roleEmails {
		if _, err := as.CreateUser(context.Background(), auth.NewUser{Email: email, Password: password, Role: role, Name: role.String()}); err != nil {
			t.Fatal(err)
		}
		f.creds[role] = "Bearer " + f.login(t, email, password).AccessToken
	}
	f.cred = f.creds[auth.Admin]
	return f
}

// storeLoggingTo opens and migrates the backend's fresh database with log as its logger.
func storeLoggingTo(t *testing.T, b testenv.Backend, log *slog.Logger) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), b.DatabaseURL(t), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return st
}

// as returns the fixture acting with another Authorization header ("" for none).
func (f fixture) as(cred string) fixture {
	f.cred = cred
	return f
}

// asRole returns the fixture acting as the user of role.
func (f fixture) asRole(r auth.Role) fixture { return f.as(f.creds[r]) }

func (f fixture) login(t *testing.T, email, pw string) auth.Tokens {
	t.Helper()
	rec := f.as("").json(t, http.MethodPost, "/auth/login", map[string]any{"email": email, "password": pw})
	if rec.Code != http.StatusOK {
		t.Fatalf("login %s: %d %s", email, rec.Code, rec.Body)
	}
	return decode[auth.Tokens](t, rec)
}

// json sends v as a JSON body.
func (f fixture) json(t *testing.T, method, path string, v any) *httptest.ResponseRecorder {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return f.do(t, method, path, bytes.NewReader(b), "application/json")
}

// req sends a prepared request (extra headers) as the fixture's principal.
func (f fixture) req(req *http.Request) *httptest.ResponseRecorder {
	f.authorize(req)
	rec := httptest.NewRecorder()
	f.e.ServeHTTP(rec, req)
	checkContract(f.t, req, rec)
	return rec
}

var contract = sync.OnceValues(func() (*apicontract.Validator, error) {
	spec, err := httpapi.Spec()
	if err != nil {
		return nil, err
	}
	return apicontract.New(spec)
})

// checkContract fails the test when an answer is not one /openapi.json allows: every response
// the tests of this package receive is checked against the served document.
func checkContract(t testing.TB, req *http.Request, rec *httptest.ResponseRecorder) {
	t.Helper()
	v, err := contract()
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Check(req, rec.Code, rec.Header(), rec.Body.Bytes()); err != nil {
		t.Errorf("contract: %v", err)
	}
}
