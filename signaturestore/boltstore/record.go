package boltstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/signet-registry/signet/signaturestore"
)

// recordVersion is the first byte of every schema-2 signature record. A
// record with any other first byte is refused rather than guessed at
// (schema 1 wrote version 1, see v1.go).
//
// Record version 2 (integers big-endian, or unsigned varints as noted):
//
//	1 byte    version (2)
//	1 byte    flags: flagShortName, flagAtomic; other bits must be 0
//	16 bytes  name suffix, with flagShortName: the name is
//	          "<image digest>@" and these bytes in 32 lowercase hex
//	uvarint   len(name), name bytes, without flagShortName
//	uvarint   len(type), type bytes, without flagAtomic (which means "atomic")
//	uvarint   len(content), content bytes
//	8 bytes   created, seconds since the Unix epoch (int64, two's complement)
//	4 bytes   created, nanoseconds within the second (uint32, < 1e9)
//	uvarint   len(status), status as JSON; length 0 means no status
//	uvarint   image id (see the layout), last so that Put can prepare the
//	          record outside the transaction and append the id inside it
//
// Nothing may follow the image id. Every value has exactly one encoding:
// varints are minimal, and a name (type) that the short form can hold is
// never stored in full. Clients name signatures "<digest>@<32 hex>" and
// type them "atomic", so a record is the content plus about 40 bytes.
const recordVersion = 2

const (
	flagShortName = 1 << iota
	flagAtomic
	knownFlags = flagShortName | flagAtomic
)

// nameSuffixLen is the binary length of the 32-hex-digit name suffix.
const nameSuffixLen = 16

// shortName returns the suffix of a name of the form
// "<d>@<32 lowercase hex>", which is how every client names signatures.
func shortName(d digest.Digest, name string) ([nameSuffixLen]byte, bool) {
	var sfx [nameSuffixLen]byte
	if len(name) != len(d)+1+2*nameSuffixLen || name[:len(d)] != string(d) || name[len(d)] != '@' {
		return sfx, false
	}
	hx := name[len(d)+1:]
	for i := range len(hx) {
		if c := hx[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return sfx, false // upper case too: it must read back the same
		}
	}
	if _, err := hex.Decode(sfx[:], []byte(hx)); err != nil {
		return sfx, false
	}
	return sfx, true
}

// recordBody is a record without its image id: everything Put can encode
// before it knows which image id the record belongs to.
func appendRecordBody(dst []byte, d digest.Digest, name, typ string, content []byte, created time.Time, status []byte) []byte {
	var flags byte
	sfx, short := shortName(d, name)
	if short {
		flags |= flagShortName
	}
	if typ == signaturestore.TypeAtomic {
		flags |= flagAtomic
	}
	dst = append(dst, recordVersion, flags)
	if short {
		dst = append(dst, sfx[:]...)
	} else {
		dst = binary.AppendUvarint(dst, uint64(len(name)))
		dst = append(dst, name...)
	}
	if flags&flagAtomic == 0 {
		dst = binary.AppendUvarint(dst, uint64(len(typ)))
		dst = append(dst, typ...)
	}
	dst = binary.AppendUvarint(dst, uint64(len(content)))
	dst = append(dst, content...)
	dst = binary.BigEndian.AppendUint64(dst, uint64(created.Unix()))
	dst = binary.BigEndian.AppendUint32(dst, uint32(created.Nanosecond()))
	dst = binary.AppendUvarint(dst, uint64(len(status)))
	return append(dst, status...)
}

// recordCap is enough room for a whole record, image id included, so the
// buffer is allocated once.
func recordCap(name, typ string, content, status []byte) int {
	return 2 + binary.MaxVarintLen64 + len(name) +
		binary.MaxVarintLen64 + len(typ) +
		binary.MaxVarintLen64 + len(content) +
		8 + 4 +
		binary.MaxVarintLen64 + len(status) +
		binary.MaxVarintLen64
}

// appendRecord appends the whole record of one signature to dst. status
// is the already encoded status (nil for none).
func appendRecord(dst []byte, id uint64, d digest.Digest, name, typ string, content []byte, created time.Time, status []byte) []byte {
	dst = appendRecordBody(dst, d, name, typ, content, created, status)
	return binary.AppendUvarint(dst, id)
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

func (r *recordReader) uvarint(what string) uint64 { return r.uvarintOf(what, "") }

// uvarintOf is uvarint of the field what+suffix; the name is only built
// for an error.
func (r *recordReader) uvarintOf(what, suffix string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad %s%s", what, suffix)
		return 0
	}
	if n != uvarintLen(v) {
		r.fail("non-minimal %s%s", what, suffix)
		return 0
	}
	r.b = r.b[n:]
	return v
}

// bytes returns the next length-prefixed field. The result aliases the
// record: callers copy it before the transaction ends.
func (r *recordReader) bytes(what string) []byte {
	n := r.uvarintOf(what, " length")
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

// recordFields are a parsed record's fields. The slices alias the record.
type recordFields struct {
	short                        bool   // name holds the 16-byte suffix of a short-form name
	name                         []byte // the suffix, or the whole name
	typ                          []byte // nil with flagAtomic
	content, secs, nanos, status []byte
	id                           uint64
}

// parseRecord parses a record of an image with digest d strictly, without
// copying or decoding anything: every field is framed and checked except
// the status JSON, which decodeRecord (and signet check, through it)
// decodes.
func parseRecord(b []byte, d digest.Digest) (recordFields, error) {
	var f recordFields
	if len(b) == 0 {
		return f, fmt.Errorf("%w: record: empty", ErrCorrupt)
	}
	if b[0] != recordVersion {
		return f, fmt.Errorf("%w: record: unknown version %d", ErrCorrupt, b[0])
	}
	r := &recordReader{b: b[1:]}
	flags := r.fixed(1, "flags")
	if r.err != nil {
		return f, r.err
	}
	if flags[0]&^knownFlags != 0 {
		return f, fmt.Errorf("%w: record: unknown flags %#x", ErrCorrupt, flags[0])
	}
	if f.short = flags[0]&flagShortName != 0; f.short {
		f.name = r.fixed(nameSuffixLen, "name suffix")
	} else {
		f.name = r.bytes("name")
		if _, short := shortName(d, string(f.name)); short && r.err == nil {
			r.fail("name %q stored in full", f.name)
		}
	}
	if flags[0]&flagAtomic == 0 {
		f.typ = r.bytes("type")
		if string(f.typ) == signaturestore.TypeAtomic && r.err == nil {
			r.fail("type %q stored in full", f.typ)
		}
	}
	f.content = r.bytes("content")
	f.secs = r.fixed(8, "created seconds")
	f.nanos = r.fixed(4, "created nanoseconds")
	f.status = r.bytes("status")
	f.id = r.uvarint("image id")
	if r.err != nil {
		return f, r.err
	}
	if len(r.b) != 0 {
		return f, fmt.Errorf("%w: record: %d trailing bytes", ErrCorrupt, len(r.b))
	}
	if len(f.name) == 0 || (f.typ != nil && len(f.typ) == 0) || len(f.content) == 0 {
		return f, fmt.Errorf("%w: record: empty name, type or content", ErrCorrupt)
	}
	if f.id == 0 {
		return f, fmt.Errorf("%w: record: image id 0", ErrCorrupt)
	}
	if err := checkNanos(f.nanos); err != nil {
		return f, err
	}
	return f, nil
}

// appendName appends the record's name, for an image with digest d.
func (f *recordFields) appendName(dst []byte, d digest.Digest) []byte {
	if !f.short {
		return append(dst, f.name...)
	}
	dst = append(append(dst, d...), '@')
	return hex.AppendEncode(dst, f.name)
}

// typeName is the record's type.
func (f *recordFields) typeName() string {
	if f.typ == nil {
		return signaturestore.TypeAtomic
	}
	return string(f.typ)
}

// signature decodes the status and copies every field, so the result
// stays valid after the transaction that read the record has ended.
func (f *recordFields) signature(d digest.Digest) (signaturestore.Signature, error) {
	return finishRecord(string(f.appendName(nil, d)), f.typeName(), f.content, f.secs, f.nanos, f.status)
}

// decodeRecord parses a record of an image with digest d strictly and
// copies every field out of b. It returns the image id the record names.
func decodeRecord(b []byte, d digest.Digest) (uint64, signaturestore.Signature, error) {
	f, err := parseRecord(b, d)
	if err != nil {
		return 0, signaturestore.Signature{}, err
	}
	sig, err := f.signature(d)
	return f.id, sig, err
}

// finishRecord decodes the status and copies the fields both record
// versions share; nanos is already checked (checkNanos).
func finishRecord(name, typ string, content, secs, nanos, status []byte) (signaturestore.Signature, error) {
	st, err := decodeStatus(status)
	if err != nil {
		return signaturestore.Signature{}, fmt.Errorf("%w: record: %w", ErrCorrupt, err)
	}
	return signaturestore.Signature{
		Name:    name,
		Type:    typ,
		Content: bytes.Clone(content),
		Created: time.Unix(int64(binary.BigEndian.Uint64(secs)), int64(binary.BigEndian.Uint32(nanos))).UTC(),
		Status:  st,
	}, nil
}

func checkNanos(nanos []byte) error {
	if ns := binary.BigEndian.Uint32(nanos); ns >= 1e9 {
		return fmt.Errorf("%w: record: nanoseconds %d out of range", ErrCorrupt, ns)
	}
	return nil
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

// contentKeyLen is how much of contentHash the schema-2 content index
// keeps. The index only refuses a second signature with the same type and
// content in one image: a collision of 128 bits of SHA-256 (2^64 work
// for a writer colliding two of its own signatures, 2^128 to hit someone
// else's) could only make a new signature be refused as a duplicate,
// never replace or hide a stored one.
const contentKeyLen = 16

func contentKey(typ string, content []byte) []byte {
	return contentHash(typ, content)[:contentKeyLen]
}
