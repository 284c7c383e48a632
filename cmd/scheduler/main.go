// Command scheduler runs Vigil's scheduler role against the PostgreSQL and Redis named by
// VIGIL_DATABASE_URL and VIGIL_REDIS_URL.
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

func main() {
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vigil:", err)
		os.Exit(2)
	}
	log := logging.New(os.Stderr, cfg.LogFormat, cfg.LogLevel)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app.Scheduler(ctx, cfg, log); err != nil {
		log.Error("vigil scheduler stopped", "err", err)
		os.Exit(1)
	}
}
