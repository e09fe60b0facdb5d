//go:build !race

package integration

// raceBuild: the tests run without the race detector.
const raceBuild = false
