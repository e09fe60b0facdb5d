package etcdstore

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

	"github.com/signet-registry/signet/signaturestore"
)

// recordVersion is the "v" of every record this package writes; a record
// with another version is refused rather than guessed at.
const recordVersion = 1

// record is the stored form of one signature: JSON, so that an operator
// can read it with etcdctl. Content is base64 (encoding/json's []byte).
type record struct {
	V       int                    `json:"v"`
	Name    string                 `json:"name"`
	Type    string                 `json:"type"`
	Content []byte                 `json:"content"`
	Created time.Time              `json:"created"`
	Status  *signaturestore.Status `json:"status,omitempty"`
}

// stat is the stored form of an image's totals. Every change to the set of
// an image's signatures rewrites it in the same transaction, so its
// ModRevision moves with every such change: a writer that read it can tell
// whether anything changed since (see Put).
type stat struct {
	Count uint64 `json:"count"`
	Bytes uint64 `json:"bytes"`
	// Next is the sequence number the next signature gets; never reused
	// while the image has signatures, so key order is insertion order.
	Next uint64 `json:"next"`
}

// journalEntry is the stored form of a manifest delete intent.
type journalEntry struct {
	Began time.Time `json:"began"`
}

// referrerRecord is the stored form of one referrer.
type referrerRecord struct {
	Descriptor signaturestore.Descriptor `json:"descriptor"`
	Pending    bool                      `json:"pending,omitempty"`
}

func encodeRecord(sig signaturestore.Signature) ([]byte, error) {
	b, err := json.Marshal(record{
		V: recordVersion, Name: sig.Name, Type: sig.Type, Content: sig.Content,
		Created: sig.Created.UTC(), Status: sig.Status,
	})
	if err != nil {
		return nil, fmt.Errorf("encode signature record: %w", err)
	}
	return b, nil
}

func decodeRecord(b []byte) (signaturestore.Signature, error) {
	var r record
	if err := strictDecode(b, &r); err != nil {
		return signaturestore.Signature{}, fmt.Errorf("%w: signature record: %w", ErrCorrupt, err)
	}
	if r.V != recordVersion {
		return signaturestore.Signature{}, fmt.Errorf("%w: signature record version %d", ErrCorrupt, r.V)
	}
	if r.Name == "" || r.Type == "" || len(r.Content) == 0 {
		return signaturestore.Signature{}, fmt.Errorf("%w: signature record with empty name, type or content", ErrCorrupt)
	}
	return signaturestore.Signature{
		Name: r.Name, Type: r.Type, Content: r.Content, Created: r.Created.UTC(), Status: r.Status,
	}, nil
}

func decodeStat(b []byte) (stat, error) {
	var st stat
	if err := strictDecode(b, &st); err != nil {
		return stat{}, fmt.Errorf("%w: image stat: %w", ErrCorrupt, err)
	}
	return st, nil
}

func mustJSON(v any) string {
	// Only this package's own plain structs go through here; they
	// always marshal.
	b, err := json.Marshal(v)
	if err != nil {
		return "{}"
	}
	return string(b)
}

// strictDecode parses one JSON object with no unknown fields and nothing
// after it.
func strictDecode(b []byte, v any) error {
	if len(b) == 0 || b[0] != '{' {
		return errors.New("not a json object")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data after json object")
	}
	return nil
}

// contentHash identifies a signature's type and content for the duplicate
// check ("same type and content" is a duplicate, SPEC section 1). The type
// is length-prefixed so that no (type, content) pair can be shifted into
// another. Hex, so the index key stays printable.
func contentHash(typ string, content []byte) string {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(typ)))])
	h.Write([]byte(typ))
	h.Write(content)
	return hex.EncodeToString(h.Sum(nil))
}
