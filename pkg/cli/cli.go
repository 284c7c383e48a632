// Package cli checks a binary's command line before anything starts, and turns SIGINT and
// SIGTERM into a logged, graceful stop. A mistyped flag or subcommand must never start a
// server: `worker --help` used to start a full worker.
package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// ExitUsage is the exit code of a command line that was refused (as Go's flag package uses).
const ExitUsage = 2

// Command is one subcommand a binary accepts.
type Command struct {
	// Name is the subcommand, one or two words ("admin create"); "" is the binary alone.
	Name string
	// MinArgs and MaxArgs bound the arguments after the name (MaxArgs < 0: any number).
	MinArgs, MaxArgs int
	// Raw passes the arguments through unchecked: the command parses its own flags.
	Raw bool
}

// Parse finds the command in args (os.Args[1:]). Help (-h, -help, --help or help) prints the
// usage to stdout and gives exit code 0; an unknown subcommand, a flag where none is taken or
// a wrong number of arguments prints why and the usage to stderr and gives ExitUsage. When
// the command line is good, exit is -1 and name and rest are the command and its arguments.
func Parse(args []string, usage string, cmds []Command, stdout, stderr io.Writer) (name string, rest []string, exit int) {
	c, rest, ok := match(args, cmds)
	if !c.Raw || !ok {
		for _, a := range args {
			if isHelp(a) {
				fmt.Fprintln(stdout, usage)
				return "", nil, 0
			}
		}
	}
	refuse := func(format string, a ...any) (string, []string, int) {
		fmt.Fprintf(stderr, "vigil: "+format+"\n\n%s\n", append(a, usage)...)
		return "", nil, ExitUsage
	}
	if !ok {
		if len(args) == 0 {
			return refuse("a command is needed")
		}
		if strings.HasPrefix(args[0], "-") {
			return refuse("unknown flag %q", args[0])
		}
		return refuse("unknown command %q", strings.Join(args, " "))
	}
	if c.Raw {
		if len(rest) < c.MinArgs {
			return refuse("%s: missing arguments", c.Name)
		}
		return c.Name, rest, -1
	}
	for _, a := range rest {
		if strings.HasPrefix(a, "-") {
			return refuse("unknown flag %q", a)
		}
	}
	if len(rest) < c.MinArgs || (c.MaxArgs >= 0 && len(rest) > c.MaxArgs) {
		want := fmt.Sprintf("%d", c.MinArgs)
		switch {
		case c.MaxArgs < 0:
			want = fmt.Sprintf("at least %d", c.MinArgs)
		case c.MaxArgs != c.MinArgs:
			want = fmt.Sprintf("%d to %d", c.MinArgs, c.MaxArgs)
		}
		label := c.Name
		if label == "" {
			label = "this command"
		}
		noun := "arguments"
		if want == "1" {
			noun = "argument"
		}
		return refuse("%s takes %s %s, got %d", label, want, noun, len(rest))
	}
	return c.Name, rest, -1
}

// match finds the longest command name that args start with; ok is false when none does.
func match(args []string, cmds []Command) (Command, []string, bool) {
	best, found := Command{}, false
	for _, c := range cmds {
		words := strings.Fields(c.Name)
		if len(words) > len(args) || (found && len(words) <= len(strings.Fields(best.Name))) {
			continue
		}
		same := true
		for i, w := range words {
			same = same && args[i] == w
		}
		if same {
			best, found = c, true
		}
	}
	if !found {
		return Command{}, nil, false
	}
	n := len(strings.Fields(best.Name))
	if n == 0 && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		// The binary alone takes no positional word: "api serv" is a typo, not an argument.
		return Command{}, nil, false
	}
	return best, args[n:], true
}

func isHelp(a string) bool {
	switch a {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// SignalContext is cancelled by the first SIGINT or SIGTERM, which it logs: an operator
// reading the log of a stopped container sees why it stopped. A second signal kills the
// process at once (the default action, restored after the first).
func SignalContext(log *slog.Logger) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case s := <-ch:
			signal.Stop(ch)
			log.Info("signal received: stopping gracefully (a second one stops at once)", "signal", s.String())
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		cancel()
	}
}
