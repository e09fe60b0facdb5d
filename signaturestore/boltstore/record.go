package boltstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/signet-registry/signet/signaturestore"
)

// recordVersion is the first byte of every signature record. A record with
// any other first byte is refused rather than guessed at.
//
// Record version 1 (all integers big-endian or unsigned varints as noted):
//
//	1 byte    version (1)
//	uvarint   len(name),    name bytes
//	uvarint   len(type),    type bytes
//	uvarint   len(content), content bytes
//	8 bytes   created, seconds since the Unix epoch (int64, two's complement)
//	4 bytes   created, nanoseconds within the second (uint32, < 1e9)
//	uvarint   len(status),  status as JSON; length 0 means no status
//
// Nothing may follow the status. Varints must be minimal, so that one
// signature has exactly one encoding.
const recordVersion = 1

// appendRecord appends the encoding of one signature to dst. status is the
// already encoded status (nil for none).
func appendRecord(dst []byte, name, typ string, content []byte, created time.Time, status []byte) []byte {
	dst = append(dst, recordVersion)
	dst = binary.AppendUvarint(dst, uint64(len(name)))
	dst = append(dst, name...)
	dst = binary.AppendUvarint(dst, uint64(len(typ)))
	dst = append(dst, typ...)
	dst = binary.AppendUvarint(dst, uint64(len(content)))
	dst = append(dst, content...)
	dst = binary.BigEndian.AppendUint64(dst, uint64(created.Unix()))
	dst = binary.BigEndian.AppendUint32(dst, uint32(created.Nanosecond()))
	dst = binary.AppendUvarint(dst, uint64(len(status)))
	dst = append(dst, status...)
	return dst
}

// recordSize is the exact length appendRecord produces, so the buffer is
// allocated once.
func recordSize(name, typ string, content, status []byte) int {
	return 1 + uvarintLen(uint64(len(name))) + len(name) +
		uvarintLen(uint64(len(typ))) + len(typ) +
		uvarintLen(uint64(len(content))) + len(content) +
		8 + 4 +
		uvarintLen(uint64(len(status))) + len(status)
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// encodeStatus returns the JSON form of status, or nil when status is nil.
func encodeStatus(status *signaturestore.Status) ([]byte, error) {
	if status == nil {
		return nil, nil
	}
	b, err := json.Marshal(status)
	if err != nil {
		return nil, fmt.Errorf("encode status: %w", err)
	}
	return b, nil
}

// decodeStatus parses a stored status strictly: one JSON object, no
// unknown fields, nothing after it.
func decodeStatus(b []byte) (*signaturestore.Status, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if b[0] != '{' {
		return nil, errors.New("status is not a json object")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var st signaturestore.Status
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("status: trailing data after json object")
	}
	return &st, nil
}

// recordReader consumes a record front to back; the first error sticks.
type recordReader struct {
	b   []byte
	err error
}

func (r *recordReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: record: %s", ErrCorrupt, fmt.Sprintf(format, args...))
	}
}

func (r *recordReader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad %s length", what)
		return 0
	}
	if n != uvarintLen(v) {
		r.fail("non-minimal %s length", what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

// bytes returns the next length-prefixed field. The result aliases the
// record: callers copy it before the transaction ends.
func (r *recordReader) bytes(what string) []byte {
	n := r.uvarint(what)
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.fail("%s length %d exceeds record", what, n)
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *recordReader) fixed(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.fail("truncated %s", what)
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

// decodeRecord parses a record strictly and copies every field out of b,
// so the result stays valid after the transaction that read b has ended.
func decodeRecord(b []byte) (signaturestore.Signature, error) {
	if len(b) == 0 {
		return signaturestore.Signature{}, fmt.Errorf("%w: record: empty", ErrCorrupt)
	}
	if b[0] != recordVersion {
		return signaturestore.Signature{}, fmt.Errorf("%w: record: unknown version %d", ErrCorrupt, b[0])
	}
	r := &recordReader{b: b[1:]}
	name := r.bytes("name")
	typ := r.bytes("type")
	content := r.bytes("content")
	secs := r.fixed(8, "created seconds")
	nanos := r.fixed(4, "created nanoseconds")
	status := r.bytes("status")
	if r.err != nil {
		return signaturestore.Signature{}, r.err
	}
	if len(r.b) != 0 {
		return signaturestore.Signature{}, fmt.Errorf("%w: record: %d trailing bytes", ErrCorrupt, len(r.b))
	}
	if len(name) == 0 || len(typ) == 0 || len(content) == 0 {
		return signaturestore.Signature{}, fmt.Errorf("%w: record: empty name, type or content", ErrCorrupt)
	}
	ns := binary.BigEndian.Uint32(nanos)
	if ns >= 1e9 {
		return signaturestore.Signature{}, fmt.Errorf("%w: record: nanoseconds %d out of range", ErrCorrupt, ns)
	}
	st, err := decodeStatus(status)
	if err != nil {
		return signaturestore.Signature{}, fmt.Errorf("%w: record: %w", ErrCorrupt, err)
	}
	return signaturestore.Signature{
		Name:    string(name),
		Type:    string(typ),
		Content: bytes.Clone(content),
		Created: time.Unix(int64(binary.BigEndian.Uint64(secs)), int64(ns)).UTC(),
		Status:  st,
	}, nil
}

// contentHash identifies a signature's type and content for the duplicate
// check ("same type and content" is a duplicate, SPEC section 1). The type
// is length-prefixed so that no (type, content) pair can be shifted into
// another.
func contentHash(typ string, content []byte) []byte {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(typ)))])
	h.Write([]byte(typ))
	h.Write(content)
	return h.Sum(nil)
}
