package gpg

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
)

// maxKeyringSize bounds a keyring file read from disk. Keyrings are trusted
// operator input, but a wrong path (a device, a huge file) should still fail
// fast instead of exhausting memory.
const maxKeyringSize = 64 << 20

const armorBegin = "-----BEGIN PGP "

// readKeyringFile reads one keyring file through a size limit.
func readKeyringFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening keyring: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyringSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading keyring %s: %w", path, err)
	}
	if len(b) > maxKeyringSize {
		return nil, fmt.Errorf("keyring %s exceeds %d bytes", path, maxKeyringSize)
	}
	return b, nil
}

// readKeyring parses a keyring in any of the forms users have: a binary
// export (gpg --export, the legacy pubring.gpg, secring.gpg) or one or more
// ASCII-armored blocks (gpg --armor --export[-secret-keys]), public or secret.
func readKeyring(blob []byte) (openpgp.EntityList, error) {
	// GnuPG >= 2.1 stores keys in a keybox (pubring.kbx), which is not an
	// OpenPGP format; say so instead of failing with a parse error.
	if len(blob) >= 12 && string(blob[8:12]) == "KBXf" {
		return nil, fmt.Errorf("%w: this is a GnuPG keybox (pubring.kbx); export the keys with gpg --export", ErrNoKeys)
	}
	if !bytes.HasPrefix(bytes.TrimLeft(blob, " \t\r\n"), []byte(armorBegin)) {
		el, err := openpgp.ReadKeyRing(bytes.NewReader(blob))
		if err != nil {
			return nil, fmt.Errorf("%w: parsing binary keyring: %w", ErrNoKeys, err)
		}
		return el, nil
	}
	var all openpgp.EntityList
	for i, block := range splitArmor(blob) {
		b, err := armor.Decode(bytes.NewReader(block))
		if err != nil {
			return nil, fmt.Errorf("%w: decoding armored block %d: %w", ErrNoKeys, i+1, err)
		}
		if b.Type != openpgp.PublicKeyType && b.Type != openpgp.PrivateKeyType {
			return nil, fmt.Errorf("%w: armored block %d is %q, not a key block", ErrNoKeys, i+1, b.Type)
		}
		el, err := openpgp.ReadKeyRing(b.Body)
		if err != nil {
			return nil, fmt.Errorf("%w: parsing armored block %d: %w", ErrNoKeys, i+1, err)
		}
		all = append(all, el...)
	}
	return all, nil
}

// splitArmor splits concatenated armored blocks (e.g. a public and a secret
// export in one file); armor.Decode reads only the first block and buffers
// past its end, so each block is handed to it separately.
func splitArmor(blob []byte) [][]byte {
	var starts []int
	for i := 0; i < len(blob); {
		j := bytes.Index(blob[i:], []byte(armorBegin))
		if j < 0 {
			break
		}
		pos := i + j
		if pos == 0 || blob[pos-1] == '\n' {
			starts = append(starts, pos)
		}
		i = pos + len(armorBegin)
	}
	blocks := make([][]byte, 0, len(starts))
	for k, s := range starts {
		end := len(blob)
		if k+1 < len(starts) {
			end = starts[k+1]
		}
		blocks = append(blocks, blob[s:end])
	}
	return blocks
}

// mergeEntities returns one entity per primary key. Passing the public and
// the secret export of the same key is common (verify and sign with one
// Mechanism), and two entities with one key ID would make go-crypto pick
// whichever comes first. The first copy is kept; from later copies we take
// only what cannot weaken verification: secret key material, revocations (so
// a revocation present in either copy is honoured) and subkeys the first copy
// lacks (their binding signatures were verified when they were parsed).
func mergeEntities(in openpgp.EntityList) openpgp.EntityList {
	byFpr := make(map[string]*openpgp.Entity, len(in))
	out := make(openpgp.EntityList, 0, len(in))
	for _, e := range in {
		if e == nil || e.PrimaryKey == nil {
			continue
		}
		fpr := string(e.PrimaryKey.Fingerprint)
		dst, ok := byFpr[fpr]
		if !ok {
			byFpr[fpr] = e
			out = append(out, e)
			continue
		}
		mergeEntity(dst, e)
	}
	return out
}

func mergeEntity(dst, src *openpgp.Entity) {
	if dst.PrivateKey == nil && src.PrivateKey != nil {
		dst.PrivateKey = src.PrivateKey
	}
	dst.Revocations = append(dst.Revocations, src.Revocations...)
	for name, id := range src.Identities {
		if d, ok := dst.Identities[name]; ok {
			d.Revocations = append(d.Revocations, id.Revocations...)
			continue
		}
		if dst.Identities == nil {
			dst.Identities = make(map[string]*openpgp.Identity)
		}
		dst.Identities[name] = id
	}
	for _, s := range src.Subkeys {
		found := false
		for i := range dst.Subkeys {
			d := &dst.Subkeys[i]
			if !bytes.Equal(d.PublicKey.Fingerprint, s.PublicKey.Fingerprint) {
				continue
			}
			found = true
			if d.PrivateKey == nil && s.PrivateKey != nil {
				d.PrivateKey = s.PrivateKey
			}
			d.Revocations = append(d.Revocations, s.Revocations...)
		}
		if !found {
			dst.Subkeys = append(dst.Subkeys, s)
		}
	}
}
