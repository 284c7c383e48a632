package store_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/store"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// privatePG runs a PostgreSQL of this test's own (the shared one must not be crashed), with
// the WAL writer slowed to its maximum delay (10 s) so that asynchronous commits stay in
// memory until something flushes them: what a crash then loses is deterministic.
type privatePG struct {
	dir, port string
	run       func(args ...string) *exec.Cmd
}

func startPrivatePG(t *testing.T) *privatePG {
	t.Helper()
	initdb, err := exec.LookPath("initdb")
	if err != nil {
		t.Skip("no initdb on PATH: the crash test needs a PostgreSQL of its own")
	}
	bin := filepath.Dir(initdb)
	if real, err := filepath.EvalSymlinks(initdb); err == nil {
		bin = filepath.Dir(real)
	}
	// Not t.TempDir(): its parent is private to this user, and the server may run as another.
	root, err := os.MkdirTemp("", "vigil-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	p := &privatePG{dir: filepath.Join(root, "pg")}
	p.run = func(args ...string) *exec.Cmd { return exec.Command(filepath.Join(bin, args[0]), args[1:]...) }
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root: run it as the postgres user.
		if _, err := exec.LookPath("runuser"); err != nil {
			t.Skip("running as root without runuser: cannot start a PostgreSQL of the test's own")
		}
		if err := os.MkdirAll(p.dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("chown", "-R", "postgres", filepath.Dir(p.dir)).CombinedOutput(); err != nil {
			t.Skipf("cannot hand a data directory to the postgres user: %v %s", err, out)
		}
		os.Chmod(filepath.Dir(p.dir), 0o755)
		p.run = func(args ...string) *exec.Cmd {
			return exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(bin, args[0])}, args[1:]...)...)
		}
	}
	if out, err := p.run("initdb", "-D", p.dir, "-A", "trust", "-U", "postgres", "--no-sync").CombinedOutput(); err != nil {
		t.Skipf("initdb failed (%v): %s", err, out[max(0, len(out)-400):])
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, p.port, _ = net.SplitHostPort(ln.Addr().String())
	ln.Close()
	p.start(t)
	t.Cleanup(func() { p.run("pg_ctl", "-D", p.dir, "stop", "-m", "immediate").Run() })
	return p
}

func (p *privatePG) start(t *testing.T) {
	t.Helper()
	opts := fmt.Sprintf("-p %s -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s -c wal_writer_delay=10s -c fsync=on", p.port, p.dir)
	if out, err := p.run("pg_ctl", "-D", p.dir, "-w", "-o", opts, "-l", filepath.Join(p.dir, "log"), "start").CombinedOutput(); err != nil {
		t.Fatalf("start PostgreSQL: %v %s", err, out)
	}
}

// crash stops PostgreSQL as a power cut would leave it (immediate: no checkpoint, no flush;
// the restart replays the WAL on disk) and starts it again.
func (p *privatePG) crash(t *testing.T) {
	t.Helper()
	if out, err := p.run("pg_ctl", "-D", p.dir, "-w", "stop", "-m", "immediate").CombinedOutput(); err != nil {
		t.Fatalf("crash PostgreSQL: %v %s", err, out)
	}
	p.start(t)
}

func (p *privatePG) url() string {
	return "postgres://postgres@127.0.0.1:" + p.port + "/postgres?sslmode=disable"
}

// An outcome recorded with the asynchronous pool survives a database crash once Durable has
// returned (issue 20, 2: files that had logged "processed" were pending again after a crash).
// Without Durable, the same write is lost: the control that shows the test can fail.
func TestDurableSurvivesCrash(t *testing.T) {
	t.Parallel()
	pg := startPrivatePG(t)
	ctx := context.Background()
	open := func() *store.Store {
		t.Helper()
		var st *store.Store
		var err error
		for range 50 { // the restarted server may still be replaying its WAL
			if st, err = store.Open(ctx, pg.url(), testenv.Logger()); err == nil {
				return st
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatal(err)
		return nil
	}
	st := open()
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	finish := func(st *store.Store, name string) int64 {
		t.Helper()
		sum := sha256.Sum256([]byte(name))
		out, err := st.CreateIngests(ctx, []store.NewFile{{SHA256: hex.EncodeToString(sum[:]), Filename: name, Source: "test", Size: 1, ReceivedAt: time.Now(), Encoding: "identity", Data: []byte("x")}})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, ok, err := st.Claim(ctx, out[0].ID); err != nil || !ok {
			t.Fatalf("claim: %v %v", ok, err)
		}
		if _, err := st.Finish(ctx, out[0].ID, store.StatusProcessed, "", 1); err != nil {
			t.Fatal(err)
		}
		return out[0].ID
	}
	status := func(st *store.Store, id int64) string {
		t.Helper()
		ing, err := st.GetIngest(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return ing.Status
	}

	control := finish(st, "control")
	st.Close()
	pg.crash(t)
	st = open()
	if got := status(st, control); got == store.StatusProcessed {
		t.Log("control: the asynchronous commit was flushed before the crash anyway (another flush came first)")
	} else {
		t.Logf("control: without Durable the outcome was lost in the crash (status %s)", got)
	}

	durable := finish(st, "durable")
	if err := st.Durable(ctx); err != nil {
		t.Fatal(err)
	}
	st.Close()
	pg.crash(t)
	st = open()
	defer st.Close()
	if got := status(st, durable); got != store.StatusProcessed {
		t.Fatalf("after Durable and a crash the file is %s, want processed", got)
	}
}
