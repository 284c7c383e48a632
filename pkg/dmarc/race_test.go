//go:build race

package dmarc

// raceEnabled shrinks the streaming test: the race detector makes parsing ~10x slower.
const raceEnabled = true
