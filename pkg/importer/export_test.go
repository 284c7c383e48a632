package importer

import "github.com/schollz/progressbar/v3"

// NewBar is the import's progress bar, for tests.
func NewBar(im *Importer, n int) *progressbar.ProgressBar { return im.bar(n) }

// ReadCapped is how the import reads a file, for tests.
func ReadCapped(path string, max int64) ([]byte, error) { return readCapped(path, max) }

// ReadAllInto is readCapped's read loop, for tests.
var ReadAllInto = readAllInto
