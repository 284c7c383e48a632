package analytics_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/analytics"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// Every invalid value is a 400 whose detail names the parameter, with the same wording as the
// list endpoints (pkg/httpapi/params.go).
func TestBadParameters(t *testing.T) {
	t.Parallel()
	st := testenv.Backends()[0].Store(t)
	srv := newServer(st, nil, func() time.Time { return testNow })
	cases := []struct {
		path, query, detail string
	}{
		{"summary", "days=0", "parameter days: want a whole number from 1 to 3660"},
		{"summary", "days=x", "parameter days: want a whole number from 1 to 3660"},
		{"summary", "days=3661", "parameter days: want a whole number from 1 to 3660"},
		{"summary", "days=7&start=2024-01-01", "parameter days: give either days or start/end, not both"},
		{"alignment", "start=yesterday", "parameter start: want a date such as 2024-01-31 or an RFC 3339 time such as 2024-01-31T00:00:00Z"},
		{"alignment", "end=2024-13-01", "parameter end: want a date such as 2024-01-31 or an RFC 3339 time such as 2024-01-31T00:00:00Z"},
		{"alignment-breakdown", "start=2024-02-01&end=2024-01-01", "parameter end: must be after start"},
		{"timeline", "source_ip=300.1.1.1", "parameter source_ip: want an IPv4 or IPv6 address"},
		{"timeline", "source_ip=fe80::1%25eth0", "parameter source_ip: want an IPv4 or IPv6 address"},
		{"failure-trend", "source_ip_range=192.0.2.0/33", "parameter source_ip_range: want a CIDR prefix such as 192.0.2.0/24 or 2001:db8::/32"},
		{"failure-trend", "source_ip_range=192.0.2.1", "parameter source_ip_range: want a CIDR prefix such as 192.0.2.0/24 or 2001:db8::/32"},
		{"sources", "dkim_result=neutral", "parameter dkim_result: want one of pass, fail (lower-case)"},
		{"sources", "spf_result=softfail", "parameter spf_result: want one of pass, fail (lower-case)"},
		{"sources", "disposition=discard", "parameter disposition: want one of none, quarantine, reject, pass (lower-case)"},
		{"sources", "limit=0", "parameter limit: want a whole number from 1 to 500"},
		{"sources", "limit=501", "parameter limit: want a whole number from 1 to 500"},
		{"top-organizations", "page=0", "parameter page: want a whole number from 1 to 1000000"},
		{"policy", "page_size=abc", "parameter page_size: want a whole number from 1 to 500"},
		{"timeline", "interval=year", "parameter interval: want one of day, week, month"},
		// Enums are exact, as the OpenAPI document says.
		{"sources", "dkim_result=PASS", "parameter dkim_result: want one of pass, fail (lower-case)"},
		{"sources", "disposition=%20reject", "parameter disposition: want one of none, quarantine, reject, pass (lower-case)"},
		// Unknown and repeated parameters are refused, not ignored.
		{"summary", "interval=day", "parameter interval: not a parameter of this endpoint (it takes asn, country, days, disposition, dkim_result, domain, end, org_name, sender, source_ip, source_ip_range, spf_result, start)"},
		{"sources", "page_size=5&foo=1", "parameters foo, page_size: not parameters of this endpoint (it takes asn, country, days, disposition, dkim_result, domain, end, limit, org_name, page, sender, source_ip, source_ip_range, spf_result, start)"},
		{"policy", "limit=5", "parameter limit: not a parameter of this endpoint (it takes asn, country, days, disposition, dkim_result, domain, end, org_name, page, page_size, sender, source_ip, source_ip_range, spf_result, start)"},
		{"policy", "page_size=5&page_size=6", "parameter page_size: given 2 times; give it once"},
		// A window too long for any series: more than 3660 months, or 3660 days of trend.
		{"timeline", "start=1000-01-01&end=9999-12-31", "parameter start: the window holds more than 3660 months; give a start and end at most 3660 months apart"},
		{"failure-trend", "start=2000-01-01&end=2024-01-01", "parameter start: the failure trend has a point per day, and 8767 days are more than 3660: give a start and end closer together"},
	}
	for _, c := range cases {
		q, _ := url.ParseQuery(c.query)
		var body struct{ Detail string }
		status := srv.getRaw(t, "/api/rollup/"+c.path, q, &body)
		if status != http.StatusBadRequest || body.Detail != c.detail {
			t.Errorf("%s?%s: %d %q, want 400 %q", c.path, c.query, status, body.Detail, c.detail)
		}
	}
	// Values the list endpoints accept are accepted here too.
	for _, ok := range []string{"days=3660", "start=2024-01-01T10:00:00Z", "end=2024-01-01", "source_ip=::ffff:192.0.2.1",
		"source_ip_range=::ffff:192.0.2.0/120", "dkim_result=pass", "disposition=reject", "domain=Example.COM.", "end=9999-12-31", "start=0001-01-01", "limit=500&page=3"} {
		q, _ := url.ParseQuery(ok)
		if status := srv.getRaw(t, "/api/rollup/sources", q, nil); status != http.StatusOK {
			t.Errorf("sources?%s: status %d, want 200", ok, status)
		}
	}
}

// The OpenAPI fragment describes exactly the routes, as viewer reads, with every schema's
// properties equal to the JSON fields of the type the handler returns.
func TestOpenAPIFragment(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths      map[string]map[string]map[string]any `json:"paths"`
		Components struct {
			Schemas map[string]struct {
				Required   []string       `json:"required"`
				Properties map[string]any `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	st := testenv.Backends()[0].Store(t)
	api := analytics.New(analytics.Deps{Store: st, Log: testenv.Logger()})
	var routes []string
	for _, r := range api.Routes() {
		routes = append(routes, r.Method+" "+r.Path)
		op := doc.Paths[r.Path][strings.ToLower(r.Method)]
		if op == nil {
			t.Errorf("%s %s is not in openapi.json", r.Method, r.Path)
			continue
		}
		if op["x-vigil-min-role"] != "viewer" {
			t.Errorf("%s: x-vigil-min-role = %v, want viewer", r.Path, op["x-vigil-min-role"])
		}
	}
	var documented []string
	for p, ops := range doc.Paths {
		for m := range ops {
			documented = append(documented, strings.ToUpper(m)+" "+p)
		}
	}
	slices.Sort(routes)
	slices.Sort(documented)
	if !slices.Equal(routes, documented) {
		t.Errorf("documented %v, registered %v", documented, routes)
	}
	types := map[string]any{
		"RollupWindow": analytics.Window{}, "RollupDispositions": analytics.Dispositions{}, "RollupSummary": analytics.Summary{},
		"RollupSource": analytics.Source{}, "RollupPassFail": analytics.PassFail{}, "RollupAlignment": analytics.Alignment{},
		"RollupShare": analytics.Share{}, "RollupAlignmentBreakdown": analytics.Breakdown{}, "RollupPoint": analytics.Point{},
		"RollupTimeline": analytics.Timeline{}, "RollupTrendPoint": analytics.TrendPoint{}, "RollupFailureTrend": analytics.FailureTrend{},
		"RollupOrganization": analytics.Organization{}, "RollupPolicyShare": analytics.PolicyShare{}, "RollupPolicyDomain": analytics.PolicyDomain{},
	}
	for name, v := range types {
		s, ok := doc.Components.Schemas[name]
		if !ok {
			t.Errorf("schema %s missing", name)
			continue
		}
		var fields []string
		rt := reflect.TypeOf(v)
		for i := 0; i < rt.NumField(); i++ {
			fields = append(fields, strings.Split(rt.Field(i).Tag.Get("json"), ",")[0])
		}
		var props []string
		for p := range s.Properties {
			props = append(props, p)
		}
		slices.Sort(fields)
		slices.Sort(props)
		req := slices.Sorted(slices.Values(s.Required))
		if !slices.Equal(fields, props) || !slices.Equal(fields, req) {
			t.Errorf("schema %s: properties %v required %v, Go fields %v", name, props, req, fields)
		}
	}
	if len(types) != len(doc.Components.Schemas) {
		t.Errorf("%d schemas documented, %d checked", len(doc.Components.Schemas), len(types))
	}
}
