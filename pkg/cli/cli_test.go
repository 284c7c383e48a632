package cli_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/pkg/cli"
)

var cmds = []cli.Command{
	{Name: ""},
	{Name: "migrate"},
	{Name: "healthcheck"},
	{Name: "import", MinArgs: 1, MaxArgs: -1, Raw: true},
	{Name: "admin create", MinArgs: 1, MaxArgs: 1},
}

func TestParse(t *testing.T) {
	t.Parallel()
	cases := []struct {
		args     string
		name     string
		rest     []string
		exit     int
		stdout   bool   // usage printed to stdout (help)
		inStderr string // refused: stderr says this, then the usage
	}{
		{args: "", name: "", exit: -1},
		{args: "migrate", name: "migrate", exit: -1},
		{args: "healthcheck", name: "healthcheck", exit: -1},
		{args: "admin create a@b.c", name: "admin create", rest: []string{"a@b.c"}, exit: -1},
		{args: "import a b", name: "import", rest: []string{"a", "b"}, exit: -1},
		// The command parses its own flags, help included.
		{args: "import --help", name: "import", rest: []string{"--help"}, exit: -1},
		{args: "--help", exit: 0, stdout: true},
		{args: "-h", exit: 0, stdout: true},
		{args: "help", exit: 0, stdout: true},
		{args: "healthcheck --help", exit: 0, stdout: true},
		{args: "admin create --help", exit: 0, stdout: true},
		{args: "--verbose", exit: 2, inStderr: `unknown flag "--verbose"`},
		{args: "healthcheck -x", exit: 2, inStderr: `unknown flag "-x"`},
		{args: "serve", exit: 2, inStderr: `unknown command "serve"`},
		{args: "admin", exit: 2, inStderr: `unknown command "admin"`},
		{args: "admin delete x", exit: 2, inStderr: `unknown command "admin delete x"`},
		{args: "migrate now", exit: 2, inStderr: "migrate takes 0 arguments, got 1"},
		{args: "admin create", exit: 2, inStderr: "admin create takes 1 argument, got 0"},
		{args: "admin create a b", exit: 2, inStderr: "admin create takes 1 argument, got 2"},
		{args: "import", exit: 2, inStderr: "import: missing arguments"},
	}
	for _, c := range cases {
		var out, errw bytes.Buffer
		name, rest, exit := cli.Parse(strings.Fields(c.args), "USAGE", cmds, &out, &errw)
		if exit != c.exit || name != c.name || !slices.Equal(rest, c.rest) {
			t.Errorf("%q: %q %q exit %d, want %q %q exit %d", c.args, name, rest, exit, c.name, c.rest, c.exit)
		}
		if c.stdout != (out.String() == "USAGE\n") {
			t.Errorf("%q: stdout %q", c.args, out.String())
		}
		if c.inStderr != "" && (!strings.Contains(errw.String(), c.inStderr) || !strings.HasSuffix(errw.String(), "USAGE\n")) {
			t.Errorf("%q: stderr %q, want %q and the usage", c.args, errw.String(), c.inStderr)
		}
		if c.inStderr == "" && errw.Len() > 0 {
			t.Errorf("%q: unexpected stderr %q", c.args, errw.String())
		}
	}
}
