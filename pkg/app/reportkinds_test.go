package app_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/app"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// redisDBReportKinds is this file's Redis database on the real server (block 56–59).
const redisDBReportKinds = 58

// tlsJSON is an RFC 8460 report of domain for day, with failures from 192.0.2.x.
func tlsJSON(id, domain string, day time.Time, ok, failed int) []byte {
	return []byte(fmt.Sprintf(`{"organization-name":"Poster Inc.","date-range":{"start-datetime":%q,"end-datetime":%q},
"contact-info":"tlsrpt@poster.example","report-id":%q,"policies":[{"policy":{"policy-type":"sts","policy-string":["version: STSv1","mode: enforce"],
"policy-domain":%q,"mx-host":["mx.%s"]},"summary":{"total-successful-session-count":%d,"total-failure-session-count":%d},
"failure-details":[{"result-type":"certificate-expired","sending-mta-ip":"192.0.2.10","receiving-mx-hostname":"mx.%s","failed-session-count":%d}]}]}`,
		day.Format(time.RFC3339), day.Add(24*time.Hour-time.Second).Format(time.RFC3339), id, domain, domain, ok, failed, domain, failed))
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// post sends a report to POST /tlsrpt without credentials, as a reporting MTA does.
func post(t *testing.T, base, ctype string, body []byte) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/tlsrpt", bytes.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	resp, err := contractClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &m)
	return resp, m
}

// TestReportKindsThroughAPI: failure and TLS reports by upload (as IMAP hands them over) and
// TLS reports by HTTPS POST land in their lists, details and rollups; the intake refuses wrong
// types, oversize bodies and floods. Every answer is checked against /openapi.json.
func TestReportKindsThroughAPI(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		log := testenv.Logger()
		env := map[string]string{"VIGIL_RATE_LIMIT_TLSRPT": "12/1h burst 12", "VIGIL_TLSRPT_MAX_BYTES": "4KiB",
			"VIGIL_TLSRPT_MAX_DECOMPRESSED_BYTES": "1MiB"}
		if b.Real() {
			env["VIGIL_DATABASE_URL"], env["VIGIL_REDIS_URL"] = b.DatabaseURL(t), b.RedisURL(t, redisDBReportKinds)
			cfg := testConfig(t, env)
			if err := app.Migrate(context.Background(), cfg, log, io.Discard); err != nil {
				t.Fatal(err)
			}
			env["VIGIL_HTTP_ADDR"] = cfg.HTTPAddr
		} else {
			env["VIGIL_ADMIN_PASSWORD"] = adminPassword
		}
		cfg := testConfig(t, env)
		if b.Real() {
			run(t, "api", func(ctx context.Context) error { return app.Serve(ctx, cfg, log) })
			run(t, "worker", func(ctx context.Context) error { return app.Worker(ctx, cfg, log) })
		} else {
			run(t, "serve", func(ctx context.Context) error { return app.Serve(ctx, cfg, log) })
		}
		base := "http://" + cfg.HTTPAddr
		waitHTTP(t, base)
		c := login(t, base, cfg.Auth.AdminEmail, adminPassword)

		got := upload(t, c, corpusFiles(t, "mox/testdata/tlsreports/example.eml", "parsedmarc/samples/failure/dmarc_ruf_report_linkedin.eml",
			"set-of-emails/maildir/bsd/arf-19.eml", "parsedmarc/samples/smtp_tls/rfc8460.json"))
		for name, ing := range got {
			if ing["status"] != "processed" {
				t.Errorf("%s: %v", name, ing)
			}
		}
		var tls struct {
			Total int64 `json:"total"`
			Items []struct {
				ID               int64  `json:"id"`
				OrganizationName string `json:"organization_name"`
				PolicyDomain     string `json:"policy_domain"`
				FailedSessions   int64  `json:"failed_sessions"`
			} `json:"items"`
		}
		getJSON(t, c, "/api/tls-reports?domain=test.xmox.nl", &tls)
		if tls.Total != 1 || tls.Items[0].OrganizationName != "Google Inc." || tls.Items[0].PolicyDomain != "test.xmox.nl" {
			t.Fatalf("tls reports %+v", tls)
		}
		// Each file's state lists the reports of its kind (the upload helper's answer is GET
		// /api/ingests/{id}).
		for name, ing := range got {
			tlsIDs, _ := ing["tls_report_ids"].([]any)
			failIDs, _ := ing["failure_report_ids"].([]any)
			aggIDs, _ := ing["report_ids"].([]any)
			wantTLS, wantFail := 0, 1
			if name == "example.eml" || name == "rfc8460.json" { // the TLS reports

				wantTLS, wantFail = 1, 0
			}
			if len(tlsIDs) != wantTLS || len(failIDs) != wantFail || aggIDs == nil || len(aggIDs) != 0 {
				t.Errorf("%s: report_ids %v, tls_report_ids %v, failure_report_ids %v; want %d TLS and %d failure reports", name, aggIDs, tlsIDs, failIDs, wantTLS, wantFail)
			}
			if name == "example.eml" && (len(tlsIDs) != 1 || tlsIDs[0] != float64(tls.Items[0].ID)) {
				t.Errorf("%s: tls_report_ids %v, want [%d]", name, tlsIDs, tls.Items[0].ID)
			}
		}
		var detail map[string]any
		getJSON(t, c, fmt.Sprintf("/api/tls-reports/%d", tls.Items[0].ID), &detail)
		if pols, _ := detail["policies"].([]any); len(pols) != 1 {
			t.Errorf("detail %v", detail)
		}
		resp := c.do(t, http.MethodGet, "/api/tls-reports?dkim_result=pass", "", nil)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("dkim_result on TLS reports: %d, want 400", resp.StatusCode)
		}
		resp = c.do(t, http.MethodGet, "/api/tls-reports/999999", "", nil)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("missing TLS report: %d, want 404", resp.StatusCode)
		}
		var fail struct {
			Total int64 `json:"total"`
			Items []struct {
				ID          int64  `json:"id"`
				Domain      string `json:"domain"`
				SourceIP    string `json:"source_ip"`
				AuthFailure string `json:"auth_failure"`
				ReportedBy  string `json:"reported_by"`
			} `json:"items"`
		}
		getJSON(t, c, "/api/failure-reports", &fail)
		if fail.Total != 2 {
			t.Fatalf("failure reports %+v", fail)
		}
		getJSON(t, c, "/api/failure-reports?source_ip_range=10.0.0.0/8", &fail)
		if fail.Total != 1 || fail.Items[0].Domain != "example.com" || fail.Items[0].ReportedBy != "linkedin.com" || fail.Items[0].AuthFailure != "dmarc" {
			t.Fatalf("failure reports from 10/8: %+v", fail)
		}
		var fd struct {
			Redacted       bool              `json:"redacted"`
			SampleBody     *string           `json:"sample_body"`
			OriginalRcptTo []string          `json:"original_rcpt_to"`
			SampleHeaders  []json.RawMessage `json:"sample_headers"`
		}
		getJSON(t, c, fmt.Sprintf("/api/failure-reports/%d", fail.Items[0].ID), &fd)
		if !fd.Redacted || fd.SampleBody != nil || len(fd.OriginalRcptTo) != 1 || fd.OriginalRcptTo[0] != "*@linkedin.com" || len(fd.SampleHeaders) == 0 {
			t.Errorf("failure report detail %+v", fd)
		}
		var fr map[string]any
		getJSON(t, c, "/api/rollup/failures?domain=example.com", &fr)
		if fr["reports"] != float64(1) {
			t.Errorf("failure rollup %v", fr)
		}

		// HTTPS intake: both content types; the same bytes again are the same ingest.
		day := time.Now().UTC().Truncate(24 * time.Hour).Add(-24 * time.Hour)
		r1 := tlsJSON("post-1", "posted.example", day, 90, 10)
		resp, a1 := post(t, base, "application/tlsrpt+json", r1)
		if resp.StatusCode != http.StatusAccepted || a1["status"] != "accepted" {
			t.Fatalf("POST json: %d %v", resp.StatusCode, a1)
		}
		resp, again := post(t, base, "application/tlsrpt+json; charset=utf-8", r1)
		if resp.StatusCode != http.StatusAccepted || again["status"] != "duplicate" || again["ingest_id"] != a1["ingest_id"] {
			t.Fatalf("POST json again: %d %v, first %v", resp.StatusCode, again, a1)
		}
		resp, a2 := post(t, base, "application/tlsrpt+gzip", gzipped(tlsJSON("post-2", "posted.example", day.Add(-24*time.Hour), 50, 0)))
		if resp.StatusCode != http.StatusAccepted || a2["status"] != "accepted" {
			t.Fatalf("POST gzip: %d %v", resp.StatusCode, a2)
		}
		for _, refused := range []struct {
			ctype string
			body  []byte
			want  int
		}{
			{"text/plain", r1, http.StatusUnsupportedMediaType},
			{"application/json", r1, http.StatusUnsupportedMediaType},
			{"application/tlsrpt+json", []byte(`{"organization-name":"x"}`), http.StatusUnprocessableEntity},
			{"application/tlsrpt+gzip", r1, http.StatusUnprocessableEntity},
			{"application/tlsrpt+json", []byte(`{"pad":"` + strings.Repeat("a", 5000) + `"}`), http.StatusRequestEntityTooLarge},
			{"application/tlsrpt+gzip", gzipped([]byte(`{"pad":"` + strings.Repeat(" ", 3<<20) + `"}`)), http.StatusRequestEntityTooLarge},
		} {
			resp, m := post(t, base, refused.ctype, refused.body)
			if resp.StatusCode != refused.want {
				t.Errorf("POST %s (%d bytes): %d %v, want %d", refused.ctype, len(refused.body), resp.StatusCode, m, refused.want)
			}
		}
		for _, id := range []any{a1["ingest_id"], a2["ingest_id"]} {
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				var ing map[string]any
				getJSON(t, c, fmt.Sprintf("/api/ingests/%v", id), &ing)
				if ing["status"] == "processed" && ing["source"] == "https" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("posted ingest %v: %v", id, ing)
				}
			}
		}
		var roll struct {
			SuccessfulSessions int64 `json:"successful_sessions"`
			FailedSessions     int64 `json:"failed_sessions"`
			Days               []struct {
				Date string `json:"date"`
			} `json:"days"`
			FailureTypes []struct {
				ResultType     string `json:"result_type"`
				FailedSessions int64  `json:"failed_sessions"`
			} `json:"failure_types"`
			TopMXHosts []struct {
				ReceivingMXHostname string `json:"receiving_mx_hostname"`
			} `json:"top_mx_hosts"`
		}
		getJSON(t, c, "/api/rollup/tls?domain=posted.example&days=7", &roll)
		if roll.SuccessfulSessions != 140 || roll.FailedSessions != 10 || len(roll.Days) != 2 || len(roll.FailureTypes) != 1 ||
			roll.FailureTypes[0].FailedSessions != 10 || len(roll.TopMXHosts) != 1 || roll.TopMXHosts[0].ReceivingMXHostname != "mx.posted.example" {
			t.Errorf("rollup %+v", roll)
		}

		// A flood from one address is cut off with 429 and Retry-After.
		var last *http.Response
		for i := 0; i < 30; i++ {
			last, _ = post(t, base, "application/tlsrpt+json", tlsJSON(fmt.Sprintf("flood-%d", i), "posted.example", day, 1, 0))
			if last.StatusCode == http.StatusTooManyRequests {
				break
			}
		}
		if last.StatusCode != http.StatusTooManyRequests || last.Header.Get("Retry-After") == "" {
			t.Errorf("flood: last answer %d, Retry-After %q", last.StatusCode, last.Header.Get("Retry-After"))
		}
	})
}
