// Command vigil-synth fills a database with realistic synthetic DMARC reports and brings their
// rollups up to date, for benchmarks and load tests (`make bench-data`). See pkg/synth.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/vigilhq/vigil/pkg/synth"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := synth.Main(ctx, os.Args[1:], os.Stdout); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "vigil-synth:", err)
		}
		os.Exit(1)
	}
}
