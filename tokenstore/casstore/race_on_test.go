//go:build race

package casstore_test

// raceDetector is true when the tests run with -race, which makes the
// scale tests about ten times slower: they skip then, and
// scripts/test.sh runs them again without -race.
const raceDetector = true
