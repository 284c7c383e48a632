package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/apiclient"
	"github.com/vigilhq/vigil/pkg/app"
	"github.com/vigilhq/vigil/pkg/config"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// synthReport is a small valid aggregate report, unique by n.
func synthReport(n int) []byte {
	begin := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Hour)
	return []byte(fmt.Sprintf(`<?xml version="1.0"?><feedback><report_metadata><org_name>busy.example</org_name><email>r@busy.example</email>
<report_id>busy-%d</report_id><date_range><begin>%d</begin><end>%d</end></date_range></report_metadata>
<policy_published><domain>busy%d.example</domain><p>none</p></policy_published>
<record><row><source_ip>192.0.2.%d</source_ip><count>%d</count><policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>fail</spf></policy_evaluated></row>
<identifiers><header_from>busy%d.example</header_from></identifiers><auth_results><spf><domain>busy.example</domain><result>fail</result></spf></auth_results></record></feedback>`,
		n, begin.Unix(), begin.Add(24*time.Hour-time.Second).Unix(), n%7, n%250+1, n+1, n%7))
}

// postFiles uploads files in one request without waiting for them.
func postFiles(c api, files map[string][]byte) error {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for name, data := range files {
		fw, _ := w.CreateFormFile("files", name)
		fw.Write(data)
	}
	w.Close()
	req, _ := http.NewRequest(http.MethodPost, c.base+"/api/upload", &buf)
	req.Header.Set("Content-Type", w.FormDataContentType())
	req.Header.Set("Authorization", c.cred)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("upload: %d %s", resp.StatusCode, b)
	}
	return nil
}

// On the embedded default, putting failed files back while reports are being ingested and
// rolled up succeeds on its first attempt: it used to fail with "database is locked
// (SQLITE_BUSY)" and only complete on a retry. The task is followed by its percent-encoded
// id, as generated clients send it.
func TestRequeueFailedDuringIngestion(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, map[string]string{"VIGIL_ADMIN_PASSWORD": adminPassword, "VIGIL_RATE_LIMIT_UPLOAD": "100000/1m"})
	run(t, "serve", func(ctx context.Context) error { return app.Serve(ctx, cfg, testenv.Logger()) })
	base := "http://" + cfg.HTTPAddr
	waitHTTP(t, base)
	c := login(t, base, config.DefaultAdminEmail, adminPassword)

	const broken = 30
	bad := map[string][]byte{}
	for i := 0; i < broken; i++ {
		bad[fmt.Sprintf("broken-%d.xml", i)] = []byte(fmt.Sprintf("<feedback>not a report %d</feedback>", i))
	}
	for name, ing := range upload(t, c, bad) {
		if ing["status"] != "failed" {
			t.Fatalf("%s: %v, want failed", name, ing["status"])
		}
	}

	// Ingestion keeps the database busy with parses and rollups while the requeue runs.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var uploadErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; ; n += 20 {
			select {
			case <-stop:
				return
			default:
			}
			files := map[string][]byte{}
			for i := n; i < n+20; i++ {
				files[fmt.Sprintf("busy-%d.xml", i)] = synthReport(i)
			}
			if err := postFiles(c, files); err != nil {
				uploadErr = err
				return
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	time.Sleep(300 * time.Millisecond)

	// Through the client generated from /openapi.json (pkg/apiclient), as an outside Go
	// program would call it; every answer is also checked against the document.
	cl, err := apiclient.NewClientWithResponses(base, apiclient.WithHTTPClient(contractClient(t)),
		apiclient.WithRequestEditorFn(func(_ context.Context, req *http.Request) error {
			req.Header.Set("Authorization", c.cred)
			return nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	failed := true
	trig, err := cl.TriggerProcessReportsWithResponse(ctx, apiclient.TriggerProcessReportsJSONRequestBody{Failed: &failed})
	if err != nil || trig.JSON202 == nil {
		t.Fatalf("trigger: %v %d %s", err, trig.StatusCode(), trig.Body)
	}
	id := trig.JSON202.TaskId
	// Followed percent-encoded, as TypeScript clients send it (encodeURIComponent).
	st := waitTaskEscaped(t, c, id)
	if st.State != "completed" || st.Retried != 0 || st.LastError != "" {
		t.Fatalf("task %s: %s after %d retries, last error %q; want completed on the first attempt", id, st.State, st.Retried, st.LastError)
	}
	got, err := cl.TaskStatusWithResponse(ctx, id)
	if err != nil || got.JSON200 == nil || got.JSON200.Result == nil {
		t.Fatalf("task status: %v %d %s", err, got.StatusCode(), got.Body)
	}
	res, err := got.JSON200.Result.AsRequeueResult()
	if err != nil || res.Reset == nil || *res.Reset != broken || got.JSON200.Retried != 0 {
		t.Fatalf("result %s (%v), want reset %d on the first attempt", got.Body, err, broken)
	}
	// A typed rollup through the client: an end far away is the open end, in a bounded answer.
	end := "9999-12-31"
	tl, err := cl.RollupTimelineWithResponse(ctx, &apiclient.RollupTimelineParams{End: &end})
	if err != nil || tl.JSON200 == nil || len(tl.JSON200.Points) > 3660 {
		t.Fatalf("timeline: %v %d %.300s", err, tl.StatusCode(), tl.Body)
	}
	if uploadErr != nil {
		t.Fatal(uploadErr)
	}
}

type retriedStatus struct {
	State     string          `json:"state"`
	Retried   int             `json:"retried"`
	LastError string          `json:"last_error"`
	Result    json.RawMessage `json:"result"`
}

// waitTaskEscaped follows /tasks/status/{id} with the id percent-encoded until it completed.
func waitTaskEscaped(t *testing.T, c api, id string) retriedStatus {
	t.Helper()
	path := "/tasks/status/" + url.PathEscape(id)
	if id != "" && path == "/tasks/status/"+id {
		path = "/tasks/status/" + url.QueryEscape(id) // PathEscape keeps ':'; encode it as clients do
	}
	var st retriedStatus
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp := c.do(t, http.MethodGet, path, "", nil)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatal(err)
		}
		if st.State == "completed" || st.State == "archived" || st.Retried > 0 {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s not completed after 60s: %s", id, b)
		}
	}
}
