// Package migrations embeds the versioned SQL migrations, one folder per dialect, so every
// binary carries the schema it needs and goose can run them without files on disk.
package migrations

import (
	"embed"
	"io/fs"
)

//go:embed postgres/*.sql sqlite/*.sql
var files embed.FS

// For returns the migrations of one dialect: "postgres" or "sqlite".
func For(dialect string) (fs.FS, error) {
	return fs.Sub(files, dialect)
}
