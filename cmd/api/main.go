// Command api serves Vigil's REST API, dashboard and queue monitor. With nothing configured it
// runs the whole platform in one process (embedded default). Subcommands: migrate, import,
// admin, healthcheck.
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
  api                  serve the API (and, with nothing configured, the whole platform)
  api migrate          apply database migrations
  api import PATH...   import report files and folders (recursive); api import --help for flags
  api healthcheck      exit 0 when the local api answers /health
  api admin create EMAIL          create an admin (password: VIGIL_ADMIN_PASSWORD or generated)
  api admin reset-password EMAIL  set a user's password the same way; revokes their sessions
Settings are VIGIL_* environment variables (docs/configuration.md). Exit codes: 0 done,
1 failed, 2 bad command line or settings.`

var commands = []cli.Command{
	{Name: ""}, {Name: "migrate"}, {Name: "healthcheck"},
	{Name: "import", MaxArgs: -1, Raw: true},
	{Name: "admin create", MinArgs: 1, MaxArgs: 1}, {Name: "admin reset-password", MinArgs: 1, MaxArgs: 1},
}

func main() {
	cmd, args, code := cli.Parse(os.Args[1:], usage, commands, os.Stdout, os.Stderr)
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
	switch cmd {
	case "":
		err = app.Serve(ctx, cfg, log)
	case "healthcheck":
		err = app.Healthcheck(ctx, cfg)
	case "migrate":
		err = app.Migrate(ctx, cfg, log, os.Stdout)
	case "admin create", "admin reset-password":
		err = app.Admin(ctx, cfg, log, cmd[len("admin "):], args[0], os.Stdout)
	case "import":
		os.Exit(app.ImportCommand(ctx, cfg, log, args, os.Stderr, os.Stdout, os.Stderr))
	}
	if err != nil {
		log.Error("vigil stopped", "err", err)
		os.Exit(1)
	}
}
