// Package gnupg signs with a key held by the user's GnuPG installation, by
// running the gpg command-line tool the way gpgme does. GnuPG 2.1 and later
// keep secret keys in gpg-agent's private-keys-v1.d, which no pure-Go
// library reads, so `signet sign --sign-by KEY` without --key-file needs
// gpg. Verification never goes through here: it always uses the pure-Go
// mechanism in package gpg.
package gnupg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// maxOutput bounds what we accept from gpg.
const maxOutput = 4 << 20

// Signer runs gpg. The zero value uses "gpg" from PATH and the caller's
// GNUPGHOME.
type Signer struct {
	// Binary is the gpg executable; empty means "gpg".
	Binary string
	// Home overrides GNUPGHOME when set.
	Home string
	// Timeout bounds one gpg run; zero means one minute (pinentry may
	// prompt for a passphrase).
	Timeout time.Duration
}

// ErrNotInstalled: no gpg binary was found.
var ErrNotInstalled = errors.New("gpg is not installed; install gnupg or pass --key-file")

func (s Signer) run(stdin []byte, args ...string) ([]byte, error) {
	bin := s.Binary
	if bin == "" {
		bin = "gpg"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, ErrNotInstalled
	}
	timeout := s.Timeout
	if timeout == 0 {
		timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	base := []string{"--batch", "--no-tty", "--yes"}
	if s.Home != "" {
		base = append(base, "--homedir", s.Home)
	}
	cmd := exec.CommandContext(ctx, path, append(base, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &limitedBuffer{buf: &out, max: maxOutput}, &limitedBuffer{buf: &errb, max: 64 << 10}
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("gpg %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}

// Sign makes an OpenPGP signed message (not detached, not cleartext) of
// input with keyIdentity: a fingerprint, key id or email.
func (s Signer) Sign(input []byte, keyIdentity string) ([]byte, error) {
	if keyIdentity == "" || strings.HasPrefix(keyIdentity, "-") {
		return nil, fmt.Errorf("invalid key identity %q", keyIdentity)
	}
	sig, err := s.run(input, "--local-user", keyIdentity, "--sign", "--output", "-")
	if err != nil {
		return nil, fmt.Errorf("sign with %s: %w", keyIdentity, err)
	}
	if len(sig) == 0 {
		return nil, fmt.Errorf("sign with %s: gpg produced no output", keyIdentity)
	}
	return sig, nil
}

// ExportPublic returns the binary public key of keyIdentity, so the new
// signature can be checked with the pure-Go verifier before it is stored.
func (s Signer) ExportPublic(keyIdentity string) ([]byte, error) {
	if keyIdentity == "" || strings.HasPrefix(keyIdentity, "-") {
		return nil, fmt.Errorf("invalid key identity %q", keyIdentity)
	}
	key, err := s.run(nil, "--export", keyIdentity)
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", keyIdentity, err)
	}
	if len(key) == 0 {
		return nil, fmt.Errorf("export %s: no such key in the GnuPG keyring", keyIdentity)
	}
	return key, nil
}

type limitedBuffer struct {
	buf *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if l.buf.Len()+len(p) > l.max {
		return 0, fmt.Errorf("gpg output larger than %d bytes", l.max)
	}
	return l.buf.Write(p)
}
