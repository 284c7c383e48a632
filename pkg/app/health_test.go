package app_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/pkg/app"
	"github.com/vigilhq/vigil/pkg/testenv"
)

// redisDBHealth is this file's Redis database on the real server (block 32–35).
const redisDBHealth = 33

// `worker healthcheck` and `scheduler healthcheck` (the compose healthchecks) pass while the
// role runs on this host and fail before it starts and after it stops.
func TestRoleHealthcheck(t *testing.T) {
	t.Parallel()
	testenv.Run(t, func(t *testing.T, b testenv.Backend) {
		cfg := testConfig(t, map[string]string{"VIGIL_DATABASE_URL": b.DatabaseURL(t), "VIGIL_REDIS_URL": b.RedisURL(t, redisDBHealth)})
		log := testenv.Logger()
		if err := app.Migrate(context.Background(), cfg, log, io.Discard); err != nil {
			t.Fatal(err)
		}
		roles := map[string]func(context.Context) error{
			"worker":    func(ctx context.Context) error { return app.Worker(ctx, cfg, log) },
			"scheduler": func(ctx context.Context) error { return app.Scheduler(ctx, cfg, log) },
		}
		for role, fn := range roles {
			if err := app.RoleHealthcheck(context.Background(), cfg, role); err == nil {
				t.Fatalf("%s healthcheck passed with no %s running", role, role)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- fn(ctx) }()
			deadline := time.Now().Add(20 * time.Second)
			for app.RoleHealthcheck(context.Background(), cfg, role) != nil {
				if time.Now().After(deadline) {
					t.Fatalf("%s healthcheck still failing 20s after start: %v", role, app.RoleHealthcheck(context.Background(), cfg, role))
				}
				time.Sleep(50 * time.Millisecond)
			}
			cancel()
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				t.Fatalf("%s: %v", role, err)
			}
			if err := app.RoleHealthcheck(context.Background(), cfg, role); err == nil {
				t.Fatalf("%s healthcheck passed after the %s stopped", role, role)
			}
		}
	})
}

// A port in use stops the start with an error naming VIGIL_HTTP_ADDR, and nothing claims to
// listen or reports a sweep cancelled by that failure (issue 19).
func TestServePortInUse(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := testConfig(t, nil)
	cfg.HTTPAddr = l.Addr().String()
	logs := &syncBuffer{}
	err = app.Serve(context.Background(), cfg, jsonLogger(logs))
	if err == nil || !strings.Contains(err.Error(), "VIGIL_HTTP_ADDR") {
		t.Fatalf("serve on a taken port: %v, want an error naming VIGIL_HTTP_ADDR", err)
	}
	for _, bad := range []string{"listening", "sweep"} {
		if strings.Contains(logs.String(), bad) {
			t.Fatalf("log mentions %q although the port was taken:\n%s", bad, logs)
		}
	}
}
