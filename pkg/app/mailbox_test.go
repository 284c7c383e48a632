package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/app"
	"github.com/vigilhq/vigil/pkg/config"
	"github.com/vigilhq/vigil/pkg/secretbox"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// redisDBMailbox is this file's Redis database on the real server.
const redisDBMailbox = 9

// imapServer is go-imap's in-memory server on loopback holding msgs in INBOX.
func imapServer(t *testing.T, user, pass string, msgs [][]byte) (host string, port int) {
	t.Helper()
	m := testenv.NewMemIMAP(t, user, pass)
	for _, msg := range msgs {
		m.Append(t, "INBOX", msg)
	}
	return m.Host, m.Port
}

// sendJSON calls the API with a JSON body and decodes the answer into out (when not nil).
func sendJSON(t *testing.T, c api, method, path string, body any, wantStatus int, out any) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	resp := c.do(t, method, path, "application/json", r)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, b, wantStatus)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
}

type taskStatus struct {
	TaskID string          `json:"task_id"`
	State  string          `json:"state"`
	Result json.RawMessage `json:"result"`
}

// waitTask follows GET /tasks/status/{id} until the task completed.
func waitTask(t *testing.T, c api, id string) taskStatus {
	t.Helper()
	var st taskStatus
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp := c.do(t, http.MethodGet, "/tasks/status/"+id, "", nil)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			if err := json.Unmarshal(b, &st); err != nil {
				t.Fatal(err)
			}
			if st.State == "completed" {
				return st
			}
			if st.State == "archived" {
				t.Fatalf("task %s failed: %s", id, b)
			}
		} else if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("task status %s: %d %s", id, resp.StatusCode, b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s not completed after 30s: %s", id, b)
		}
	}
}

// What an admin does to have Vigil read a mailbox: add it, poll it now, follow the poll, see
// the reports; on the embedded default and with separate api, worker and scheduler.
func TestMailboxThroughAPI(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		const user, pass = "dmarc@example.org", "imap-password-5521"
		mails := corpusFiles(t, "mox/testdata/dmarc-reports/google.eml", "mox/testdata/dmarc-reports/yahoo.eml",
			"parsedmarc/samples/aggregate/mimecast-weird-gzip.eml")
		var msgs [][]byte
		for _, m := range mails {
			msgs = append(msgs, m)
		}
		msgs = append(msgs, []byte("From: a@example.com\r\nTo: dmarc@example.org\r\nSubject: hello\r\n\r\nno report here\r\n"))
		host, port := imapServer(t, user, pass, msgs)

		var cfg config.Config
		log := testenv.Logger()
		if b.Real() {
			key, _ := secretbox.NewKey()
			cfg = testConfig(t, map[string]string{"VIGIL_DATABASE_URL": b.DatabaseURL(t), "VIGIL_REDIS_URL": b.RedisURL(t, redisDBMailbox),
				"VIGIL_ENCRYPTION_KEY": key, "VIGIL_OUTBOUND_ALLOW": "127.0.0.1/32"})
			if err := app.Migrate(context.Background(), cfg, log, io.Discard); err != nil {
				t.Fatal(err)
			}
			run(t, "api", func(ctx context.Context) error { return app.Serve(ctx, cfg, log) })
			run(t, "worker", func(ctx context.Context) error { return app.Worker(ctx, cfg, log) })
		} else {
			// The test IMAP server listens on loopback, refused unless allowed.
			cfg = testConfig(t, map[string]string{"VIGIL_ADMIN_PASSWORD": adminPassword, "VIGIL_OUTBOUND_ALLOW": "127.0.0.1/32"})
			run(t, "serve", func(ctx context.Context) error { return app.Serve(ctx, cfg, log) })
		}
		base := "http://" + cfg.HTTPAddr
		waitHTTP(t, base)
		c := login(t, base, cfg.Auth.AdminEmail, adminPassword)
		if !b.Real() {
			// The embedded default made its own key, readable by its owner only.
			if fi, err := os.Stat(filepath.Join(cfg.DataDir, "encryption-key")); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("encryption-key: %v %v", fi, err)
			}
		}

		// Add the mailbox; the answer never carries the password.
		var mb map[string]any
		resp := c.do(t, http.MethodPost, "/api/mailboxes", "application/json", strings.NewReader(fmt.Sprintf(
			`{"name":"reports","host":%q,"port":%d,"username":%q,"password":%q,"tls":"none","allow_plain":true}`, host, port, user, pass)))
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated || bytes.Contains(body, []byte(pass)) {
			t.Fatalf("create: %d %s", resp.StatusCode, body)
		}
		json.Unmarshal(body, &mb)
		id := int64(mb["id"].(float64))
		if resp.Header.Get("Location") != fmt.Sprintf("/api/mailboxes/%d", id) || mb["configured"] != true || mb["auth"] != "password" {
			t.Fatalf("create: %v %s", resp.Header, body)
		}
		// Bad settings: 422 naming the field; an unknown field: 400.
		var prob struct {
			Detail string `json:"detail"`
		}
		sendJSON(t, c, http.MethodPost, "/api/mailboxes", map[string]any{"name": "x", "host": "h", "username": "u", "password": "p", "tls": "none", "policy": "trash"}, http.StatusUnprocessableEntity, &prob)
		if !strings.HasPrefix(prob.Detail, "tls none: ") || !strings.Contains(prob.Detail, `; policy "trash"`) {
			t.Fatalf("422 detail %q: want every field named, on one line", prob.Detail)
		}
		sendJSON(t, c, http.MethodPost, "/api/mailboxes", map[string]any{"name": "x", "hostname": "h"}, http.StatusBadRequest, nil)
		sendJSON(t, c, http.MethodPost, "/api/mailboxes", map[string]any{"name": "reports", "host": "h", "username": "u", "password": "p"}, http.StatusConflict, nil)

		// Poll it now and follow the task.
		var trig struct {
			TaskIDs []string `json:"task_ids"`
		}
		sendJSON(t, c, http.MethodPost, "/tasks/trigger/email-ingestion", map[string]any{"mailbox_id": id}, http.StatusAccepted, &trig)
		if len(trig.TaskIDs) != 1 {
			t.Fatalf("trigger: %+v", trig)
		}
		done := waitTask(t, c, trig.TaskIDs[0])
		var counts struct{ Seen, Saved, Invalid int }
		if err := json.Unmarshal(done.Result, &counts); err != nil || counts.Seen != 4 || counts.Saved != 3 || counts.Invalid != 1 {
			t.Fatalf("poll result %s (%v)", done.Result, err)
		}
		var status struct {
			LastUID    int  `json:"last_uid"`
			Polling    bool `json:"polling"`
			LastResult struct {
				Saved int `json:"saved"`
			} `json:"last_result"`
		}
		sendJSON(t, c, http.MethodGet, fmt.Sprintf("/api/mailboxes/%d", id), nil, http.StatusOK, &status)
		if status.LastUID != 4 || status.Polling || status.LastResult.Saved != 3 {
			t.Fatalf("mailbox status %+v", status)
		}
		// Every message was stored as a file (ids 1 to 4 in this fresh database); the workers
		// parse them: three reports, and the mail without one failed with its reason. Only
		// once no file is pending can the re-run below be expected to find nothing.
		statuses := map[string]int{}
		for fid := 1; fid <= 4; fid++ {
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				var f struct {
					Status string `json:"status"`
					Error  string `json:"error"`
				}
				sendJSON(t, c, http.MethodGet, fmt.Sprintf("/api/ingests/%d", fid), nil, http.StatusOK, &f)
				if f.Status != "pending" {
					statuses[f.Status]++
					if f.Status == "failed" && f.Error == "" {
						t.Fatalf("ingest %d failed without a reason", fid)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("ingest %d still pending after 30s", fid)
				}
			}
		}
		if statuses["processed"] != 3 || statuses["failed"] != 1 {
			t.Fatalf("file outcomes %v, want 3 processed and 1 failed", statuses)
		}
		var reports struct {
			Total int `json:"total"`
		}
		sendJSON(t, c, http.MethodGet, "/api/reports", nil, http.StatusOK, &reports)
		if reports.Total != 3 {
			t.Fatalf("%d reports, want 3", reports.Total)
		}

		// Re-run pending files: nothing is pending any more.
		var req struct {
			TaskID string `json:"task_id"`
		}
		sendJSON(t, c, http.MethodPost, "/tasks/trigger/process-reports", nil, http.StatusAccepted, &req)
		if got := waitTask(t, c, req.TaskID); string(got.Result) != `{"enqueued":0}` {
			t.Fatalf("requeue result %s", got.Result)
		}
		// With failed files too: the mail without a report is read again, and fails again.
		sendJSON(t, c, http.MethodPost, "/tasks/trigger/process-reports", map[string]any{"failed": true}, http.StatusAccepted, &req)
		if !strings.HasSuffix(req.TaskID, ":failed") {
			t.Fatalf("task id %q", req.TaskID)
		}
		if got := waitTask(t, c, req.TaskID); string(got.Result) != `{"enqueued":1,"reset":1}` {
			t.Fatalf("requeue with failed: result %s", got.Result)
		}
		sendJSON(t, c, http.MethodPost, "/tasks/trigger/process-reports", map[string]any{"failed": "yes"}, http.StatusBadRequest, nil)
		sendJSON(t, c, http.MethodGet, "/tasks/status/mailbox:poll:999:1", nil, http.StatusNotFound, nil)

		// Disable, list, delete.
		sendJSON(t, c, http.MethodPatch, fmt.Sprintf("/api/mailboxes/%d", id), map[string]any{"enabled": false}, http.StatusOK, nil)
		sendJSON(t, c, http.MethodPost, "/tasks/trigger/email-ingestion", map[string]any{"mailbox_id": id}, http.StatusConflict, nil)
		var list struct {
			Items []map[string]any `json:"items"`
			Total int              `json:"total"`
		}
		sendJSON(t, c, http.MethodGet, "/api/mailboxes", nil, http.StatusOK, &list)
		if list.Total != 1 || list.Items[0]["enabled"] != false {
			t.Fatalf("list %+v", list)
		}
		sendJSON(t, c, http.MethodDelete, fmt.Sprintf("/api/mailboxes/%d", id), nil, http.StatusNoContent, nil)
		sendJSON(t, c, http.MethodGet, fmt.Sprintf("/api/mailboxes/%d", id), nil, http.StatusNotFound, nil)
	})
}
