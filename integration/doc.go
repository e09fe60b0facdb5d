// Package integration runs end-to-end tests against the built signet
// binary and the real clients users drive it with: curl, skopeo and gpg.
// The tests build the binary once, start it on 127.0.0.1 with a fresh
// data directory, and stop it the way an operator would (SIGTERM), or the
// way a crash would (SIGKILL).
package integration
