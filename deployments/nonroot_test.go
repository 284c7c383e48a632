package deployments_test

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// imageUID is the image's user (distroless nonroot).
const imageUID = 65532

// lockedBuffer collects a process's output while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// asImageUser runs bin with args as the image's user, in env, and returns the command
// (started when start is set, else run to its end).
func asImageUser(t *testing.T, env []string, bin string, args ...string) (*exec.Cmd, *lockedBuffer) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: imageUID, Gid: imageUID}}
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	return cmd, out
}

// world makes a directory everybody may enter (t.TempDir is 0700 root: the image's user could
// not even reach the binaries).
func world(t *testing.T, dir string, mode os.FileMode, uid int) string {
	t.Helper()
	if err := os.MkdirAll(dir, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, uid); err != nil {
		t.Fatal(err)
	}
	return dir
}

// The binaries as the image runs them: as uid 65532, with a data dir Docker would create (a
// root-owned mount point) and with the one the image now creates (owned by 65532). The api
// refuses the first with a clear error and serves from the second; the worker and scheduler
// never write the data dir, run on the root-owned one, and pass their healthchecks; SIGTERM
// stops each, logged. The production shape is taken with SQLite and miniredis standing in for
// PostgreSQL and Redis, so this runs anywhere root can switch users.
func TestBinariesAsImageUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run the binaries as uid 65532, the image's user (CI runs as root)")
	}
	t.Parallel()
	// Not t.TempDir: its parent is 0700 root, and the image's user must reach the binaries.
	tmp, err := os.MkdirTemp("", "vigil-image-user-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	base := world(t, tmp, 0o755, 0)
	bin := world(t, filepath.Join(base, "bin"), 0o755, 0)
	build := exec.Command("go", "build", "-o", bin+"/", "../cmd/api", "../cmd/worker", "../cmd/scheduler")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	rootOwned := world(t, filepath.Join(base, "docker-mount-point"), 0o755, 0)
	imageDir := world(t, filepath.Join(base, "image-data"), 0o750, imageUID) // as the Dockerfile makes it
	world(t, filepath.Join(imageDir, "tmp"), 0o750, imageUID)
	dbDir := world(t, filepath.Join(base, "db"), 0o700, imageUID)
	redis := miniredis.RunT(t)
	addr := freeAddr(t)
	env := func(dataDir string) []string {
		return []string{
			"VIGIL_DATA_DIR=" + dataDir, "VIGIL_HTTP_ADDR=" + addr,
			"VIGIL_DATABASE_URL=sqlite://" + filepath.Join(dbDir, "vigil.db"), "VIGIL_REDIS_URL=redis://" + redis.Addr(),
			"VIGIL_JWT_SECRET=" + strings.Repeat("s", 48), "VIGIL_ADMIN_PASSWORD=image user test passphrase",
			"HOME=/nonexistent", "PATH=/usr/bin:/bin",
		}
	}
	run := func(dataDir, b string, args ...string) (error, string) {
		cmd, out := asImageUser(t, env(dataDir), filepath.Join(bin, b), args...)
		err := cmd.Run()
		return err, out.String()
	}
	if err, out := run(rootOwned, "api", "migrate"); err != nil {
		t.Fatalf("migrate as %d: %v\n%s", imageUID, err, out)
	}

	// Docker's root-owned mount point: a clear refusal naming the variable, before listening.
	err, out := run(rootOwned, "api")
	if err == nil || !strings.Contains(out, "VIGIL_DATA_DIR") || !strings.Contains(out, "writable") || strings.Contains(out, "listening") {
		t.Fatalf("api on a root-owned data dir: %v\n%s\nwant a refusal naming VIGIL_DATA_DIR", err, out)
	}

	start := func(dataDir, b string) (*exec.Cmd, *lockedBuffer) {
		cmd, out := asImageUser(t, env(dataDir), filepath.Join(bin, b))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd, out
	}
	stop := func(name string, cmd *exec.Cmd, out *lockedBuffer) {
		t.Helper()
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil || !strings.Contains(out.String(), "signal received") {
				t.Errorf("%s after SIGTERM: %v\n%s", name, err, out)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("%s did not stop within 30s of SIGTERM", name)
		}
	}
	healthy := func(dataDir, b string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			err, out := run(dataDir, b, "healthcheck")
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s healthcheck as %d still failing after 30s: %v\n%s", b, imageUID, err, out)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	api, apiOut := start(imageDir, "api")
	healthy(imageDir, "api")
	resp, err := http.Get("http://" + addr + "/health")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/health: %v %v\n%s", resp, err, apiOut)
	}
	resp.Body.Close()
	for _, role := range []string{"worker", "scheduler"} {
		if err, _ := run(rootOwned, role, "healthcheck"); err == nil {
			t.Fatalf("%s healthcheck passed before a %s ran", role, role)
		}
		cmd, out := start(rootOwned, role)
		healthy(rootOwned, role)
		stop(role, cmd, out)
	}
	stop("api", api, apiOut)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
