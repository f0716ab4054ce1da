//go:build !race

package tunnelnet

const raceOn = false
