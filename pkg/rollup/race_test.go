//go:build race

package rollup_test

// raceEnabled relaxes time limits: the race detector makes the pure-Go SQLite driver and the
// rollup maps many times slower.
const raceEnabled = true
