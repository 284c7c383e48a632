package enrich

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/vigilhq/vigil/pkg/analytics"
	"github.com/vigilhq/vigil/pkg/geo"
	"github.com/vigilhq/vigil/pkg/senders"
	"github.com/vigilhq/vigil/pkg/testenv"
)

func TestLookupEndpoints(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		st := b.Store(t)
		_, r := zoneResolver(t)
		city, asn := geoFiles(t, t.TempDir())
		sv, err := senders.New(st, testenv.Logger())
		if err != nil {
			t.Fatal(err)
		}
		svc := New(Deps{Store: st, Resolver: r, Geo: geo.Open(geo.Config{CityPath: city, ASNPath: asn}, testenv.Logger()), Senders: sv, Log: testenv.Logger()})
		api := NewAPI(svc, analytics.New(analytics.Deps{Store: st, Log: testenv.Logger()}))
		e := echo.New()
		for _, rt := range api.Routes() {
			e.Add(rt.Method, rt.Path, rt.Handler)
		}
		call := func(method, path, body string) (int, map[string]any) {
			req := httptest.NewRequest(method, path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, req)
			var out map[string]any
			json.Unmarshal(rec.Body.Bytes(), &out)
			return rec.Code, out
		}

		code, got := call(http.MethodGet, "/analytics/geolocation/lookup/209.85.220.41", "")
		if code != 200 || got["sender"] != "Google Workspace" || got["ptr_confirmed"] != true || got["country"] != "US" || got["city"] != "Mountain View" ||
			got["asn"] != float64(15169) || got["as_org"] != "GOOGLE" || got["time_zone"] != "America/Los_Angeles" || got["latitude"] == nil {
			t.Fatalf("lookup: %d %v", code, got)
		}
		// Unknown values are null, not absent and not a 500.
		code, got = call(http.MethodGet, "/analytics/geolocation/lookup/192.0.2.200", "")
		if v, ok := got["country"]; code != 200 || !ok || v != nil || got["ptr"] != nil || got["sender"] != nil || got["dns_status"] != "nxdomain" {
			t.Fatalf("unknown address: %d %v", code, got)
		}
		if code, _ = call(http.MethodGet, "/analytics/geolocation/lookup/not-an-ip", ""); code != 400 {
			t.Fatalf("bad address: %d", code)
		}

		code, got = call(http.MethodPost, "/analytics/geolocation/lookup-bulk", `{"ips": ["198.51.100.7", "nope", "2a00:1450:4864:20::12b", "fe80::1%eth0"]}`)
		items, _ := got["items"].([]any)
		if code != 200 || len(items) != 4 {
			t.Fatalf("bulk: %d %v", code, got)
		}
		first, bad, v6, zoned := items[0].(map[string]any), items[1].(map[string]any), items[2].(map[string]any), items[3].(map[string]any)
		if first["ip"] != "198.51.100.7" || first["ptr_confirmed"] != false || first["country"] != "DE" {
			t.Errorf("bulk item 0: %v", first)
		}
		if bad["ip"] != "nope" || bad["error"] == nil || len(bad) != 2 || zoned["error"] == nil {
			t.Errorf("bulk bad items: %v %v", bad, zoned)
		}
		if v6["sender"] != "Google Workspace" {
			t.Errorf("bulk item 2: %v", v6)
		}
		many := make([]string, MaxBulk+1)
		for i := range many {
			many[i] = fmt.Sprintf(`"10.0.%d.%d"`, i/256, i%256)
		}
		if code, _ = call(http.MethodPost, "/analytics/geolocation/lookup-bulk", `{"ips": [`+strings.Join(many, ",")+`]}`); code != 400 {
			t.Errorf("1,001 addresses: %d, want 400", code)
		}
		for _, body := range []string{`{"ips": "1.2.3.4"}`, `not json`, `{}`} {
			if code, _ = call(http.MethodPost, "/analytics/geolocation/lookup-bulk", body); code != 400 {
				t.Errorf("body %s: %d, want 400", body, code)
			}
		}

		// An admin's mapping names a sender from the next question on, without a restart.
		if _, err := sv.PutMapping(context.Background(), senders.Mapping{Kind: "domain", Pattern: "Example.NET.", Name: "Our relay", Type: senders.TypeESP}); err != nil {
			t.Fatal(err)
		}
		if _, got = call(http.MethodGet, "/analytics/geolocation/lookup/198.51.100.7", ""); got["sender"] != "Our relay" || got["sender_type"] != "esp" {
			t.Errorf("after the mapping: %v", got)
		}
		if _, err := sv.PutMapping(context.Background(), senders.Mapping{Kind: "domain", Pattern: "mail.example.net", Name: "x", Type: "esp"}); err == nil {
			t.Errorf("a host name was accepted as a base domain")
		}

		code, got = call(http.MethodGet, "/analytics/geolocation/cache-stats", "")
		if code != 200 || got["entries"].(float64) < 4 || got["geoip"].(map[string]any)["city"].(map[string]any)["loaded"] != true {
			t.Errorf("cache stats: %d %v", code, got)
		}
	})
}
