// Package benchimport times ingestion the way a user meets it: the real binaries, whole
// processes, a fresh database each run, rollups included (`make bench-import`). It builds two
// sets from the shared corpus — the plain-XML real aggregate reports copied with unique report
// ids into 8,000 small files, and 20 copies of the 2,286-record report — and times
//
//   - import: `api migrate`, then `api import DIR` (timed), on PostgreSQL and on the embedded
//     SQLite, then how long after the command ended every report is in the rollups;
//   - upload: an `api` and a `worker` process on the same database and Redis, the files sent
//     through `POST /api/upload` (two requests at a time), timed until every file is processed
//     and every report rolled up.
//
// It prints reports/s, records/s, the rollup lag and the peak RSS of each process, and the
// median of each case over the runs.
package benchimport

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vigilhq/vigil/pkg/corpus"
	"github.com/vigilhq/vigil/pkg/store"
)

type options struct {
	corpus    string
	pgURL     string
	redisURL  string
	addr      string
	apiBin    string
	workerBin string
	backends  []string
	modes     []string
	sets      []string
	runs      int
	small     int
	large     int
	keep      bool
	noRollups bool
}

// Main runs the benchmark with command-line arguments args.
func Main(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("vigil-benchimport", flag.ContinueOnError)
	var o options
	var backends, modes, sets string
	fs.StringVar(&o.corpus, "corpus", "", "the shared corpus folder (default: ../shared/corpus beside the module root)")
	fs.StringVar(&o.pgURL, "database", "postgres://postgres@127.0.0.1:5432/vigil_bench?sslmode=disable",
		"PostgreSQL database for the postgres runs: its public schema is DROPPED and recreated before each run")
	fs.StringVar(&o.redisURL, "redis", "redis://127.0.0.1:6379/15", "Redis database for the upload runs: FLUSHED before each run")
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8109", "where the api of the upload runs listens")
	fs.StringVar(&o.apiBin, "api", "", "api binary to time (default: built from this module)")
	fs.StringVar(&o.workerBin, "worker", "", "worker binary (default: built from this module)")
	fs.StringVar(&backends, "backends", "postgres,sqlite,embedded",
		"backends to run: postgres, sqlite (upload: api and worker processes on one SQLite file), embedded (upload only: one api process, as `make run`)")
	fs.StringVar(&modes, "modes", "import,upload", "paths to time: import, upload")
	fs.StringVar(&sets, "sets", "small,large", "sets: small (8,000 corpus reports), large (20 × the 2,286-record report)")
	fs.IntVar(&o.runs, "runs", 3, "runs of each case (interleaved)")
	fs.IntVar(&o.small, "small-files", 8000, "files in the small set")
	fs.IntVar(&o.large, "large-files", 20, "copies in the large set")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary folder (sets, data dirs, logs)")
	fs.BoolVar(&o.noRollups, "no-rollups", false, "do not wait for rollups (to time a build that does not maintain them)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.backends, o.modes, o.sets = split(backends), split(modes), split(sets)
	if o.corpus == "" {
		d, err := corpus.Dir()
		if err != nil {
			return err
		}
		o.corpus = d
	}
	tmp, err := os.MkdirTemp("", "vigil-benchimport-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintln(out, "working folder:", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	if err := o.build(ctx, tmp); err != nil {
		return err
	}
	setDirs := map[string]setInfo{}
	for _, s := range o.sets {
		info, err := makeSet(o.corpus, filepath.Join(tmp, "set-"+s), s, o.small, o.large)
		if err != nil {
			return err
		}
		setDirs[s] = info
		fmt.Fprintf(out, "set %s: %d files, %d reports, %d <record> elements\n", s, info.files, info.reports, info.records)
	}
	fmt.Fprintln(out, "load:", loadAvg())
	results := map[string][]result{}
	var order []string
	for run := 1; run <= o.runs; run++ {
		for _, s := range o.sets {
			for _, mode := range o.modes {
				for _, be := range o.backends {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					if be == "embedded" && mode != "upload" {
						continue // an import is the same inline run as sqlite's
					}
					c := bcase{set: s, info: setDirs[s], mode: mode, backend: be, dir: filepath.Join(tmp, fmt.Sprintf("run-%d-%s-%s-%s", run, s, mode, be))}
					r, err := o.run(ctx, c)
					if err != nil {
						return fmt.Errorf("%s %s %s run %d: %w", s, mode, be, run, err)
					}
					name := fmt.Sprintf("%-5s %-6s %-8s", s, mode, be)
					if _, ok := results[name]; !ok {
						order = append(order, name)
					}
					results[name] = append(results[name], r)
					fmt.Fprintf(out, "run %d %s %s  (load %s)\n", run, name, r, loadAvg())
				}
			}
		}
	}
	fmt.Fprintf(out, "\nmedians of %d runs\n", o.runs)
	for _, name := range order {
		fmt.Fprintf(out, "%s %s\n", name, median(results[name]))
	}
	return nil
}

func split(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// build compiles the binaries it was not given, as `make build` does.
func (o *options) build(ctx context.Context, tmp string) error {
	for _, b := range []struct {
		bin *string
		pkg string
	}{{&o.apiBin, "./cmd/api"}, {&o.workerBin, "./cmd/worker"}} {
		if *b.bin != "" {
			continue
		}
		*b.bin = filepath.Join(tmp, filepath.Base(b.pkg))
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", *b.bin, b.pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %w\n%s", b.pkg, err, out)
		}
	}
	return nil
}

type bcase struct {
	set, mode, backend string
	info               setInfo
	dir                string
}

type result struct {
	elapsed  time.Duration // until every report is stored and rolled up
	lag      time.Duration // from the end of the command (import) or of processing (upload) to rolled up
	reports  int64
	records  int64
	rssKB    int64         // the import process, or the worker
	apiRSSKB int64         // upload: the api process
	accepted time.Duration // upload: until the last request was answered (a diagnosis, not the figure)
	cpu      time.Duration // import: the import process's user+system CPU time
	pgCPU    time.Duration // postgres: CPU time of the server's backends for the run's database
}

func (r result) String() string {
	s := fmt.Sprintf("%7.2fs %8.0f reports/s %9.0f records/s  lag %5.2fs  rss %4d MB", r.elapsed.Seconds(),
		float64(r.reports)/r.elapsed.Seconds(), float64(r.records)/r.elapsed.Seconds(), r.lag.Seconds(), r.rssKB>>10)
	if r.apiRSSKB > 0 {
		s += fmt.Sprintf(" (worker), %d MB (api)", r.apiRSSKB>>10)
	}
	if r.accepted > 0 {
		s += fmt.Sprintf("  uploads answered at %.2fs", r.accepted.Seconds())
	}
	if r.cpu > 0 || r.pgCPU > 0 {
		s += fmt.Sprintf("  cpu %.2fs import, %.2fs postgres", r.cpu.Seconds(), r.pgCPU.Seconds())
	}
	return s
}

func median(rs []result) result {
	pick := func(f func(result) int64) int64 {
		v := make([]int64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	return result{
		elapsed:  time.Duration(pick(func(r result) int64 { return int64(r.elapsed) })),
		lag:      time.Duration(pick(func(r result) int64 { return int64(r.lag) })),
		reports:  rs[0].reports,
		records:  rs[0].records,
		rssKB:    pick(func(r result) int64 { return r.rssKB }),
		apiRSSKB: pick(func(r result) int64 { return r.apiRSSKB }),
		accepted: time.Duration(pick(func(r result) int64 { return int64(r.accepted) })),
		cpu:      time.Duration(pick(func(r result) int64 { return int64(r.cpu) })),
		pgCPU:    time.Duration(pick(func(r result) int64 { return int64(r.pgCPU) })),
	}
}

// env is the environment of the processes of one run: this one's, less any VIGIL_ setting,
// plus the run's.
func (c bcase) env(o *options, withRedis bool) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VIGIL_") {
			env = append(env, kv)
		}
	}
	data := filepath.Join(c.dir, "data")
	env = append(env, "VIGIL_LOG_LEVEL=warn", "VIGIL_DATA_DIR="+data)
	switch {
	case c.backend == "postgres":
		env = append(env, "VIGIL_DATABASE_URL="+o.pgURL)
	case withRedis:
		// Two processes on one SQLite file: the file of the embedded default, named.
		env = append(env, "VIGIL_DATABASE_URL=sqlite://"+filepath.Join(data, "vigil.db"))
	}
	if withRedis {
		env = append(env, "VIGIL_REDIS_URL="+o.redisURL)
	}
	return env
}

func (c bcase) databaseURL(o *options) string {
	if c.backend == "postgres" {
		return o.pgURL
	}
	return "sqlite://" + filepath.Join(c.dir, "data", "vigil.db")
}

// fresh empties the run's database.
func (o *options) fresh(ctx context.Context, c bcase) error {
	if err := os.MkdirAll(filepath.Join(c.dir, "data"), 0o750); err != nil {
		return err
	}
	if c.backend != "postgres" {
		return nil
	}
	st, err := store.Open(ctx, o.pgURL, quiet())
	if err != nil {
		return err
	}
	defer st.Close()
	return st.DB().WithContext(ctx).Exec("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public").Error
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// runCmd runs a binary to the end, keeping its output in the run's folder, and returns its
// peak RSS in KiB.
func runCmd(ctx context.Context, c bcase, env []string, name string, bin string, args ...string) (int64, error) {
	rss, _, err := runCmdCPU(ctx, c, env, name, bin, args...)
	return rss, err
}

// runCmdCPU is runCmd that also returns the process's user+system CPU time.
func runCmdCPU(ctx context.Context, c bcase, env []string, name string, bin string, args ...string) (int64, time.Duration, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Start()
	var rss int64
	var cpu time.Duration
	if err == nil {
		done := watchHWM(cmd.Process.Pid)
		err = cmd.Wait()
		rss = done()
		if ps := cmd.ProcessState; ps != nil {
			cpu = ps.UserTime() + ps.SystemTime()
		}
	}
	_ = os.WriteFile(filepath.Join(c.dir, name+".log"), buf.Bytes(), 0o640)
	if err != nil {
		return rss, cpu, fmt.Errorf("%s %s: %w\n%s", filepath.Base(bin), strings.Join(args, " "), err, tail(buf.Bytes()))
	}
	return rss, cpu, nil
}

func tail(b []byte) []byte {
	if len(b) > 4000 {
		return b[len(b)-4000:]
	}
	return b
}

// watchHWM follows a running process's peak RSS (VmHWM in /proc/PID/status, KiB) until the
// returned function is called, which gives the last value read. getrusage at exit would be
// simpler but wrong here: Linux keeps ru_maxrss across execve, so a child forked from this
// process (grown by holding the sets) would report this process's size. VmHWM belongs to the
// address space, which execve replaces. Read every 20 ms: a process's last 20 ms of growth may
// be missed.
func watchHWM(pid int) (stop func() int64) {
	var peak atomic.Int64
	read := func() {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				var kb int64
				if _, err := fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kb); err == nil && kb > peak.Load() {
					peak.Store(kb)
				}
			}
		}
	}
	stopPoll := poll(20*time.Millisecond, read)
	return func() int64 {
		stopPoll()
		return peak.Load()
	}
}

// poll calls read now and every interval until the returned function is called, which
// returns once the last call has finished.
func poll(every time.Duration, read func()) (stop func()) {
	quit, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			read()
			select {
			case <-quit:
				return
			case <-t.C:
			}
		}
	}()
	return func() {
		close(quit)
		<-finished
	}
}

func (o *options) run(ctx context.Context, c bcase) (result, error) {
	if err := o.fresh(ctx, c); err != nil {
		return result{}, err
	}
	if c.mode == "upload" {
		return o.runUpload(ctx, c)
	}
	env := c.env(o, false)
	if _, err := runCmd(ctx, c, env, "migrate", o.apiBin, "migrate"); err != nil {
		return result{}, err
	}
	pg := o.watchPostgres(c)
	start := time.Now()
	rss, cpu, err := runCmdCPU(ctx, c, env, "import", o.apiBin, "import", c.info.dir)
	if err != nil {
		pg()
		return result{}, err
	}
	ended := time.Since(start)
	r, err := o.waitRolledUp(ctx, c, start, ended)
	r.rssKB, r.cpu, r.pgCPU = rss, cpu, pg()
	return r, err
}

// waitRolledUp checks that every report of the set is stored and waits until every one is in
// the rollups (the rollup_applied row is written with its rollup rows).
func (o *options) waitRolledUp(ctx context.Context, c bcase, start time.Time, ended time.Duration) (result, error) {
	st, err := store.Open(ctx, c.databaseURL(o), quiet())
	if err != nil {
		return result{}, err
	}
	defer st.Close()
	db := st.DB().WithContext(ctx)
	var r result
	if err := db.Raw("SELECT COUNT(*) FROM reports").Scan(&r.reports).Error; err != nil {
		return r, err
	}
	if err := db.Raw("SELECT COUNT(*) FROM records").Scan(&r.records).Error; err != nil {
		return r, err
	}
	// Records as stored: the corpus index counts <record> elements, and a few are not records.
	if r.reports != int64(c.info.reports) {
		return r, fmt.Errorf("%d reports stored, want %d", r.reports, c.info.reports)
	}
	if o.noRollups {
		r.elapsed = ended
		return r, nil
	}
	deadline := time.Now().Add(5 * time.Minute)
	for first := true; ; first = false {
		var applied int64
		if err := db.Raw("SELECT COUNT(*) FROM rollup_applied").Scan(&applied).Error; err != nil {
			return r, err
		}
		if applied >= r.reports && first {
			r.elapsed = ended // rolled up when the command ended
			return r, nil
		}
		if applied >= r.reports {
			break
		}
		if time.Now().After(deadline) {
			return r, fmt.Errorf("only %d of %d reports rolled up after 5 minutes", applied, r.reports)
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.elapsed = time.Since(start)
	r.lag = r.elapsed - ended
	return r, nil
}
