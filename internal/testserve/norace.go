//go:build !race

package testserve

const raceEnabled = false
