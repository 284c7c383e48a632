package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/pkg/dmarc"
	"github.com/vigilhq/vigil/pkg/ingest"
	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
	"github.com/vigilhq/vigil/pkg/unwrap"
)

// Fault tests: the built binaries, killed with SIGKILL as an outside fault-injection run
// does. Redis databases 38–39 of testenv's list. They assert outcomes (every file processed,
// counts exact, rollups current) and log how long recovery took; the times depend on the
// machine's load, so they are figures to read (docs/operations.md), not assertions. What
// makes recovery fast is asserted deterministically in pkg/ingest (TestWatch*).
const (
	redisDBWorkerKill = 38
	redisDBStartup    = 39
)

var bins struct {
	dir string
	err error
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vigil-fault-")
	if err == nil {
		for _, b := range []string{"api", "worker"} {
			out, berr := exec.Command("go", "build", "-o", filepath.Join(dir, b), "../"+b).CombinedOutput()
			if berr != nil {
				err = fmt.Errorf("build %s: %v\n%s", b, berr, out)
				break
			}
		}
	}
	bins.dir, bins.err = dir, err
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func binary(t *testing.T, name string) string {
	t.Helper()
	if bins.err != nil {
		t.Fatal(bins.err)
	}
	return filepath.Join(bins.dir, name)
}

func reportXML(id string) []byte {
	return []byte(fmt.Sprintf(`<?xml version="1.0"?><feedback><report_metadata><org_name>fault.example</org_name>`+
		`<email>d@fault.example</email><report_id>%s</report_id><date_range><begin>1704067200</begin><end>1704153599</end>`+
		`</date_range></report_metadata><policy_published><domain>example.com</domain><p>none</p></policy_published>`+
		`<record><row><source_ip>192.0.2.9</source_ip><count>4</count><policy_evaluated><disposition>none</disposition>`+
		`<dkim>pass</dkim><spf>fail</spf></policy_evaluated></row><identifiers><header_from>example.com</header_from>`+
		`</identifiers><auth_results><spf><domain>example.com</domain><result>fail</result></spf></auth_results></record></feedback>`, id))
}

func writeReports(t *testing.T, dir string, n int) {
	t.Helper()
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("r%05d.xml", i)), reportXML(fmt.Sprintf("%s-%d", t.Name(), i)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// env is the environment of a subprocess: the test's own PATH and HOME, plus vars.
func env(vars map[string]string) []string {
	out := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "VIGIL_LOG_LEVEL=warn"}
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	return out
}

func count(t *testing.T, st *store.Store, where string) int {
	t.Helper()
	var n int64
	// The subprocess may hold SQLite's write lock; reads never wait for it in WAL mode.
	if err := st.DB().Raw("SELECT count(*) FROM " + where).Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	return int(n)
}

var summaryRE = regexp.MustCompile(`(\d+) files: (\d+) processed \((\d+) reports\), (\d+) duplicate, (\d+) failed`)

// `api import` killed with SIGKILL half-way, then run again: the rerun processes what the
// first left pending, counts it processed, and exits 0 only because every file is processed
// or a duplicate of a processed one (issue 20, 1).
func TestImportKilledThenRerun(t *testing.T) {
	t.Parallel()
	files := t.TempDir()
	const n = 3000
	writeReports(t, files, n)
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		ctx := context.Background()
		dbURL := b.DatabaseURL(t)
		st, err := store.Open(ctx, dbURL, testenv.Logger())
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if _, err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		vars := map[string]string{"VIGIL_DATA_DIR": t.TempDir(), "VIGIL_DATABASE_URL": dbURL}
		first := exec.Command(binary(t, "api"), "import", "--no-progress", files)
		first.Env = env(vars)
		if err := first.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(2 * time.Minute)
		// Killed when files are stored and not parsed yet, as with the 96 files of the issue.
		for count(t, st, "ingests WHERE status = 'processed'") < 100 || count(t, st, "ingests WHERE status = 'pending'") == 0 {
			if time.Now().After(deadline) {
				first.Process.Kill()
				t.Fatal("first import never had 100 files processed and others pending in 2 minutes")
			}
			time.Sleep(5 * time.Millisecond)
		}
		first.Process.Signal(syscall.SIGKILL)
		first.Wait()
		// A COMMIT the killed process sent just before it died is still carried out by
		// PostgreSQL: count once the server-side work of the dead client has settled.
		done, pending := settledCounts(t, st)
		t.Logf("killed the first import: %d files processed, %d stored and pending", done, pending)
		if pending == 0 {
			t.Fatal("no file left pending by the kill; nothing to test")
		}

		rerun := exec.Command(binary(t, "api"), "import", "--no-progress", files)
		rerun.Env = env(vars)
		var stdout, stderr bytes.Buffer
		rerun.Stdout, rerun.Stderr = &stdout, &stderr
		start := time.Now()
		if err := rerun.Run(); err != nil {
			t.Fatalf("rerun: %v\n%s\n%s", err, stdout.String(), stderr.String())
		}
		t.Logf("rerun took %v: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(stdout.String()))
		m := summaryRE.FindStringSubmatch(stdout.String())
		if m == nil {
			t.Fatalf("no summary in %q", stdout.String())
		}
		want := []int{n, n - done, n - done, done, 0}
		for i, w := range want {
			if got, _ := strconv.Atoi(m[i+1]); got != w {
				t.Errorf("summary %q: field %d is %d, want %d (files, processed, reports, duplicate, failed)", m[0], i+1, got, w)
			}
		}
		if p := count(t, st, "ingests WHERE status <> 'processed'"); p != 0 {
			t.Errorf("%d files not processed after the rerun", p)
		}
		if r := count(t, st, "reports"); r != n {
			t.Errorf("%d reports stored, want %d", r, n)
		}
	})
}

// Exit codes: 3 when a file failed (0 with --accept-failures), 2 for a bad command line,
// 0 and the usage for --help (issue 19).
func TestImportExitCodes(t *testing.T) {
	t.Parallel()
	files := t.TempDir()
	writeReports(t, files, 3)
	if err := os.WriteFile(filepath.Join(files, "junk.txt"), []byte("not a report"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"a file failed", []string{"import", "--no-progress", files}, 3, "junk.txt: "},
		{"failures accepted", []string{"import", "--no-progress", "--accept-failures", files}, 0, "1 failed"},
		{"help", []string{"import", "--help"}, 0, "usage: api import"},
		{"unknown flag", []string{"import", "--frobnicate", files}, 2, "flag provided but not defined"},
		{"no path", []string{"import"}, 2, "no PATH given"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(binary(t, "api"), c.args...)
			cmd.Env = env(map[string]string{"VIGIL_DATA_DIR": t.TempDir()})
			out, _ := cmd.CombinedOutput()
			if code := cmd.ProcessState.ExitCode(); code != c.code || !strings.Contains(string(out), c.out) {
				t.Errorf("api %s: exit %d, want %d; output should contain %q:\n%s", strings.Join(c.args, " "), code, c.code, c.out, out)
			}
		})
	}
}

// A file stored but never queued (an api killed between the two, or Redis restarted empty) is
// processed seconds after a worker starts: the worker's recovery enqueues every pending file
// at start-up (issue 20, 3). Embedded: `api` serves on the SQLite file with its in-process
// Redis; with real servers: `worker`, and then Redis flushed under it while it works: every
// file processed and every rollup current (issue 20, 3 and 4).
func TestStrandedFilesAtStartUp(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		t.Parallel()
		ctx := context.Background()
		dbURL := b.DatabaseURL(t)
		st, err := store.Open(ctx, dbURL, testenv.Logger())
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if _, err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		const n = 200
		stranded := ingest.New(st, nil, nil, ingest.Limits{FileBytes: 1 << 20, Unwrap: unwrap.DefaultLimits, Parse: dmarc.DefaultLimits}, testenv.Logger())
		var batch []ingest.File
		for i := range n {
			batch = append(batch, ingest.File{Name: "r.xml", Source: "upload", Data: reportXML(fmt.Sprintf("%s-%d", t.Name(), i))})
		}
		for start := 0; start < n; start += ingest.BatchFiles {
			if _, err := stranded.AcceptBatch(ctx, batch[start:min(start+ingest.BatchFiles, n)]); err != nil {
				t.Fatal(err)
			}
		}
		vars := map[string]string{"VIGIL_DATA_DIR": t.TempDir(), "VIGIL_DATABASE_URL": dbURL, "VIGIL_HTTP_ADDR": "127.0.0.1:0"}
		bin := "api"
		if b.Real() {
			bin, vars["VIGIL_REDIS_URL"] = "worker", b.RedisURL(t, redisDBStartup)
		}
		startProc(t, binary(t, bin), vars)
		took := waitProcessed(t, st, n, 60*time.Second)
		t.Logf("%d stranded files processed %v after %s started", n, took.Round(time.Millisecond), bin)
		if !b.Real() {
			return
		}

		// Redis flushed under the running worker: the parse and rollup tasks queued are lost.
		opt, err := asynq.ParseRedisURI(vars["VIGIL_REDIS_URL"])
		if err != nil {
			t.Fatal(err)
		}
		client := asynq.NewClient(opt)
		defer client.Close()
		rc := opt.MakeRedisClient().(redis.UniversalClient)
		defer rc.Close()
		queued := ingest.New(st, client, nil, ingest.Limits{FileBytes: 1 << 20, Unwrap: unwrap.DefaultLimits, Parse: dmarc.DefaultLimits}, testenv.Logger())
		const more = 300
		batch = batch[:0]
		for i := range more {
			batch = append(batch, ingest.File{Name: "r.xml", Source: "upload", Data: reportXML(fmt.Sprintf("%s-more-%d", t.Name(), i))})
		}
		for start := 0; start < more; start += ingest.BatchFiles {
			if _, err := queued.AcceptBatch(ctx, batch[start:min(start+ingest.BatchFiles, more)]); err != nil {
				t.Fatal(err)
			}
		}
		for count(t, st, "ingests WHERE status = 'processed'") < n+50 {
			time.Sleep(5 * time.Millisecond)
		}
		if err := rc.FlushDB(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		flushed := time.Now()
		t.Logf("flushed Redis with %d of %d files processed", count(t, st, "ingests WHERE status = 'processed'"), n+more)
		waitProcessed(t, st, n+more, 5*time.Minute)
		t.Logf("every file processed %v after the flush", time.Since(flushed).Round(time.Millisecond))
		for count(t, st, "reports WHERE id NOT IN (SELECT report_id FROM rollup_applied)") > 0 {
			if time.Since(flushed) > 5*time.Minute {
				t.Fatal("rollups not current 5 minutes after the flush")
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("every rollup current %v after the flush", time.Since(flushed).Round(time.Millisecond))
	})
}

// A worker killed with SIGKILL while parsing: its orphaned tasks are enqueued again by the
// other worker's recovery as soon as their lease expires (30 s at most), instead of asynq's
// lease recovery plus retry delay (80–104 s measured before); every file ends processed.
// Real servers only: two worker processes need a shared Redis (issue 20, 5).
func TestWorkerKilled(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		if !b.Real() {
			t.Log("the embedded default runs one process with its own Redis: no second worker to take over; covered on the real servers")
			return
		}
		t.Parallel()
		ctx := context.Background()
		dbURL := b.DatabaseURL(t)
		st, err := store.Open(ctx, dbURL, testenv.Logger())
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if _, err := st.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		redisURL := b.RedisURL(t, redisDBWorkerKill)
		opt, err := asynq.ParseRedisURI(redisURL)
		if err != nil {
			t.Fatal(err)
		}
		client := asynq.NewClient(opt)
		defer client.Close()
		insp := asynq.NewInspector(opt)
		defer insp.Close()
		svc := ingest.New(st, client, insp, ingest.Limits{FileBytes: 64 << 20, Unwrap: unwrap.DefaultLimits, Parse: dmarc.DefaultLimits}, testenv.Logger())
		// Small files, then long reports (seconds each: a kill catches them mid-parse), then
		// more small files.
		var batch []ingest.File
		for i := range 200 {
			batch = append(batch, ingest.File{Name: "r.xml", Source: "upload", Data: reportXML(fmt.Sprintf("%s-%d", t.Name(), i))})
		}
		const long = 3
		for i := range long {
			batch = append(batch, ingest.File{Name: "long.xml", Source: "upload", Data: longReportXML(fmt.Sprintf("%s-long-%d", t.Name(), i), 10000)})
		}
		for i := range 200 {
			batch = append(batch, ingest.File{Name: "r.xml", Source: "upload", Data: reportXML(fmt.Sprintf("%s-after-%d", t.Name(), i))})
		}
		n := len(batch)
		for _, f := range batch { // one by one: the queue's order is the files' order
			if _, err := svc.Accept(ctx, f); err != nil {
				t.Fatal(err)
			}
		}
		vars := map[string]string{"VIGIL_DATA_DIR": t.TempDir(), "VIGIL_DATABASE_URL": dbURL, "VIGIL_REDIS_URL": redisURL, "VIGIL_WORKER_CONCURRENCY": "4"}
		victim := startProc(t, binary(t, "worker"), vars)
		const claimedLong = "ingests WHERE filename = 'long.xml' AND status = 'pending' AND attempts > 0"
		deadline := time.Now().Add(3 * time.Minute)
		for count(t, st, claimedLong) == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the worker did not start on a long report in 3 minutes")
			}
			time.Sleep(10 * time.Millisecond)
		}
		victim.Process.Signal(syscall.SIGKILL)
		victim.Wait()
		killed := time.Now()
		cut := count(t, st, claimedLong)
		t.Logf("killed a worker while it parsed %d long reports, %d files processed", cut, count(t, st, "ingests WHERE status = 'processed'"))
		startProc(t, binary(t, "worker"), vars)
		// Picked up again: a new attempt on each long report the kill cut off (the parse itself
		// then takes what it takes on this machine).
		retried := "ingests WHERE filename = 'long.xml' AND (attempts > 1 OR status <> 'pending')"
		for count(t, st, retried) < long {
			if time.Since(killed) > 3*time.Minute {
				t.Fatal("the long reports were not tried again 3 minutes after the kill")
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("the files cut off by the kill were taken up again %v after it", time.Since(killed).Round(time.Millisecond))
		for count(t, st, "ingests WHERE filename = 'long.xml' AND status = 'processed'") < long {
			if time.Since(killed) > 5*time.Minute {
				t.Fatal("the long reports are not processed 5 minutes after the kill")
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("and processed %v after it", time.Since(killed).Round(time.Millisecond))
		waitProcessed(t, st, n, 5*time.Minute)
		t.Logf("every file processed %v after the kill (the backlog included)", time.Since(killed).Round(time.Millisecond))
	})
}

// longReportXML is one report with n records from distinct sources.
func longReportXML(id string, n int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0"?><feedback><report_metadata><org_name>fault.example</org_name>`+
		`<email>d@fault.example</email><report_id>%s</report_id><date_range><begin>1704067200</begin><end>1704153599</end>`+
		`</date_range></report_metadata><policy_published><domain>example.com</domain><p>none</p></policy_published>`, id)
	for i := range n {
		fmt.Fprintf(&b, `<record><row><source_ip>10.%d.%d.%d</source_ip><count>1</count><policy_evaluated><disposition>none</disposition>`+
			`<dkim>pass</dkim><spf>pass</spf></policy_evaluated></row><identifiers><header_from>example.com</header_from>`+
			`</identifiers><auth_results><spf><domain>example.com</domain><result>pass</result></spf></auth_results></record>`, i>>16&255, i>>8&255, i&255)
	}
	b.WriteString(`</feedback>`)
	return []byte(b.String())
}

func startProc(t *testing.T, bin string, vars map[string]string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = env(vars)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s stderr:\n%s", filepath.Base(bin), stderr.String())
		}
	})
	return cmd
}

// waitProcessed waits until n files are processed and says how long it took.
func waitProcessed(t *testing.T, st *store.Store, n int, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		done := count(t, st, "ingests WHERE status = 'processed'")
		if done == n {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("%d of %d files processed after %v", done, n, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// settledCounts returns the processed and pending counts once two reads half a second apart
// agree, so work a killed client's server session was still finishing is counted.
func settledCounts(t *testing.T, st *store.Store) (done, pending int) {
	t.Helper()
	done, pending = -1, -1
	for i := 0; i < 40; i++ {
		d, p := count(t, st, "ingests WHERE status = 'processed'"), count(t, st, "ingests WHERE status = 'pending'")
		if d == done && p == pending {
			return d, p
		}
		done, pending = d, p
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("counts never settled after the kill: %d processed, %d pending", done, pending)
	return 0, 0
}
