// Command api serves Vigil's REST API, dashboard and queue monitor. With nothing configured it
// runs the whole platform in one process (embedded default). Subcommands: migrate, import,
// admin, healthcheck.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/vigilhq/vigil/pkg/app"
	"github.com/vigilhq/vigil/pkg/config"
	"github.com/vigilhq/vigil/pkg/logging"
)

const usage = `usage:
  api                  serve the API (and, with nothing configured, the whole platform)
  api migrate          apply database migrations
  api import PATH...   import report files and folders (recursive); api import --help for flags
  api healthcheck      exit 0 when the local api answers /health
  api admin create EMAIL          create an admin (password: VIGIL_ADMIN_PASSWORD or generated)
  api admin reset-password EMAIL  set a user's password the same way; revokes their sessions`

func main() {
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vigil:", err)
		os.Exit(2)
	}
	log := logging.New(os.Stderr, cfg.LogFormat, cfg.LogLevel)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	args := os.Args[1:]
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch {
	case cmd == "serve":
		err = app.Serve(ctx, cfg, log)
	case cmd == "healthcheck":
		err = app.Healthcheck(ctx, cfg)
	case cmd == "migrate":
		err = app.Migrate(ctx, cfg, log, os.Stdout)
	case cmd == "admin" && len(args) == 2:
		err = app.Admin(ctx, cfg, log, args[0], args[1], os.Stdout)
	case cmd == "import":
		os.Exit(app.ImportCommand(ctx, cfg, log, args, os.Stderr, os.Stdout, os.Stderr))
	default:
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		log.Error("vigil stopped", "err", err)
		os.Exit(1)
	}
}
