package app

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/vigilhq/vigil/pkg/config"
)

// Roles without an HTTP port prove they are alive with a heartbeat in Redis, one key per role
// and host (a container's hostname is its own, so `--scale worker=4` gives four keys). The
// `healthcheck` subcommand, run by the container engine inside the same container, checks the
// key: it fails when the role stopped, hangs, or cannot reach Redis.
const (
	heartbeatEvery = 10 * time.Second
	heartbeatTTL   = 3 * heartbeatEvery
)

func heartbeatKey(role, host string) string { return "vigil:alive:" + role + ":" + host }

// heartbeat refreshes the role's key until ctx ends, then deletes it (a stopped role is not
// healthy, even for the rest of the TTL).
func (a *App) heartbeat(ctx context.Context, role string) {
	host, _ := os.Hostname()
	key := heartbeatKey(role, host)
	beat := func() {
		if err := a.Redis.Set(ctx, key, time.Now().UTC().Format(time.RFC3339), heartbeatTTL).Err(); err != nil && ctx.Err() == nil {
			a.Log.Warn("heartbeat not written", "role", role, "err", err)
		}
	}
	beat()
	t := time.NewTicker(heartbeatEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			a.Redis.Del(dctx, key)
			cancel()
			return
		case <-t.C:
			beat()
		}
	}
}

// RoleHealthcheck is `worker healthcheck` and `scheduler healthcheck`: nil when a process of
// that role on this host wrote its heartbeat within the last heartbeatTTL.
func RoleHealthcheck(ctx context.Context, cfg config.Config, role string) error {
	if cfg.RedisURL == "" {
		return fmt.Errorf("%w: VIGIL_REDIS_URL is not set: the %s's heartbeat is in that Redis", config.ErrInvalid, role)
	}
	opt, err := asynq.ParseRedisURI(cfg.RedisURL)
	if err != nil {
		return fmt.Errorf("%w: VIGIL_REDIS_URL: %v", config.ErrInvalid, err)
	}
	rdb := opt.MakeRedisClient().(redis.UniversalClient)
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	host, _ := os.Hostname()
	n, err := rdb.Exists(ctx, heartbeatKey(role, host)).Result()
	if err != nil {
		return fmt.Errorf("healthcheck: redis: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("healthcheck: no %s heartbeat from %s in the last %v", role, host, heartbeatTTL)
	}
	return nil
}
