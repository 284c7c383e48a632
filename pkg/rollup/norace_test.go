//go:build !race

package rollup_test

const raceEnabled = false
