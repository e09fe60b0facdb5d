package gpg

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"

	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

const (
	// MaxMessageSize caps an OpenPGP message we are willing to parse. It is
	// the per-signature cap of containers/image clients (SPEC sections 1 and
	// 2), so nothing a client would accept is refused, and nothing larger is
	// ever read (CVE-2020-1702, CVE-2024-29902 class).
	MaxMessageSize = 4 << 20
	// MaxContentsSize caps the signed literal data. A simple-signing payload
	// is a few hundred bytes; the limit only needs to be generous.
	MaxContentsSize = 4 << 20
	// maxDecompressedSize bounds what a compressed packet may expand to: the
	// literal data plus room for the packet headers around it. Without it a
	// 4 MiB deflate/bzip2 bomb expands to gigabytes.
	maxDecompressedSize = MaxContentsSize + 64<<10
)

// signedMessage is the result of the structural pass over an untrusted
// message. Nothing in it has been verified.
type signedMessage struct {
	onePass          *packet.OnePassSignature
	sig              *packet.Signature
	untrustedContent []byte
	// packets is the uncompressed packet sequence (one-pass signature,
	// literal data, signature) that the structural pass read: for a
	// compressed message, the decompressed body. Verification reads it
	// instead of the original, so the message is decompressed once.
	packets []byte
}

// errLimitExceeded is returned by limitReader; it never escapes this file
// unwrapped (it is translated to ErrTooLarge).
var errLimitExceeded = errors.New("read limit exceeded")

// limitReader is io.LimitReader that reports overflow instead of a silent
// EOF, so that truncation can never be mistaken for the end of the data.
type limitReader struct {
	r io.Reader
	n int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		// Probe for one more byte: input of exactly the limit is fine.
		var one [1]byte
		n, err := l.r.Read(one[:])
		if n > 0 {
			return 0, errLimitExceeded
		}
		return 0, err
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// hasArmorPrefix reports whether b, after leading whitespace, starts with prefix.
func hasArmorPrefix(b []byte, prefix string) bool {
	return bytes.HasPrefix(bytes.TrimLeft(b, " \t\r\n"), []byte(prefix))
}

// parseSignedMessage checks, before any key is consulted, that untrusted is
// exactly one binary OpenPGP one-pass signed message (SPEC section 3 step 1):
//
//	[Compressed Data]( One-Pass Signature, Literal Data, Signature )
//
// and returns its parts. The contents are read through a limit.
func parseSignedMessage(untrusted []byte) (*signedMessage, error) {
	if len(untrusted) > MaxMessageSize {
		return nil, fmt.Errorf("%w: %d bytes exceeds the %d byte limit", ErrTooLarge, len(untrusted), MaxMessageSize)
	}
	if len(bytes.TrimSpace(untrusted)) == 0 {
		return nil, fmt.Errorf("%w: empty input", ErrNotOpenPGP)
	}
	if hasArmorPrefix(untrusted, "-----BEGIN PGP SIGNED MESSAGE-----") {
		return nil, ErrCleartextSigned
	}
	if hasArmorPrefix(untrusted, "-----BEGIN PGP ") {
		return nil, ErrArmored
	}

	var (
		s             scanState
		top           = bytes.NewReader(untrusted)
		sawCompressed bool
	)
	first, err := packet.Read(top)
	if err != nil {
		return nil, classifyFirstPacketError(first, err)
	}
	packets := untrusted
	if c, ok := first.(*packet.Compressed); ok {
		sawCompressed = true
		var body bytes.Buffer
		inner := &limitReader{r: io.TeeReader(c.Body, &body), n: maxDecompressedSize}
		if err := s.scan(inner, nil); err != nil {
			return nil, err
		}
		packets = body.Bytes()
		// Nothing may follow the compressed packet: trailing packets would be
		// invisible to the signature yet might be read by another parser.
		if p, err := packet.Read(top); err != io.EOF {
			return nil, fmt.Errorf("%w: data after compressed packet (%T)", ErrMalformedMessage, p)
		}
	} else if err := s.scan(top, first); err != nil {
		return nil, err
	}
	msg, err := s.finish(sawCompressed)
	if err != nil {
		return nil, err
	}
	msg.packets = packets
	return msg, nil
}

// classifyFirstPacketError maps a failure to read the very first packet.
func classifyFirstPacketError(p packet.Packet, err error) error {
	switch p.(type) {
	case *packet.EncryptedKey, *packet.SymmetricKeyEncrypted, *packet.SymmetricallyEncrypted, *packet.AEADEncrypted:
		return fmt.Errorf("%w: %w", ErrEncrypted, err)
	case nil:
	default:
		return fmt.Errorf("%w: first packet: %w", ErrMalformedMessage, err)
	}
	var unknown pgperrors.UnknownPacketTypeError
	var critical pgperrors.CriticalUnknownPacketTypeError
	if errors.As(err, &unknown) || errors.As(err, &critical) {
		// Well-formed framing, but a packet that never starts a signed
		// message (e.g. GnuPG's private control packet, tag 63).
		return fmt.Errorf("%w: first packet: %w", ErrMalformedMessage, err)
	}
	return fmt.Errorf("%w: %w", ErrNotOpenPGP, err)
}

// scanState accumulates the packets of one packet sequence.
type scanState struct {
	onePass   []*packet.OnePassSignature
	sigs      []*packet.Signature
	sigsFirst int // signature packets seen before the literal data
	literal   bool
	contents  []byte
}

// scan reads packets from r until EOF. first, if not nil, was already read from r.
func (s *scanState) scan(r io.Reader, first packet.Packet) error {
	for i := 0; ; i++ {
		var p packet.Packet
		var err error
		if i == 0 && first != nil {
			p = first
		} else {
			p, err = packet.Read(r)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return s.packetError(p, err)
		}
		if err := s.add(p); err != nil {
			return err
		}
	}
}

// packetError maps a failure to parse a packet inside the message.
func (s *scanState) packetError(p packet.Packet, err error) error {
	if errors.Is(err, errLimitExceeded) {
		return fmt.Errorf("%w: decompressed data exceeds %d bytes", ErrTooLarge, maxDecompressedSize)
	}
	switch p.(type) {
	case *packet.EncryptedKey, *packet.SymmetricKeyEncrypted, *packet.SymmetricallyEncrypted, *packet.AEADEncrypted:
		return fmt.Errorf("%w: %w", ErrEncrypted, err)
	case *packet.Signature, *packet.OnePassSignature:
		// E.g. a v3 signature, which go-crypto (and so containers/image's
		// openpgp backend) does not support, or a truncated one.
		return fmt.Errorf("%w: %w", ErrInvalidSignature, err)
	}
	return fmt.Errorf("%w: %w", ErrMalformedMessage, err)
}

func (s *scanState) add(p packet.Packet) error {
	switch p := p.(type) {
	case *packet.OnePassSignature:
		if s.literal {
			return fmt.Errorf("%w: one-pass signature after literal data", ErrMalformedMessage)
		}
		s.onePass = append(s.onePass, p)
	case *packet.LiteralData:
		if s.literal {
			return fmt.Errorf("%w: more than one literal data packet", ErrMalformedMessage)
		}
		s.literal = true
		s.sigsFirst = len(s.sigs)
		// Bounded read: the literal body must be consumed before the next
		// packet can be read, and must never be read without a limit.
		contents, err := io.ReadAll(&limitReader{r: p.Body, n: MaxContentsSize})
		if errors.Is(err, errLimitExceeded) {
			return fmt.Errorf("%w: literal data exceeds %d bytes", ErrTooLarge, MaxContentsSize)
		}
		if err != nil {
			return fmt.Errorf("%w: reading literal data: %w", ErrMalformedMessage, err)
		}
		s.contents = contents
	case *packet.Signature:
		s.sigs = append(s.sigs, p)
	case *packet.Compressed:
		// gpg never nests compression; go-crypto would follow up to 32
		// levels (CVE-2013-4402 quines). One level is all we accept.
		return fmt.Errorf("%w: nested or misplaced compressed packet", ErrMalformedMessage)
	case *packet.EncryptedKey, *packet.SymmetricKeyEncrypted, *packet.SymmetricallyEncrypted, *packet.AEADEncrypted:
		return ErrEncrypted
	default:
		// Keys, user IDs, markers, padding: nothing else belongs in a signed
		// message, and go-crypto's reader would silently skip some of them.
		return fmt.Errorf("%w: unexpected %T packet", ErrMalformedMessage, p)
	}
	return nil
}

// finish checks the collected sequence. The checks run in the order of SPEC
// section 3 step 1, so that e.g. a two-signature message is reported as such
// even if it is also otherwise odd.
func (s *scanState) finish(sawCompressed bool) (*signedMessage, error) {
	if !s.literal {
		if len(s.sigs) > 0 || len(s.onePass) > 0 {
			return nil, fmt.Errorf("%w: no literal data (detached signature?)", ErrMalformedMessage)
		}
		if sawCompressed {
			return nil, fmt.Errorf("%w: empty compressed packet", ErrMalformedMessage)
		}
		return nil, fmt.Errorf("%w: no packets", ErrNotOpenPGP)
	}
	if len(s.sigs) == 0 && len(s.onePass) == 0 {
		return nil, ErrUnsigned
	}
	if len(s.sigs) > 1 || len(s.onePass) > 1 {
		return nil, fmt.Errorf("%w: %d signature and %d one-pass signature packets", ErrMultipleSignatures, len(s.sigs), len(s.onePass))
	}
	if s.sigsFirst > 0 {
		// Old-style (PGP 2.x) signature-then-literal messages: go-crypto's
		// ReadMessage does not verify them (it reports them as unsigned), and
		// no current signer produces them.
		return nil, fmt.Errorf("%w: signature before literal data (old-style message) is not supported", ErrMalformedMessage)
	}
	if len(s.onePass) == 0 {
		return nil, fmt.Errorf("%w: signature without one-pass signature packet", ErrMalformedMessage)
	}
	if len(s.sigs) == 0 {
		return nil, fmt.Errorf("%w: one-pass signature not followed by a signature packet", ErrMalformedMessage)
	}
	ops, sig := s.onePass[0], s.sigs[0]
	if !ops.IsLast {
		return nil, fmt.Errorf("%w: one-pass signature not marked last", ErrMalformedMessage)
	}
	if sig.IssuerKeyId == nil || *sig.IssuerKeyId != ops.KeyId {
		return nil, fmt.Errorf("%w: signature issuer does not match one-pass signature key id %016X", ErrMalformedMessage, ops.KeyId)
	}
	if ops.Hash != sig.Hash || ops.SigType != sig.SigType || ops.PubKeyAlgo != sig.PubKeyAlgo {
		return nil, fmt.Errorf("%w: one-pass signature parameters do not match the signature", ErrMalformedMessage)
	}
	if sig.SigType != packet.SigTypeBinary && sig.SigType != packet.SigTypeText {
		return nil, fmt.Errorf("%w: signature type %#x is not a document signature", ErrMalformedMessage, uint8(sig.SigType))
	}
	if !acceptableHash(sig.Hash) {
		return nil, fmt.Errorf("%w: message hash %v", ErrWeakAlgorithm, sig.Hash)
	}
	return &signedMessage{onePass: ops, sig: sig, untrustedContent: s.contents}, nil
}

// acceptableHash lists the message digests we accept. MD5, SHA-1 and
// RIPEMD-160 are refused (the v1 go-crypto API would verify them).
func acceptableHash(h crypto.Hash) bool {
	switch h {
	case crypto.SHA224, crypto.SHA256, crypto.SHA384, crypto.SHA512, crypto.SHA3_256, crypto.SHA3_512:
		return true
	}
	return false
}
