// Command worker runs Vigil's worker role against the PostgreSQL and Redis named by
// VIGIL_DATABASE_URL and VIGIL_REDIS_URL. `worker healthcheck` checks that one runs on this host.
package main

import (
	"fmt"
	"os"

	"github.com/vigilhq/vigil/pkg/app"
	"github.com/vigilhq/vigil/pkg/cli"
	"github.com/vigilhq/vigil/pkg/config"
	"github.com/vigilhq/vigil/pkg/logging"
)

const usage = `usage:
  worker               run the worker role (needs VIGIL_DATABASE_URL and VIGIL_REDIS_URL)
  worker healthcheck   exit 0 when a worker on this host wrote its heartbeat in the last 30s
Settings are VIGIL_* environment variables (docs/configuration.md). Exit codes: 0 done,
1 failed, 2 bad command line or settings.`

func main() {
	cmd, _, code := cli.Parse(os.Args[1:], usage, []cli.Command{{Name: ""}, {Name: "healthcheck"}}, os.Stdout, os.Stderr)
	if code >= 0 {
		os.Exit(code)
	}
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vigil:", err)
		os.Exit(cli.ExitUsage)
	}
	log := logging.New(os.Stderr, cfg.LogFormat, cfg.LogLevel)
	ctx, stop := cli.SignalContext(log)
	defer stop()
	msg := "vigil worker stopped"
	if cmd == "healthcheck" {
		msg, err = "unhealthy", app.RoleHealthcheck(ctx, cfg, "worker")
	} else {
		err = app.Worker(ctx, cfg, log)
	}
	if err != nil {
		log.Error(msg, "err", err)
		os.Exit(1)
	}
}
