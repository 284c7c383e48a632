package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/app"
	"github.com/vigilhq/vigil/pkg/config"
	"github.com/vigilhq/vigil/pkg/notify"
	"github.com/vigilhq/vigil/pkg/secretbox"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// redisDBAlerts is this file's Redis database on the real server (block 24–27).
const redisDBAlerts = 24

// rejectedReport is an aggregate report for today in which receivers rejected mail.
func rejectedReport(day time.Time) []byte {
	return []byte(fmt.Sprintf(`<?xml version="1.0"?>
<feedback>
  <report_metadata><org_name>google.com</org_name><email>noreply@google.com</email><report_id>alert-%d</report_id>
    <date_range><begin>%d</begin><end>%d</end></date_range></report_metadata>
  <policy_published><domain>alerts.example</domain><p>reject</p></policy_published>
  <record><row><source_ip>203.0.113.9</source_ip><count>7</count>
    <policy_evaluated><disposition>reject</disposition><dkim>fail</dkim><spf>fail</spf></policy_evaluated></row>
    <identifiers><header_from>alerts.example</header_from></identifiers>
    <auth_results><spf><domain>alerts.example</domain><result>fail</result></spf></auth_results></record>
</feedback>`, day.Unix(), day.Unix(), day.Add(24*time.Hour-time.Second).Unix()))
}

// TestAlertsThroughAPI is what a postmaster does: add a webhook channel (which turns the
// default rules on), upload a report in which mail was rejected, and get a signed alert on
// the webhook, raised by the check that follows the rollup apply; then acknowledge and
// resolve it, see the history, the stats and the audit trail. On the embedded default and
// with separate api and worker processes.
func TestAlertsThroughAPI(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		const secret = "webhook-secret-0123456789"
		var mu sync.Mutex
		var got []map[string]any
		recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			var ts int64
			fmt.Sscan(r.Header.Get(notify.HeaderTimestamp), &ts)
			if r.Header.Get(notify.HeaderSignature) != notify.Sign(secret, ts, body) {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			var m map[string]any
			json.Unmarshal(body, &m)
			mu.Lock()
			got = append(got, m)
			mu.Unlock()
		}))
		defer recv.Close()

		var cfg config.Config
		log := testenv.Logger()
		env := map[string]string{"VIGIL_OUTBOUND_ALLOW": "127.0.0.1/32"}
		if b.Real() {
			key, _ := secretbox.NewKey()
			env["VIGIL_DATABASE_URL"], env["VIGIL_REDIS_URL"], env["VIGIL_ENCRYPTION_KEY"] = b.DatabaseURL(t), b.RedisURL(t, redisDBAlerts), key
			cfg = testConfig(t, env)
			if err := app.Migrate(context.Background(), cfg, log, io.Discard); err != nil {
				t.Fatal(err)
			}
			run(t, "api", func(ctx context.Context) error { return app.Serve(ctx, cfg, log) })
			run(t, "worker", func(ctx context.Context) error { return app.Worker(ctx, cfg, log) })
		} else {
			env["VIGIL_ADMIN_PASSWORD"] = adminPassword
			cfg = testConfig(t, env)
			run(t, "serve", func(ctx context.Context) error { return app.Serve(ctx, cfg, log) })
		}
		base := "http://" + cfg.HTTPAddr
		waitHTTP(t, base)
		c := login(t, base, cfg.Auth.AdminEmail, adminPassword)

		// Channels: a metadata URL is refused when saved; the webhook is taken, secret hidden.
		sendJSON(t, c, http.MethodPost, "/alerts/channels", map[string]any{"name": "meta", "kind": "webhook",
			"config": map[string]any{"url": "http://169.254.169.254/latest", "secret": secret}}, http.StatusUnprocessableEntity, nil)
		var ch struct {
			ID         int64    `json:"id"`
			SecretsSet []string `json:"secrets_set"`
		}
		sendJSON(t, c, http.MethodPost, "/alerts/channels", map[string]any{"name": "hook", "kind": "webhook",
			"config": map[string]any{"url": recv.URL + "/vigil", "secret": secret}}, http.StatusCreated, &ch)
		if len(ch.SecretsSet) != 1 {
			t.Fatalf("channel %+v", ch)
		}
		var test notify.TestResult
		sendJSON(t, c, http.MethodPost, fmt.Sprintf("/alerts/channels/%d/test", ch.ID), nil, http.StatusOK, &test)
		if test.Status != "sent" {
			t.Fatalf("test send: %+v", test)
		}
		var rules struct {
			Items []struct {
				Type       string  `json:"type"`
				Enabled    bool    `json:"enabled"`
				ChannelIDs []int64 `json:"channel_ids"`
			} `json:"items"`
		}
		getJSON(t, c, "/alerts/rules", &rules)
		for _, r := range rules.Items {
			if !r.Enabled || len(r.ChannelIDs) != 1 || r.ChannelIDs[0] != ch.ID {
				t.Fatalf("default rule %+v not turned on with the first channel", r)
			}
		}

		// A report with rejected mail: the rollup apply enqueues a check for its domain.
		today := time.Now().UTC().Truncate(24 * time.Hour)
		upload(t, c, map[string][]byte{"r.xml": rejectedReport(today)})
		var alert map[string]any
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			mu.Lock()
			n := 0
			for _, m := range got {
				if m["event"] == "alert.open" {
					n++
					alert, _ = m["alert"].(map[string]any)
				}
			}
			mu.Unlock()
			if n > 0 {
				if n != 1 {
					t.Fatalf("%d alerts delivered, want 1", n)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no alert delivered within 30 s of the upload")
			}
		}
		if alert["type"] != "policy_violation" || alert["domain"] != "alerts.example" || alert["severity"] != "critical" {
			t.Fatalf("delivered alert %v", alert)
		}
		id := int64(alert["id"].(float64))

		// A manual check raises nothing more (same fingerprint, within the cooldown).
		var chk struct {
			TaskID string `json:"task_id"`
		}
		sendJSON(t, c, http.MethodPost, "/alerts/check", nil, http.StatusAccepted, &chk)
		waitTask(t, c, chk.TaskID)
		var hist struct {
			Total int64 `json:"total"`
			Items []struct {
				ID         int64 `json:"id"`
				Deliveries []struct {
					Status   string `json:"status"`
					Attempts int    `json:"attempts"`
				} `json:"deliveries"`
			} `json:"items"`
		}
		getJSON(t, c, "/alerts/history?domain=alerts.example", &hist)
		if hist.Total != 1 || hist.Items[0].ID != id || len(hist.Items[0].Deliveries) != 1 || hist.Items[0].Deliveries[0].Status != "sent" {
			t.Fatalf("history %+v", hist)
		}
		sendJSON(t, c, http.MethodGet, "/alerts/history?status=loud", nil, http.StatusBadRequest, nil)

		// Lifecycle with actor and note, then the audit trail and the stats.
		var a struct {
			Status         string `json:"status"`
			AcknowledgedBy string `json:"acknowledged_by"`
			ResolvedBy     string `json:"resolved_by"`
			History        []struct {
				Action string `json:"action"`
				Actor  string `json:"actor"`
				Note   string `json:"note"`
			} `json:"history"`
		}
		sendJSON(t, c, http.MethodPatch, fmt.Sprintf("/alerts/%d/acknowledge", id), map[string]any{"note": "on it"}, http.StatusOK, &a)
		if a.Status != "acknowledged" || a.AcknowledgedBy != cfg.Auth.AdminEmail {
			t.Fatalf("acknowledged %+v", a)
		}
		sendJSON(t, c, http.MethodPatch, fmt.Sprintf("/alerts/%d/acknowledge", id), map[string]any{"note": "again"}, http.StatusConflict, nil)
		sendJSON(t, c, http.MethodPatch, fmt.Sprintf("/alerts/%d/resolve", id), map[string]any{"note": "sender fixed"}, http.StatusOK, &a)
		if a.Status != "resolved" || a.ResolvedBy != cfg.Auth.AdminEmail || len(a.History) != 3 || a.History[2].Note != "sender fixed" {
			t.Fatalf("resolved %+v", a)
		}
		var audit struct {
			Items []struct {
				Action string `json:"action"`
				Actor  string `json:"actor"`
				Target string `json:"target"`
			} `json:"items"`
		}
		getJSON(t, c, "/audit?page_size=100", &audit)
		seen := map[string]bool{}
		for _, e := range audit.Items {
			if strings.HasPrefix(e.Action, "alert.") {
				seen[e.Action] = true
				if e.Actor != cfg.Auth.AdminEmail {
					t.Errorf("audit %+v: actor", e)
				}
			}
		}
		for _, want := range []string{"alert.channel_create", "alert.channel_test", "alert.check", "alert.acknowledge", "alert.resolve"} {
			if !seen[want] {
				t.Errorf("no %s audit entry (have %v)", want, seen)
			}
		}
		var stats struct {
			Total      int64            `json:"total"`
			ByType     map[string]int64 `json:"by_type"`
			MeanToAck  *float64         `json:"mean_time_to_acknowledge_seconds"`
			MeanToRes  *float64         `json:"mean_time_to_resolve_seconds"`
			ByStatuses map[string]int64 `json:"by_status"`
		}
		getJSON(t, c, "/alerts/stats?days=7", &stats)
		if stats.Total != 1 || stats.ByType["policy_violation"] != 1 || stats.MeanToAck == nil || stats.MeanToRes == nil || stats.ByStatuses["resolved"] != 1 {
			t.Fatalf("stats %+v", stats)
		}
	})
}
