// Command vigil-benchimport times the whole user path of ingestion, rollups included: the real
// `api import` binary, and `POST /api/upload` with a worker in a separate process, on
// PostgreSQL and SQLite (`make bench-import`). See pkg/benchimport.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/vigilhq/vigil/pkg/benchimport"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := benchimport.Main(ctx, os.Args[1:], os.Stdout); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "vigil-benchimport:", err)
		}
		os.Exit(1)
	}
}
