package unwrap

import (
	"fmt"
	"io"
)

// capped is the output of one decoding layer with the limits applied while it is read, since
// no declared size (gzip ISIZE, zip headers) can be trusted. It never hands out a byte past the
// per-part or total cap, and its first error sticks so that Walk can report it after fn returns.
type capped struct {
	r    io.Reader
	w    *walker
	path string
	what string // the layer, for error messages: "gzip", "zip entry", "base64", ...
	n    int64
	err  error
}

func (c *capped) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	lim := &c.w.lim
	room := min(lim.MaxDecompressedBytes-c.n, lim.MaxTotalBytes-c.w.total)
	if room < int64(len(p))-1 {
		p = p[:room+1] // one byte more than allowed, to see whether the layer goes on
	}
	k, err := c.r.Read(p)
	if int64(k) > room {
		k = int(room)
		c.add(k)
		c.err = c.overflow()
		return k, c.err
	}
	c.add(k)
	if c.n > lim.RatioFloorBytes && float64(c.n) > lim.MaxRatio*float64(c.w.inSize) {
		c.err = fmt.Errorf("%s: %w: decompression ratio exceeds %g:1 (%s out of a %s input)", label(c.path), ErrLimit,
			lim.MaxRatio, size(c.n), size(c.w.inSize))
		return k, c.err
	}
	if err != nil && err != io.EOF {
		c.err = corrupt(c.path, c.what, err)
		return k, c.err
	}
	return k, err
}

func (c *capped) add(k int) {
	c.n += int64(k)
	c.w.total += int64(k)
}

func (c *capped) overflow() error {
	lim := &c.w.lim
	if c.n >= lim.MaxDecompressedBytes {
		return fmt.Errorf("%s: %w: decompressed size exceeds %s", label(c.path), ErrLimit, size(lim.MaxDecompressedBytes))
	}
	return fmt.Errorf("%s: %w: all parts together exceed %s", label(c.path), ErrLimit, size(lim.MaxTotalBytes))
}

// size prints a byte count the way limits are usually configured.
func size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
