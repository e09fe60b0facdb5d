package gnupg

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/signet-registry/signet/gpg"
)

func newHome(t *testing.T) (Signer, string) {
	t.Helper()
	if _, err := exec.LookPath("gpg"); err != nil {
		t.Fatal("gpg is not installed; run `make deps`")
	}
	home, err := os.MkdirTemp("", "gpg")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(home, 0o700)
	t.Cleanup(func() {
		_ = exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
		os.RemoveAll(home)
	})
	out, err := exec.Command("gpg", "--homedir", home, "--batch", "--pinentry-mode", "loopback", "--passphrase", "",
		"--quick-gen-key", "GnuPG Signer <gnupg@example.com>", "ed25519", "sign", "never").CombinedOutput()
	if err != nil {
		t.Fatalf("gen key: %v\n%s", err, out)
	}
	out, err = exec.Command("gpg", "--homedir", home, "--batch", "--with-colons", "--list-secret-keys").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "fpr:") {
			return Signer{Home: home}, strings.Split(l, ":")[9]
		}
	}
	t.Fatalf("no fingerprint:\n%s", out)
	return Signer{}, ""
}

func TestSignVerifiesWithPureGoMechanism(t *testing.T) {
	s, fpr := newHome(t)
	for _, id := range []string{fpr, fpr[24:], "gnupg@example.com"} {
		sig, err := s.Sign([]byte("payload bytes"), id)
		if err != nil {
			t.Fatalf("sign with %s: %v", id, err)
		}
		pub, err := s.ExportPublic(id)
		if err != nil {
			t.Fatal(err)
		}
		m, err := gpg.NewMechanism(pub)
		if err != nil {
			t.Fatal(err)
		}
		res, err := m.VerifyDetailed(sig)
		if err != nil {
			t.Fatalf("pure-Go verify of gpg signature by %s: %v", id, err)
		}
		if string(res.Contents) != "payload bytes" || res.Fingerprint != fpr {
			t.Fatalf("verified %q by %s", res.Contents, res.Fingerprint)
		}
	}
}

func TestSignErrors(t *testing.T) {
	s, _ := newHome(t)
	if _, err := s.Sign([]byte("x"), "nobody@example.com"); err == nil {
		t.Fatal("signed with an unknown key")
	}
	if _, err := s.Sign([]byte("x"), "--armor"); err == nil {
		t.Fatal("accepted an option as key identity")
	}
	if _, err := s.ExportPublic("nobody@example.com"); err == nil {
		t.Fatal("exported an unknown key")
	}
	if _, err := (Signer{Binary: "/nonexistent/gpg"}).Sign([]byte("x"), "a"); !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("missing binary: %v", err)
	}
}
