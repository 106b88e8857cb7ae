//go:build !race

package casstore_test

const raceDetector = false
