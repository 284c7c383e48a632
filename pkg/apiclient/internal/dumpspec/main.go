// Command dumpspec writes the served OpenAPI document (the base merged with every feature
// fragment) to the file named by its argument, for the client generator (go generate in
// pkg/apiclient).
package main

import (
	"fmt"
	"os"

	"github.com/vigilhq/vigil/pkg/httpapi"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: dumpspec FILE")
		os.Exit(2)
	}
	b, err := httpapi.Spec()
	if err == nil {
		err = os.WriteFile(os.Args[1], append(b, '\n'), 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dumpspec:", err)
		os.Exit(1)
	}
}
