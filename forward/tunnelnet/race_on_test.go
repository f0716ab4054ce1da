//go:build race

package tunnelnet

// raceOn: the race detector is on (sync.Pool then drops a share of what
// is put back, so pooled scratch is allocated again).
const raceOn = true
