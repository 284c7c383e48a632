package rollup

// SetMaxHeld makes r write its rows every n rows, to test batches written in parts.
func SetMaxHeld(r *Rollup, n int) { r.maxHeld = n }
