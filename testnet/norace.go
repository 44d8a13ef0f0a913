//go:build !race

package testnet

// raceEnabled reports whether the race detector is on: it multiplies the
// memory and time a node costs, so tests size their networks down.
const raceEnabled = false
