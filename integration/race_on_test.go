//go:build race

package integration

// raceBuild: the tests run under the race detector, so the signet binary
// they drive is built with it too.
const raceBuild = true
