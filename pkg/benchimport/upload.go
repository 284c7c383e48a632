package benchimport

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/pkg/store"
)

const (
	benchEmail    = "bench@example.com"
	benchPassword = "bench-import-password-1"
)

// runUpload times the set sent through POST /api/upload to an api process, parsed by a worker
// in another process, until every file is processed and every report rolled up. The embedded
// backend is `make run` as a newcomer runs it: one api process on SQLite with its worker,
// scheduler and Redis inside.
func (o *options) runUpload(ctx context.Context, c bcase) (result, error) {
	embedded := c.backend == "embedded"
	opt, err := redis.ParseURL(o.redisURL)
	if err != nil {
		return result{}, fmt.Errorf("-redis: %w", err)
	}
	rc := redis.NewClient(opt)
	err = rc.FlushDB(ctx).Err()
	rc.Close()
	if err != nil {
		return result{}, fmt.Errorf("flush redis: %w", err)
	}
	env := append(c.env(o, !embedded), "VIGIL_HTTP_ADDR="+o.addr, "VIGIL_JWT_SECRET=bench-import-secret-0123456789abcdef",
		"VIGIL_ADMIN_PASSWORD="+benchPassword, "VIGIL_RATE_LIMIT_UPLOAD=100000/1m", "VIGIL_RATE_LIMIT_API=100000/1m",
		"VIGIL_RATE_LIMIT_AUTH=1000/1m")
	if _, err := runCmd(ctx, c, env, "migrate", o.apiBin, "migrate"); err != nil {
		return result{}, err
	}
	if _, err := runCmd(ctx, c, env, "admin", o.apiBin, "admin", "create", benchEmail); err != nil {
		return result{}, err
	}
	api, err := startProc(c, env, "api", o.apiBin)
	if err != nil {
		return result{}, err
	}
	defer api.stop()
	var worker *proc
	if !embedded {
		if worker, err = startProc(c, env, "worker", o.workerBin); err != nil {
			return result{}, err
		}
		defer worker.stop()
	}
	base := "http://" + o.addr
	if err := waitReady(ctx, base); err != nil {
		return result{}, err
	}
	token, err := login(ctx, base)
	if err != nil {
		return result{}, err
	}
	files, err := filepath.Glob(filepath.Join(c.info.dir, "*.xml"))
	if err != nil {
		return result{}, err
	}
	sort.Strings(files)
	st, err := store.Open(ctx, c.databaseURL(o), quiet())
	if err != nil {
		return result{}, err
	}
	defer st.Close()

	start := time.Now()
	if err := uploadAll(ctx, base, token, files); err != nil {
		return result{}, err
	}
	accepted := time.Since(start)
	// Processed: no file left pending.
	db := st.DB().WithContext(ctx)
	deadline := time.Now().Add(10 * time.Minute)
	for {
		var total, pending int64
		if err := db.Raw("SELECT COUNT(*), COALESCE(SUM(CASE WHEN status = 'pending' THEN 1 ELSE 0 END), 0) FROM ingests").Row().Scan(&total, &pending); err != nil {
			return result{}, err
		}
		if total == int64(len(files)) && pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			return result{}, fmt.Errorf("%d of %d files still pending after 10 minutes", pending, total)
		}
		time.Sleep(20 * time.Millisecond)
	}
	processed := time.Since(start)
	r, err := o.waitRolledUp(ctx, c, start, processed)
	r.accepted = accepted
	if err != nil {
		return r, err
	}
	if embedded {
		r.rssKB, err = api.stop()
		return r, err
	}
	r.rssKB, err = worker.stop()
	if err != nil {
		return r, err
	}
	r.apiRSSKB, err = api.stop()
	return r, err
}

type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	once sync.Once
	rss  int64
	err  error
}

func startProc(c bcase, env []string, name, bin string) (*proc, error) {
	f, err := os.Create(filepath.Join(c.dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	hwm := watchHWM(cmd.Process.Pid)
	go func() {
		_ = cmd.Wait()
		p.rss = hwm()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// stop ends the process with SIGTERM (SIGKILL after 30 s) and returns its peak RSS in KiB.
func (p *proc) stop() (int64, error) {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
			p.err = fmt.Errorf("%s did not stop within 30 s of SIGTERM", p.cmd.Path)
		}
	})
	return p.rss, p.err
}

func waitReady(ctx context.Context, base string) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/ready", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("api not ready at %s after 60 s", base)
}

func login(ctx context.Context, base string) (string, error) {
	body, _ := json.Marshal(map[string]string{"email": benchEmail, "password": benchPassword})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/auth/login", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.AccessToken == "" {
		return "", fmt.Errorf("login: %s %v", resp.Status, err)
	}
	return out.AccessToken, nil
}

// uploadAll sends the files in requests of up to 100 files or 8 MB, two requests at a time.
func uploadAll(ctx context.Context, base, token string, files []string) error {
	var groups [][]string
	var cur []string
	var size int64
	for _, f := range files {
		info, err := os.Stat(f)
		if err != nil {
			return err
		}
		if len(cur) > 0 && (len(cur) == 100 || size+info.Size() > 8<<20) {
			groups, cur, size = append(groups, cur), nil, 0
		}
		cur, size = append(cur, f), size+info.Size()
	}
	if len(cur) > 0 {
		groups = append(groups, cur)
	}
	work := make(chan []string)
	errs := make(chan error, len(groups))
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for g := range work {
				errs <- upload(ctx, base, token, g)
			}
		}()
	}
	for _, g := range groups {
		work <- g
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func upload(ctx context.Context, base, token string, files []string) error {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		w, err := mw.CreateFormFile("files", filepath.Base(f))
		if err != nil {
			return err
		}
		w.Write(data)
	}
	mw.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/upload", &body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("upload: %s: %s", resp.Status, b)
	}
	var out struct {
		Files []struct {
			Filename, Status, Error string
		} `json:"files"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return fmt.Errorf("upload answer: %w", err)
	}
	for _, f := range out.Files {
		if f.Status != "accepted" {
			return fmt.Errorf("upload: %s %s: %s", f.Filename, f.Status, f.Error)
		}
	}
	return nil
}
