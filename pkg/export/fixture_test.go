package export_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/pkg/analytics"
	"github.com/vigilhq/vigil/pkg/apicontract"
	"github.com/vigilhq/vigil/pkg/auth"
	"github.com/vigilhq/vigil/pkg/dmarc"
	"github.com/vigilhq/vigil/pkg/export"
	"github.com/vigilhq/vigil/pkg/httpapi"
	"github.com/vigilhq/vigil/pkg/ratelimit"
	"github.com/vigilhq/vigil/pkg/rollup"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/synth"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// Redis databases of this package on the real server (pkg/testenv: 52–55 are the exports').
const (
	redisDB      = 52 // rate limits and login throttle, shared under per-test prefixes
	redisQueueDB = 53 // the asynq queue of the asynchronous export test
)

var (
	dataEnd = time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC)
	testNow = time.Date(2024, 6, 30, 15, 4, 5, 0, time.UTC)
)

var realRedis struct {
	once sync.Once
	opt  asynq.RedisClientOpt
}

func testRedis(t testing.TB, b testenv.Backend) *redis.Client {
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

var seq atomic.Int64

const password = "correct horse battery staple"

// fixture is the whole API (guard, route table, error handler) with exports on a store
// holding the test data, one user per role, and a token for each.
type fixture struct {
	e     *echo.Echo
	st    *store.Store
	exp   *export.Service
	creds map[auth.Role]string
	other string // a second viewer's credentials
}

type options struct {
	rowLimit int64
	queue    export.Enqueuer
	tasks    httpapi.TaskReader
	dir      string
	now      func() time.Time
	rates    httpapi.Rates
}

func newFixture(t testing.TB, b testenv.Backend, st *store.Store, o options) fixture {
	t.Helper()
	if o.now == nil {
		o.now = func() time.Time { return testNow }
	}
	if o.dir == "" {
		o.dir = t.TempDir()
	}
	if o.rates == nil {
		o.rates = httpapi.Rates{httpapi.RateAPI: {N: 10000, Per: time.Minute}, httpapi.RateAuth: {N: 10000, Per: time.Minute}}
	}
	rdb := testRedis(t, b)
	lim := ratelimit.New(rdb, fmt.Sprintf("test:%s:%d:", t.Name(), seq.Add(1)))
	throttle := auth.NewThrottle(lim, auth.ThrottleConfig{
		Account: ratelimit.Lockout{MaxFailures: 50, Window: time.Minute, Base: time.Second, Max: time.Second},
		Address: ratelimit.Lockout{MaxFailures: 50, Window: time.Minute, Base: time.Second, Max: time.Second},
	})
	as, err := auth.New(st.DB(), auth.Config{Secret: []byte("export-test-secret-of-at-least-32-bytes!"), Params: auth.Params{Memory: 1024, Time: 1, Threads: 1}}, throttle)
	if err != nil {
		t.Fatal(err)
	}
	an := analytics.New(analytics.Deps{Store: st, Log: testenv.Logger(), Now: o.now})
	exp := export.New(export.Deps{Store: st, Analytics: an, Queue: o.queue, Dir: o.dir, RowLimit: o.rowLimit, Log: testenv.Logger(), Now: o.now})
	e := httpapi.New(httpapi.Deps{Store: st, Analytics: an, Export: exp, Tasks: o.tasks, Auth: as, Limiter: lim, Rates: o.rates, Log: testenv.Logger(), TempDir: t.TempDir()})
	f := fixture{e: e, st: st, exp: exp, creds: map[auth.Role]string{}}
	ctx := context.Background()
	users := map[string]auth.Role{"viewer@example.com": auth.Viewer, "analyst@example.com": auth.Analyst, "admin@example.com": auth.Admin, "other@example.com": auth.Viewer}
	for email, role := range users {
		if _, err := as.CreateUser(ctx, auth.NewUser{Email: email, Password: password, Role: role, Name: email}); err != nil {
			t.Fatal(err)
		}
		tok, _, err := as.Login(ctx, email, password, auth.Meta{IP: "127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		if email == "other@example.com" {
			f.other = "Bearer " + tok.AccessToken
		} else {
			f.creds[role] = "Bearer " + tok.AccessToken
		}
	}
	return f
}

var contract = sync.OnceValues(func() (*apicontract.Validator, error) {
	spec, err := httpapi.Spec()
	if err != nil {
		return nil, err
	}
	return apicontract.New(spec)
})

// get requests path?q with cred and checks the answer against the served spec.
func (f fixture) get(t testing.TB, cred, path string, q url.Values) *httptest.ResponseRecorder {
	t.Helper()
	target := path
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	req := httptest.NewRequest(http.MethodGet, target, nil)
	if cred != "" {
		req.Header.Set("Authorization", cred)
	}
	rec := httptest.NewRecorder()
	f.e.ServeHTTP(rec, req)
	v, err := contract()
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Check(req, rec.Code, rec.Header(), rec.Body.Bytes()); err != nil {
		t.Errorf("contract: %s: %v", target, err)
	}
	return rec
}

// getJSON requests and decodes a 200 answer.
func (f fixture) getJSON(t testing.TB, cred, path string, q url.Values, out any) {
	t.Helper()
	rec := f.get(t, cred, path, q)
	if rec.Code != http.StatusOK {
		t.Fatalf("%s?%s: %d %s", path, q.Encode(), rec.Code, rec.Body.String())
	}
	if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
		t.Fatal(err)
	}
}

// save stores reports as one processed file, then applies their rollups.
func save(t testing.TB, st *store.Store, reps []store.Parsed) {
	t.Helper()
	ctx := context.Background()
	sum := sha256.Sum256(fmt.Appendf(nil, "fixture-%d-%d", time.Now().UnixNano(), seq.Add(1)))
	ing, err := st.CreateIngest(ctx, store.NewFile{SHA256: hex.EncodeToString(sum[:]), Filename: "fixture.xml", Source: "test",
		Size: 1, ReceivedAt: dataEnd, Encoding: "identity", Data: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	saved, err := st.SaveParsed(ctx, ing.ID, reps)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int64, len(saved))
	for i, s := range saved {
		ids[i] = s.ReportID
	}
	if err := rollup.New(st, nil, testenv.Logger()).Apply(ctx, ids); err != nil {
		t.Fatal(err)
	}
}

func rec(ip string, count int64, disp, dkim, spf, from string) dmarc.Record {
	return dmarc.Record{SourceIP: netip.MustParseAddr(ip), Count: count, Disposition: disp, DKIM: dkim, SPF: spf, HeaderFrom: from}
}

// hostile are reports whose text fields would be formulas in a spreadsheet, markup in HTML,
// or headers in mail, plus a 20-digit report id that must stay text.
func hostile() []store.Parsed {
	d := time.Date(2024, 6, 10, 0, 0, 0, 0, time.UTC)
	mk := func(org, id string, recs ...dmarc.Record) store.Parsed {
		return store.Parsed{Header: &dmarc.Report{OrgName: org, ReportID: id, Email: "=1+2@evil.example", DateBegin: d, DateEnd: d.Add(24*time.Hour - time.Second),
			Policy: dmarc.Policy{Domain: "hostile.example", P: "none"}}, Records: recs}
	}
	return []store.Parsed{
		mk(`=HYPERLINK("http://evil.example","x")`, "12345678901234567890", rec("192.0.2.10", 5, "none", "fail", "fail", "-2+3")),
		mk("+SUM(1,2)", "r-plus", rec("192.0.2.11", 3, "none", "pass", "fail", "@x")),
		mk("-1", "r-minus", rec("2001:db8::11", 2, "none", "fail", "pass", "hostile.example")),
		mk("@cmd", "r-at", rec("192.0.2.12", 1, "none", "pass", "pass", "\tTAB")),
		mk("\rCR<b>bold</b>\r\nBcc: x@evil.example", "r-cr", rec("192.0.2.13", 4, "quarantine", "fail", "fail", "hostile.example")),
	}
}

// world stores the synthetic data set (five domains over eight months) and the hostile
// reports.
func world(t testing.TB, st *store.Store, reports int) {
	t.Helper()
	g := synth.New(synth.Config{Seed: 7, Domains: 5, Sources: 150, Reporters: 6, Days: 240, End: dataEnd, Reports: reports,
		RecordsPerReport: 5, MultiDayShare: 0.1, IPv6Share: 0.3})
	var batch []store.Parsed
	for {
		p, ok := g.Next()
		if !ok {
			break
		}
		batch = append(batch, p)
		if len(batch) == 100 {
			save(t, st, batch)
			batch = nil
		}
	}
	save(t, st, append(batch, hostile()...))
}

var _ = bytes.NewReader
