package app_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/app"
	"github.com/vigilhq/vigil/pkg/config"
	"github.com/vigilhq/vigil/pkg/corpus"
	"github.com/vigilhq/vigil/pkg/enrich/dnstest"
	"github.com/vigilhq/vigil/pkg/geo/geotest"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// Redis database of the sender-intelligence end-to-end test on the real server (block 20–23).
const redisDBEnrich = 20

// senderWorld is the test DNS server and GeoIP databases Google's and Microsoft's corpus
// addresses are enriched against.
func senderWorld(t *testing.T) map[string]string {
	dns := dnstest.Start(t)
	dns.Mail("209.85.220.41", "mail-sor-f41.google.com")
	dns.Mail("209.85.220.69", "mail-sor-f69.google.com")
	dns.Mail("2a00:1450:4864:20::12b", "mail-ed1-x52b.google.com")
	dns.Mail("40.107.135.95", "mail-sg2apc01on2095.outbound.protection.outlook.com")
	dns.Mail("54.240.8.31", "a8-31.smtp-out.amazonses.com")
	dns.PTR("40.92.0.1", "spoofed.example.net") // a PTR that does not confirm: ASN names it
	dns.Set("40.107.127.116", dnstest.ServFail)
	dir := t.TempDir()
	city, asn := filepath.Join(dir, "city.mmdb"), filepath.Join(dir, "asn.mmdb")
	geotest.WriteCity(t, city, []geotest.City{
		{Network: "209.85.128.0/17", Country: "US", CountryName: "United States", City: "Mountain View", Lat: 37.4, Lon: -122.1, TimeZone: "America/Los_Angeles"},
		{Network: "40.92.0.0/15", Country: "IE", CountryName: "Ireland", City: "Dublin", Lat: 53.3, Lon: -6.2, TimeZone: "Europe/Dublin"},
		{Network: "40.107.0.0/16", Country: "IE", CountryName: "Ireland", City: "Dublin", Lat: 53.3, Lon: -6.2, TimeZone: "Europe/Dublin"},
	})
	var asns []geotest.ASN
	for _, n := range []string{"209.85.128.0/17", "2a00:1450::/32", "2607:f8b0::/32", "172.217.0.0/16", "74.125.0.0/16"} {
		asns = append(asns, geotest.ASN{Network: n, Number: 15169, Org: "GOOGLE"})
	}
	for _, n := range []string{"40.92.0.0/15", "40.107.0.0/16", "52.100.0.0/14", "104.47.0.0/16", "2a01:111::/32"} {
		asns = append(asns, geotest.ASN{Network: n, Number: 8075, Org: "MICROSOFT-CORP-MSN-AS-BLOCK"})
	}
	geotest.WriteASN(t, asn, asns)
	return map[string]string{"VIGIL_DNS_RESOLVER": dns.Addr, "VIGIL_DNS_TIMEOUT": "300ms", "VIGIL_GEOIP_CITY_DB": city, "VIGIL_GEOIP_ASN_DB": asn}
}

// uploadCorpus posts every file of the shared corpus, in requests of 50, and waits until
// none is pending.
func uploadCorpus(t *testing.T, c api) {
	dir, entries := corpus.ForTest(t)
	for lo := 0; lo < len(entries); lo += 50 {
		var buf bytes.Buffer
		w := multipart.NewWriter(&buf)
		for _, e := range entries[lo:min(lo+50, len(entries))] {
			b, err := os.ReadFile(filepath.Join(dir, e.RelPath()))
			if err != nil {
				t.Fatal(err)
			}
			fw, _ := w.CreateFormFile("files", filepath.Base(e.Path))
			fw.Write(b)
		}
		w.Close()
		resp := c.do(t, http.MethodPost, "/api/upload", w.FormDataContentType(), &buf)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("upload: %d", resp.StatusCode)
		}
	}
}

// senderItem is the part of /api/senders items the test reads.
type senderItem struct {
	Domain     string   `json:"domain"`
	Sender     *string  `json:"sender"`
	SenderType string   `json:"sender_type"`
	BaseDomain *string  `json:"base_domain"`
	Messages   int64    `json:"messages"`
	IPs        int64    `json:"ips"`
	PassRate   *float64 `json:"dmarc_pass_rate"`
	FirstSeen  string   `json:"first_seen"`
	Advice     []struct {
		Code string `json:"code"`
	} `json:"advice"`
}

// checkSenders waits for enrichment of the corpus, then checks Google's and Microsoft's
// sources are grouped under their names.
func checkSenders(t *testing.T, c api) {
	t.Helper()
	// Enrichment is a background job: this waits for it to finish rather than timing it (its
	// speed is BenchmarkEnrich100k's). The wait starts after the upload, so it includes parsing:
	// under -race on a machine at load 30 that alone took 2 minutes in the embedded mode, and
	// the sender rollup's rounds share the one SQLite writer with enrichment (docs/performance.md,
	// "Embedded mode"), so the bound is wide and the time is logged.
	start := time.Now()
	deadline := start.Add(4 * time.Minute)
	defer func() { t.Logf("enrichment of the corpus's sources done in %v", time.Since(start).Round(time.Second)) }()
	for ; ; time.Sleep(200 * time.Millisecond) {
		var st struct {
			Sources    int64 `json:"sources"`
			Unenriched int64 `json:"unenriched_sources"`
			Ungrouped  int64 `json:"ungrouped_sources"`
			Entries    int64 `json:"entries"`
		}
		getJSON(t, c, "/analytics/geolocation/cache-stats", &st)
		if st.Sources > 100 && st.Unenriched == 0 && st.Ungrouped == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("enrichment not done after 4 minutes: %+v", st)
		}
	}
	var list struct {
		Items []senderItem `json:"items"`
		Total int          `json:"total"`
	}
	getJSON(t, c, "/api/senders?page_size=500", &list)
	if list.Total == 0 || list.Total > 500 {
		t.Fatalf("%d sender groups", list.Total)
	}
	found := map[string]int64{}
	for _, it := range list.Items {
		if it.Sender != nil {
			found[*it.Sender] += it.IPs
		}
		if it.Sender == nil && it.BaseDomain != nil && (*it.BaseDomain == "google.com" || *it.BaseDomain == "outlook.com") {
			t.Errorf("%s sources left unnamed: %+v", *it.BaseDomain, it)
		}
		if len(it.Advice) == 0 || it.FirstSeen == "" {
			t.Errorf("group without advice or first_seen: %+v", it)
		}
	}
	for _, name := range []string{"Google Workspace", "Microsoft 365", "Amazon SES"} {
		if found[name] == 0 {
			t.Errorf("no %s group in /api/senders: %v", name, found)
		}
	}
	// Google's several corpus addresses (v4 and v6) land in one group per domain.
	var google *senderItem
	for i, it := range list.Items {
		if it.Sender != nil && *it.Sender == "Google Workspace" && (google == nil || it.IPs > google.IPs) {
			google = &list.Items[i]
		}
	}
	if google == nil || google.IPs < 2 || google.SenderType != "mailbox_provider" {
		t.Errorf("largest Google group: %+v", google)
	}
	// The Microsoft source that never passes for example.com is told to set up DKIM/SPF.
	var ms []senderItem
	getJSON(t, c, "/api/senders?domain=example.com&source_ip=40.92.0.1", &struct {
		Items *[]senderItem `json:"items"`
	}{&ms})
	if len(ms) != 1 || ms[0].Sender == nil || *ms[0].Sender != "Microsoft 365" || len(ms[0].Advice) == 0 || ms[0].Advice[0].Code != "not_authorized" {
		t.Errorf("example.com from 40.92.0.1: %+v", ms)
	}

	var look map[string]any
	getJSON(t, c, "/analytics/geolocation/lookup/209.85.220.41", &look)
	if look["sender"] != "Google Workspace" || look["ptr"] != "mail-sor-f41.google.com" || look["ptr_confirmed"] != true ||
		look["country"] != "US" || look["asn"] != float64(15169) || look["base_domain"] != "google.com" {
		t.Errorf("lookup 209.85.220.41: %v", look)
	}
	// /api/rollup/sources carries the enrichment fields.
	var top struct {
		Items []map[string]any `json:"items"`
	}
	getJSON(t, c, "/api/rollup/sources?source_ip=209.85.220.41", &top)
	if len(top.Items) != 1 || top.Items[0]["sender"] != "Google Workspace" || top.Items[0]["ptr"] != "mail-sor-f41.google.com" ||
		top.Items[0]["country"] != "US" || top.Items[0]["asn"] != float64(15169) || top.Items[0]["base_domain"] != "google.com" {
		t.Errorf("rollup sources: %v", top.Items)
	}
	var m struct {
		Countries []struct {
			Country  string `json:"country"`
			Messages int64  `json:"messages"`
			IPs      int64  `json:"ips"`
		} `json:"countries"`
		TotalIPs, MappedIPs, UnmappedIPs int64
	}
	getJSON(t, c, "/analytics/geolocation/map", &m)
	cc := map[string]int64{}
	for _, x := range m.Countries {
		cc[x.Country] = x.IPs
	}
	if cc["US"] == 0 || cc["IE"] == 0 {
		t.Errorf("map: %+v", m)
	}
	checkEnrichmentFilters(t, c)
}

// checkEnrichmentFilters: records carry the enrichment fields, the sender/country/asn filters
// select them, and a mapping change is audited.
func checkEnrichmentFilters(t *testing.T, c api) {
	t.Helper()
	var reps struct {
		Items []struct {
			ID int64 `json:"id"`
		} `json:"items"`
		Total int64 `json:"total"`
	}
	getJSON(t, c, "/api/reports?source_ip=209.85.220.41", &reps)
	if len(reps.Items) == 0 {
		t.Fatal("no report from 209.85.220.41")
	}
	var recs struct {
		Items []map[string]any `json:"items"`
	}
	getJSON(t, c, fmt.Sprintf("/api/reports/%d/records?source_ip=209.85.220.41", reps.Items[0].ID), &recs)
	if len(recs.Items) == 0 || recs.Items[0]["sender"] != "Google Workspace" || recs.Items[0]["country"] != "US" ||
		recs.Items[0]["asn"] != float64(15169) || recs.Items[0]["as_org"] != "GOOGLE" || recs.Items[0]["ptr"] != "mail-sor-f41.google.com" {
		t.Errorf("records carry no enrichment: %v", recs.Items)
	}
	var byIP, bySender, none struct {
		Total int64 `json:"total"`
	}
	getJSON(t, c, "/api/reports?source_ip=209.85.220.41", &byIP)
	getJSON(t, c, "/api/reports?sender=google%20workspace&country=us&asn=AS15169", &bySender)
	if bySender.Total < byIP.Total || bySender.Total == 0 {
		t.Errorf("reports from Google Workspace in the US on AS15169: %d, from one of its addresses %d", bySender.Total, byIP.Total)
	}
	getJSON(t, c, "/api/reports?sender=google%20workspace&country=IE", &none)
	if none.Total != 0 {
		t.Errorf("Google Workspace in Ireland: %d reports, want none", none.Total)
	}
	res := c.do(t, http.MethodGet, "/api/rollup/summary?country=USA", "", nil)
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Errorf("country=USA: %d, want 400", res.StatusCode)
	}
	body := strings.NewReader(`{"kind":"asn","pattern":"AS64999","name":"Test relay","type":"esp"}`)
	res = c.do(t, http.MethodPost, "/api/senders/mappings", "application/json", body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("put mapping: %d", res.StatusCode)
	}
	var audit struct {
		Items []struct {
			Action  string         `json:"action"`
			Outcome string         `json:"outcome"`
			Details map[string]any `json:"details"`
		} `json:"items"`
	}
	getJSON(t, c, "/audit?action=sender.mapping_put", &audit)
	if len(audit.Items) != 1 || audit.Items[0].Outcome != "success" || audit.Items[0].Details["pattern"] != "64999" {
		t.Errorf("audit of the mapping: %+v", audit.Items)
	}
}

func TestSenderIntelligenceEmbedded(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, senderWorld(t))
	logs := &syncBuffer{}
	run(t, "serve", func(ctx context.Context) error { return app.Serve(ctx, cfg, jsonLogger(logs)) })
	base := "http://" + cfg.HTTPAddr
	waitHTTP(t, base)
	c := login(t, base, config.DefaultAdminEmail, generatedPassword(t, cfg, logs))
	uploadCorpus(t, c)
	checkSenders(t, c)
}

func TestSenderIntelligenceSharedStores(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		if !b.Real() {
			t.Skip("the embedded pair is TestSenderIntelligenceEmbedded")
		}
		env := senderWorld(t)
		env["VIGIL_DATABASE_URL"], env["VIGIL_REDIS_URL"] = b.DatabaseURL(t), b.RedisURL(t, redisDBEnrich)
		cfg := testConfig(t, env)
		log := testenv.Logger()
		if err := app.Migrate(context.Background(), cfg, log, io.Discard); err != nil {
			t.Fatal(err)
		}
		run(t, "api", func(ctx context.Context) error { return app.Serve(ctx, cfg, log) })
		run(t, "worker", func(ctx context.Context) error { return app.Worker(ctx, cfg, log) })
		base := "http://" + cfg.HTTPAddr
		waitHTTP(t, base)
		c := login(t, base, "root@example.com", adminPassword)
		uploadCorpus(t, c)
		checkSenders(t, c)
	})
}
