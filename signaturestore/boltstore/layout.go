package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	"github.com/opencontainers/go-digest"
	"go.etcd.io/bbolt"

	"github.com/signet-registry/signet/signaturestore"
)

// Schema-2 buckets and keys; the layout is drawn in the package comment.
var (
	bucketMeta    = []byte("meta")
	bucketImages  = []byte("images")
	bucketIndex   = []byte("index")
	bucketSigs    = []byte("sigs")
	bucketJournal = []byte("journal")
	keySchema     = []byte("schema")
	keyCount      = []byte("count")
)

// schemaBuckets are the top-level buckets Open creates. referrers is
// created by the first BeginReferrer.
var schemaBuckets = [][]byte{bucketImages, bucketIndex, bucketSigs, bucketJournal}

// Fill percents: how full bbolt packs a page when it splits a node. sigs
// keys only ever grow, so a split page is never written into again and is
// best left full; just under 1.0, because bbolt splits a page of exactly
// its page size again the next time it is written (a status change, a
// delete), leaving a page of 3 entries behind. index keys (image ids)
// grow too, but the indexes of the images being signed grow in the last
// pages, and a page packed full there splits again at once, leaving small
// pages behind: BenchmarkBytesPerSignature measured the index at 67% full
// with 0.5 or 0.7, 47% with 0.9 and 40% with 0.99. images keys are random
// digests, where bbolt's default 0.5 is right.
const (
	fillAppend = 0.99
	fillIndex  = 0.5
	fillImages = 0.5
)

// Image keys: the repository with every 0x00 byte written as 0x00 0xff,
// then 0x00 0x01, then the digest. No image key is a prefix of another
// image's key, and byte order is repository order, then digest order,
// which is the order Walk and ImagesAfter promise ("ns/math" <
// "ns/math-voila" < "ns/math/sub" < "ns/math0", "-" sorting before "/";
// SPEC section 6).
const (
	repoEscape = 0x00
	escapedNUL = 0xff
	endOfRepo  = 0x01
)

func appendImageKey(dst []byte, key signaturestore.ImageKey) []byte {
	for i := range len(key.Repository) {
		c := key.Repository[i]
		dst = append(dst, c)
		if c == repoEscape {
			dst = append(dst, escapedNUL)
		}
	}
	dst = append(dst, repoEscape, endOfRepo)
	return append(dst, key.Digest...)
}

func imageKeyBytes(key signaturestore.ImageKey) []byte {
	return appendImageKey(make([]byte, 0, len(key.Repository)+2+len(key.Digest)), key)
}

// parseImageKey decodes and validates an image key; there is exactly one
// encoding of each ImageKey.
func parseImageKey(k []byte) (signaturestore.ImageKey, error) {
	repo := make([]byte, 0, len(k))
	for i := 0; i < len(k); i++ {
		if k[i] != repoEscape {
			repo = append(repo, k[i])
			continue
		}
		if i+1 < len(k) && k[i+1] == escapedNUL {
			repo = append(repo, 0)
			i++
			continue
		}
		if i+1 < len(k) && k[i+1] == endOfRepo {
			key := signaturestore.ImageKey{Repository: string(repo), Digest: digest.Digest(k[i+2:])}
			if err := validateKey(key); err != nil {
				return key, fmt.Errorf("%w: image key %q: %w", ErrCorrupt, k, err)
			}
			return key, nil
		}
		break
	}
	return signaturestore.ImageKey{}, fmt.Errorf("%w: malformed image key %q", ErrCorrupt, k)
}

// An image's index (the value under its id in the index bucket) is
//
//	uvarint   content bytes of all its signatures
//	entries   one per signature, in insertion order:
//	  16 bytes  content key: the first 16 bytes of contentHash(type, content)
//	  uvarint   sequence number of its record in sigs (> 0)
//	  name key  nameShort and the 16 bytes a "<image digest>@<32 lowercase
//	            hex>" name spells, or nameFull, uvarint len(name), name
//
// One value per image, rewritten by each write to the image, keeps the
// index of 10 signatures in about 400 bytes under one key (separate index
// entries would cost 16 bytes of bbolt header each), and lets a write find
// a duplicate name or content by scanning it: the configuration bounds an
// image to 1024 signatures.
const (
	nameShort = 0x00
	nameFull  = 0x01
)

func appendNameKey(dst []byte, d digest.Digest, name string) []byte {
	if sfx, ok := shortName(d, name); ok {
		return append(append(dst, nameShort), sfx[:]...)
	}
	dst = binary.AppendUvarint(append(dst, nameFull), uint64(len(name)))
	return append(dst, name...)
}

func appendEntry(dst, content []byte, seq uint64, nameKey []byte) []byte {
	dst = append(dst, content...)
	dst = binary.AppendUvarint(dst, seq)
	return append(dst, nameKey...)
}

// entry is one parsed index entry; its slices alias the index value.
type entry struct {
	content []byte
	seq     uint64
	name    []byte // name key
	raw     []byte // the whole entry
}

// parseIndex splits an index value strictly into its content bytes, its
// entries and the part of v that holds them.
func parseIndex(v []byte) (uint64, []entry, []byte, error) {
	size, raw, err := indexHeader(v)
	if err != nil {
		return 0, nil, nil, err
	}
	var entries []entry
	if err := eachEntry(raw, func(e entry) bool {
		entries = append(entries, e)
		return true
	}); err != nil {
		return 0, nil, nil, err
	}
	return size, entries, raw, nil
}

// indexHeader reads an index value's content bytes and returns the part
// that holds the entries (eachEntry parses them).
func indexHeader(v []byte) (uint64, []byte, error) {
	r := recordReader{b: v}
	size := r.uvarint("index content bytes")
	if r.err != nil {
		return 0, nil, fmt.Errorf("index: %w", r.err)
	}
	return size, r.b, nil
}

// eachEntry parses the entries of an index strictly, in order, and calls
// fn with each until fn returns false. It reports the first malformed
// entry met.
func eachEntry(raw []byte, fn func(entry) bool) error {
	r := recordReader{b: raw}
	for r.err == nil && len(r.b) > 0 {
		start := r.b
		e := entry{content: r.fixed(contentKeyLen, "index content key")}
		e.seq = r.uvarint("index sequence number")
		tag := r.fixed(1, "index name tag")
		if r.err != nil {
			break
		}
		switch tag[0] {
		case nameShort:
			r.fixed(nameSuffixLen, "index name suffix")
		case nameFull:
			if len(r.bytes("index name")) == 0 && r.err == nil {
				r.fail("empty name in index")
			}
		default:
			r.fail("unknown name tag %#x in index", tag[0])
		}
		if r.err == nil && e.seq == 0 {
			r.fail("sequence number 0 in index")
		}
		if r.err != nil {
			break
		}
		e.raw = start[:len(start)-len(r.b)]
		e.name = e.raw[contentKeyLen+uvarintLen(e.seq):]
		if !fn(e) {
			return nil
		}
	}
	if r.err != nil {
		return fmt.Errorf("index: %w", r.err)
	}
	return nil
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), v) }

// tree is the schema-2 buckets as one transaction sees them.
type tree struct {
	meta, images, index, sigs, journal *bbolt.Bucket
}

func openTree(tx *bbolt.Tx) (*tree, error) {
	t := &tree{
		meta:    tx.Bucket(bucketMeta),
		images:  tx.Bucket(bucketImages),
		index:   tx.Bucket(bucketIndex),
		sigs:    tx.Bucket(bucketSigs),
		journal: tx.Bucket(bucketJournal),
	}
	if t.meta == nil || t.images == nil || t.index == nil || t.sigs == nil || t.journal == nil {
		return nil, fmt.Errorf("%w: missing one of the buckets meta, images, index, sigs, journal", ErrCorrupt)
	}
	t.sigs.FillPercent = fillAppend
	t.index.FillPercent = fillIndex
	t.images.FillPercent = fillImages
	return t, nil
}

// openListTree is openTree for reading lists (List, VisitList): only the
// buckets a list reads are opened, each a lookup and an allocation.
func openListTree(tx *bbolt.Tx) (*tree, error) {
	t := &tree{images: tx.Bucket(bucketImages), index: tx.Bucket(bucketIndex), sigs: tx.Bucket(bucketSigs)}
	if t.images == nil || t.index == nil || t.sigs == nil {
		return nil, fmt.Errorf("%w: missing one of the buckets images, index, sigs", ErrCorrupt)
	}
	return t, nil
}

// image is one image that holds signatures, with its parsed index.
type image struct {
	key     []byte // images key
	d       digest.Digest
	id      uint64
	idKey   []byte // id, 8 bytes big-endian: the index key
	bytes   uint64
	entries []entry // alias the index value: valid until the image is written
	raw     []byte  // all the entries, as stored
}

// image returns the image stored under k (imageKeyBytes of an image with
// digest d), or nil and no error when it has no signatures.
func (t *tree) image(k []byte, d digest.Digest) (*image, error) {
	v := t.images.Get(k)
	if v == nil {
		return nil, nil
	}
	return t.imageAt(k, v, d)
}

// imageHead is image without parsing the entries (img.entries is nil;
// eachEntry reads img.raw), for a write that only scans them once.
func (t *tree) imageHead(k []byte, d digest.Digest) (*image, error) {
	v := t.images.Get(k)
	if v == nil {
		return nil, nil
	}
	img, idx, err := t.imageIndex(k, v, d)
	if err != nil {
		return nil, err
	}
	if img.bytes, img.raw, err = indexHeader(idx); err != nil {
		return nil, fmt.Errorf("image %q (id %d): %w", k, img.id, err)
	}
	return img, nil
}

// imageIndex resolves the image stored under k to its id and index value.
func (t *tree) imageIndex(k, v []byte, d digest.Digest) (*image, []byte, error) {
	if len(v) != 8 {
		return nil, nil, fmt.Errorf("%w: image %q: malformed id %x", ErrCorrupt, k, v)
	}
	img := &image{key: bytes.Clone(k), d: d, id: binary.BigEndian.Uint64(v), idKey: bytes.Clone(v)}
	idx := t.index.Get(img.idKey)
	if idx == nil {
		return nil, nil, fmt.Errorf("%w: image %q (id %d): index missing", ErrCorrupt, k, img.id)
	}
	return img, idx, nil
}

func (t *tree) imageAt(k, v []byte, d digest.Digest) (*image, error) {
	img, idx, err := t.imageIndex(k, v, d)
	if err != nil {
		return nil, err
	}
	if img.bytes, img.entries, img.raw, err = parseIndex(idx); err != nil {
		return nil, fmt.Errorf("image %q (id %d): %w", k, img.id, err)
	}
	return img, nil
}

// writeIndex stores the image's index with entries (raw encodings) and
// content bytes. Write phase.
func (t *tree) writeIndex(img *image, size uint64, entries ...[]byte) error {
	n := binary.MaxVarintLen64
	for _, e := range entries {
		n += len(e)
	}
	v := binary.AppendUvarint(make([]byte, 0, n), size)
	for _, e := range entries {
		v = append(v, e...)
	}
	if err := t.index.Put(img.idKey, v); err != nil {
		return fmt.Errorf("write image index: %w", err)
	}
	return nil
}

// find returns the position of the entry with name key nk, or -1.
func (img *image) find(nk []byte) int {
	for i, e := range img.entries {
		if bytes.Equal(e.name, nk) {
			return i
		}
	}
	return -1
}

// record reads and decodes the record at seq, which must belong to img.
func (t *tree) record(img *image, seq uint64) (signaturestore.Signature, error) {
	return recordAt(img, seq, t.sigs.Get(u64(seq)))
}

// recordAt decodes v, the record stored under seq, which must belong to
// img.
func recordAt(img *image, seq uint64, v []byte) (signaturestore.Signature, error) {
	f, err := fieldsAt(img, seq, v)
	if err != nil {
		return signaturestore.Signature{}, err
	}
	sig, err := f.signature(img.d)
	if err != nil {
		return signaturestore.Signature{}, fmt.Errorf("signature %d: %w", seq, err)
	}
	return sig, nil
}

// fieldsAt parses v, the record stored under seq (nil: missing), which
// must belong to img.
func fieldsAt(img *image, seq uint64, v []byte) (recordFields, error) {
	if v == nil {
		return recordFields{}, fmt.Errorf("%w: index points to missing signature %d", ErrCorrupt, seq)
	}
	f, err := parseRecord(v, img.d)
	if err != nil {
		return f, fmt.Errorf("signature %d: %w", seq, err)
	}
	if f.id != img.id {
		return f, fmt.Errorf("%w: signature %d belongs to image id %d, indexed under %d", ErrCorrupt, seq, f.id, img.id)
	}
	return f, nil
}

// list reads one image's signatures in insertion order.
func (t *tree) list(img *image) ([]signaturestore.Signature, error) {
	sigs := make([]signaturestore.Signature, 0, len(img.entries))
	err := t.eachRecord(img, func(seq uint64, v []byte) error {
		sig, err := recordAt(img, seq, v)
		if err != nil {
			return err
		}
		sigs = append(sigs, sig)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return sigs, nil
}

// eachRecord calls fn with the sequence number and the stored record (nil
// when missing) of each of img's index entries, in order. The record
// aliases the transaction's memory.
func (t *tree) eachRecord(img *image, fn func(seq uint64, v []byte) error) error {
	// One cursor for the whole list: where an image's signatures were
	// stored one after another (signed in one go, imported), the next
	// key is one step away, where a Get descends from the root again.
	// Signatures stored at different times still cost a seek each.
	c := t.sigs.Cursor()
	var key [8]byte
	var k, v []byte
	var prev uint64
	var ferr error
	err := eachEntry(img.raw, func(e entry) bool {
		binary.BigEndian.PutUint64(key[:], e.seq)
		if prev != 0 && k != nil && e.seq == prev+1 {
			k, v = c.Next()
		} else {
			k, v = c.Seek(key[:])
		}
		prev = e.seq
		if !bytes.Equal(k, key[:]) {
			v = nil
		}
		ferr = fn(e.seq, v)
		return ferr == nil
	})
	if err != nil {
		return fmt.Errorf("image %q (id %d): %w", img.key, img.id, err)
	}
	return ferr
}

// visit is VisitList within a transaction.
func (t *tree) visit(key signaturestore.ImageKey, size func(int, int64), each func(signaturestore.SignatureView) error) error {
	img, err := t.imageHead(imageKeyBytes(key), key.Digest)
	if err != nil {
		return err
	}
	if img == nil {
		size(0, 0)
		return nil
	}
	n := 0
	if err := eachEntry(img.raw, func(entry) bool { n++; return true }); err != nil {
		return fmt.Errorf("image %q (id %d): %w", img.key, img.id, err)
	}
	size(n, int64(img.bytes))
	var name []byte
	return t.eachRecord(img, func(seq uint64, v []byte) error {
		f, err := fieldsAt(img, seq, v)
		if err != nil {
			return err
		}
		name = f.appendName(name[:0], img.d)
		return each(signaturestore.SignatureView{Name: name, Type: f.typeName(), Content: f.content})
	})
}

// remove drops an image that no longer holds signatures: an image has
// entries in images and index only while it holds one, so an empty
// database is just the top-level buckets. Write phase.
func (t *tree) remove(img *image) error {
	if err := t.images.Delete(img.key); err != nil {
		return fmt.Errorf("delete image: %w", err)
	}
	if err := t.index.Delete(img.idKey); err != nil {
		return fmt.Errorf("delete image index: %w", err)
	}
	return nil
}

func readTotal(tx *bbolt.Tx) (uint64, error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return 0, fmt.Errorf("%w: missing meta bucket", ErrCorrupt)
	}
	v := meta.Get(keyCount)
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: count key missing or malformed", ErrCorrupt)
	}
	return binary.BigEndian.Uint64(v), nil
}

// addTotal adjusts meta/count. Write phase.
func addTotal(tx *bbolt.Tx, delta int64) error {
	n, err := readTotal(tx)
	if err != nil {
		return err
	}
	if delta < 0 && uint64(-delta) > n {
		return fmt.Errorf("%w: count %d would drop below zero", ErrCorrupt, n)
	}
	if err := tx.Bucket(bucketMeta).Put(keyCount, u64(n+uint64(delta))); err != nil {
		return fmt.Errorf("write count: %w", err)
	}
	return nil
}

// walkTx visits every image in repository, then digest order.
func walkTx(ctx context.Context, tx *bbolt.Tx, fn func(signaturestore.ImageKey, []signaturestore.Signature) error) error {
	t, err := openTree(tx)
	if err != nil {
		return err
	}
	c := t.images.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		key, err := parseImageKey(k)
		if err != nil {
			return err
		}
		img, err := t.imageAt(k, v, key.Digest)
		if err != nil {
			return err
		}
		sigs, err := t.list(img)
		if err != nil {
			return fmt.Errorf("image %s: %w", key, err)
		}
		if len(sigs) == 0 {
			continue
		}
		if err := fn(key, sigs); err != nil {
			return err
		}
	}
	return nil
}

// checkLayout checks every invariant of the schema-2 layout: image keys
// and ids are well formed, every image's index leads to records of that
// image with that name and content key, without repeats, and adds up
// their content bytes; and nothing is left over: no record or index that
// no image reaches. It returns the number of repositories.
func checkLayout(tx *bbolt.Tx) (int, error) {
	t, err := openTree(tx)
	if err != nil {
		return 0, err
	}
	var (
		total, imageN uint64
		repositories  int
		prevRepo      string
	)
	maxID, maxSeq := t.images.Sequence(), t.sigs.Sequence()
	c := t.images.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v == nil {
			return 0, fmt.Errorf("%w: bucket %q where an image belongs", ErrCorrupt, k)
		}
		key, err := parseImageKey(k)
		if err != nil {
			return 0, err
		}
		if imageN == 0 || key.Repository != prevRepo {
			repositories++
			prevRepo = key.Repository
		}
		imageN++
		img, err := t.imageAt(k, v, key.Digest)
		if err != nil {
			return 0, err
		}
		if img.id == 0 || img.id > maxID {
			return 0, fmt.Errorf("%w: image %s: id %d outside the images sequence (%d)", ErrCorrupt, key, img.id, maxID)
		}
		if err := t.checkImage(img, maxSeq); err != nil {
			return 0, fmt.Errorf("image %s: %w", key, err)
		}
		total += uint64(len(img.entries))
	}
	// Each image reached records of its own id only, each once, so
	// equal counts mean no record is orphaned and no id is shared.
	sigN, indexN := t.sigs.Stats().KeyN, t.index.Stats().KeyN
	if uint64(sigN) != total || uint64(indexN) != imageN {
		return 0, fmt.Errorf("%w: %d images reach %d signatures, but the database holds %d records and %d indexes (orphans or shared image ids)",
			ErrCorrupt, imageN, total, sigN, indexN)
	}
	if err := checkTotal(tx, total); err != nil {
		return 0, err
	}
	return repositories, checkJournal(tx)
}

// checkImage checks one image against its records.
func (t *tree) checkImage(img *image, maxSeq uint64) error {
	if len(img.entries) == 0 {
		return fmt.Errorf("%w: image without signatures left behind", ErrCorrupt)
	}
	var size uint64
	seen := map[string]bool{}
	for _, e := range img.entries {
		if e.seq > maxSeq {
			return fmt.Errorf("%w: signature %d outside the sigs sequence (%d)", ErrCorrupt, e.seq, maxSeq)
		}
		sig, err := t.record(img, e.seq)
		if err != nil {
			return err
		}
		if nk := appendNameKey(nil, img.d, sig.Name); !bytes.Equal(nk, e.name) {
			return fmt.Errorf("%w: index entry %x leads to signature %q", ErrCorrupt, e.name, sig.Name)
		}
		if ck := contentKey(sig.Type, sig.Content); !bytes.Equal(ck, e.content) {
			return fmt.Errorf("%w: index has the wrong content key for signature %q", ErrCorrupt, sig.Name)
		}
		for _, dup := range []struct{ key, what string }{
			{"s" + string(u64(e.seq)), "record"},
			{"n" + string(e.name), "name"},
			{"c" + string(e.content), "type and content"},
		} {
			if seen[dup.key] {
				return fmt.Errorf("%w: signature %q repeats the %s of another", ErrCorrupt, sig.Name, dup.what)
			}
			seen[dup.key] = true
		}
		size += uint64(len(sig.Content))
	}
	if img.bytes != size {
		return fmt.Errorf("%w: index says %d content bytes, the signatures hold %d", ErrCorrupt, img.bytes, size)
	}
	return nil
}

func checkTotal(tx *bbolt.Tx, total uint64) error {
	stored, err := readTotal(tx)
	if err != nil {
		return err
	}
	if stored != total {
		return fmt.Errorf("%w: meta count is %d but %d signatures are stored", ErrCorrupt, stored, total)
	}
	return nil
}

func checkJournal(tx *bbolt.Tx) error {
	journal := tx.Bucket(bucketJournal)
	if journal == nil {
		return fmt.Errorf("%w: missing journal bucket", ErrCorrupt)
	}
	return journal.ForEach(func(k, v []byte) error {
		if _, err := decodeJournalKey(k); err != nil {
			return err
		}
		if len(v) != 8 {
			return fmt.Errorf("%w: journal entry %q: malformed value", ErrCorrupt, k)
		}
		return nil
	})
}
