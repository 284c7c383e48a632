package importer

import "github.com/schollz/progressbar/v3"

// NewBar is the import's progress bar, for tests.
func NewBar(im *Importer, n int) *progressbar.ProgressBar { return im.bar(n) }
