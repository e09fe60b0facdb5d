package etcdstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/signet-registry/signet/signaturestore"
)

// checkImage gathers what the keys say about one image.
type checkImage struct {
	count, bytes uint64
	maxSeq       uint64
	names        map[string]uint64 // from records
	hashes       map[string]uint64 // from records
	nameIndex    map[string]string // from name/
	hashIndex    map[string]string // from hash/
	stat         *stat
}

func newCheckImage() *checkImage {
	return &checkImage{
		names: map[string]uint64{}, hashes: map[string]uint64{},
		nameIndex: map[string]string{}, hashIndex: map[string]string{},
	}
}

// CheckReport describes a store that passed Check.
type CheckReport struct {
	Revision       int64
	Signatures     uint64
	Images         int
	PendingDeletes int
	Referrers      int
}

// Check verifies every key under the prefix against the layout at one
// revision: records decode, the name and content indexes and each image's
// stat agree with the records, and the referrers trees agree with each
// other. It returns the first problem found. It reads the whole prefix, so
// it is for tools and tests, not the request path.
func (s *Store) Check() error {
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	_, err := s.CheckReport(ctx)
	return err
}

// checkTimeout bounds Check, which has no caller context.
const checkTimeout = 5 * time.Minute

// CheckReport is Check with a summary of what was checked.
func (s *Store) CheckReport(ctx context.Context) (CheckReport, error) {
	var rep CheckReport
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return rep, fmt.Errorf("check etcd signature store: %w", signaturestore.ErrClosed)
	}
	images := map[signaturestore.ImageKey]*checkImage{}
	img := func(k signaturestore.ImageKey) *checkImage {
		if images[k] == nil {
			images[k] = newCheckImage()
		}
		return images[k]
	}
	type refKey = signaturestore.ReferrerKey
	refRecords := map[refKey]referrerRecord{} // by referrer, from ref/s/
	refSubjects := map[refKey]digest.Digest{} // from ref/s/ key
	refOf := map[refKey]digest.Digest{}       // from ref/r/
	refPending := map[refKey]bool{}           // from ref/p/
	schemaSeen := false
	p := s.k.prefix
	rev, err := s.scanAt(ctx, p, clientv3.GetPrefixRangeEnd(p), 0, func(kb, v []byte) (bool, error) {
		k := strings.TrimPrefix(string(kb), p)
		bad := func(err error) (bool, error) {
			return false, fmt.Errorf("%w: key %q: %w", ErrCorrupt, kb, err)
		}
		imageOf := func(rest string) (signaturestore.ImageKey, string, error) {
			repo, dgst, rest, err := parseImagePart(rest)
			return signaturestore.ImageKey{Repository: repo, Digest: dgst}, rest, err
		}
		switch {
		case k == keySchema:
			schemaSeen = true
			if err := checkSchema(string(v)); err != nil {
				return false, err
			}
		case strings.HasPrefix(k, treeSig):
			key, rest, err := imageOf(k[len(treeSig):])
			if err != nil {
				return bad(err)
			}
			seq, err := parseSeq(rest)
			if err != nil {
				return bad(err)
			}
			sig, err := decodeRecord(v)
			if err != nil {
				return bad(err)
			}
			im := img(key)
			if _, dup := im.names[sig.Name]; dup {
				return bad(fmt.Errorf("second record named %q", sig.Name))
			}
			h := contentHash(sig.Type, sig.Content)
			if _, dup := im.hashes[h]; dup {
				return bad(fmt.Errorf("second record with the content of %q", sig.Name))
			}
			im.names[sig.Name], im.hashes[h] = seq, seq
			im.count++
			im.bytes += uint64(len(sig.Content))
			im.maxSeq = max(im.maxSeq, seq)
		case strings.HasPrefix(k, treeName), strings.HasPrefix(k, treeHash):
			tree := treeName
			if strings.HasPrefix(k, treeHash) {
				tree = treeHash
			}
			key, rest, err := imageOf(k[len(tree):])
			if err != nil || rest == "" {
				return bad(fmt.Errorf("index key: %v", err))
			}
			if tree == treeName {
				img(key).nameIndex[rest] = string(v)
			} else {
				img(key).hashIndex[rest] = string(v)
			}
		case strings.HasPrefix(k, treeStat):
			key, rest, err := imageOf(k[len(treeStat):])
			if err != nil || rest != "" {
				return bad(fmt.Errorf("stat key: %v", err))
			}
			st, err := decodeStat(v)
			if err != nil {
				return bad(err)
			}
			img(key).stat = &st
		case strings.HasPrefix(k, treeJournal):
			_, rest, err := imageOf(k[len(treeJournal):])
			if err != nil || rest != "" {
				return bad(fmt.Errorf("journal key: %v", err))
			}
			var e journalEntry
			if err := strictDecode(v, &e); err != nil {
				return bad(err)
			}
			rep.PendingDeletes++
		case strings.HasPrefix(k, treeRefBySub):
			key, rest, err := imageOf(k[len(treeRefBySub):])
			if err != nil {
				return bad(err)
			}
			ref := digest.Digest(rest)
			if err := ref.Validate(); err != nil {
				return bad(err)
			}
			var r referrerRecord
			if err := strictDecode(v, &r); err != nil {
				return bad(err)
			}
			if r.Descriptor.Digest != ref {
				return bad(fmt.Errorf("record describes %s", r.Descriptor.Digest))
			}
			rk := refKey{Repository: key.Repository, Digest: ref}
			if _, dup := refRecords[rk]; dup {
				return bad(fmt.Errorf("referrer %s recorded under two subjects", ref))
			}
			refRecords[rk], refSubjects[rk] = r, key.Digest
		case strings.HasPrefix(k, treeRefOf):
			key, rest, err := imageOf(k[len(treeRefOf):])
			if err != nil || rest != "" {
				return bad(fmt.Errorf("referrer key: %v", err))
			}
			subject := digest.Digest(v)
			if err := subject.Validate(); err != nil {
				return bad(err)
			}
			refOf[refKey(key)] = subject
		case strings.HasPrefix(k, treeRefPend):
			key, rest, err := imageOf(k[len(treeRefPend):])
			if err != nil || rest != "" {
				return bad(fmt.Errorf("pending referrer key: %v", err))
			}
			refPending[refKey(key)] = true
		default:
			return bad(fmt.Errorf("not part of the layout"))
		}
		return true, nil
	})
	rep.Revision = rev
	if err != nil {
		return rep, fmt.Errorf("check etcd signature store: %w", classify(ctx, err))
	}
	if !schemaSeen {
		return rep, fmt.Errorf("check etcd signature store: %w: schema key missing", ErrCorrupt)
	}
	for key, im := range images {
		if err := im.check(); err != nil {
			return rep, fmt.Errorf("check etcd signature store: %w: image %s: %w", ErrCorrupt, key, err)
		}
		if im.count > 0 {
			rep.Images++
			rep.Signatures += im.count
		}
	}
	for rk, r := range refRecords {
		if refOf[rk] != refSubjects[rk] {
			return rep, fmt.Errorf("check etcd signature store: %w: referrer %s@%s: subject index says %q, record is under %s", ErrCorrupt, rk.Repository, rk.Digest, refOf[rk], refSubjects[rk])
		}
		if refPending[rk] != r.Pending {
			return rep, fmt.Errorf("check etcd signature store: %w: referrer %s@%s: pending marker %v, record pending %v", ErrCorrupt, rk.Repository, rk.Digest, refPending[rk], r.Pending)
		}
	}
	for rk := range refOf {
		if _, ok := refRecords[rk]; !ok {
			return rep, fmt.Errorf("check etcd signature store: %w: referrer %s@%s indexed without a record", ErrCorrupt, rk.Repository, rk.Digest)
		}
	}
	for rk := range refPending {
		if _, ok := refRecords[rk]; !ok {
			return rep, fmt.Errorf("check etcd signature store: %w: pending referrer %s@%s without a record", ErrCorrupt, rk.Repository, rk.Digest)
		}
	}
	rep.Referrers = len(refRecords)
	return rep, nil
}

func (im *checkImage) check() error {
	if im.count == 0 {
		if im.stat != nil || len(im.nameIndex) > 0 || len(im.hashIndex) > 0 {
			return fmt.Errorf("stat or index entries left behind without signatures")
		}
		return nil
	}
	if im.stat == nil {
		return fmt.Errorf("%d signatures but no stat", im.count)
	}
	if im.stat.Count != im.count || im.stat.Bytes != im.bytes {
		return fmt.Errorf("stat says %d signatures of %d bytes, found %d of %d", im.stat.Count, im.stat.Bytes, im.count, im.bytes)
	}
	if im.stat.Next <= im.maxSeq {
		return fmt.Errorf("stat's next sequence %d is not past the last used %d", im.stat.Next, im.maxSeq)
	}
	if err := sameIndex("name", im.names, im.nameIndex); err != nil {
		return err
	}
	return sameIndex("content", im.hashes, im.hashIndex)
}

// sameIndex compares an index (value: SEQ) with what the records say.
func sameIndex(what string, fromRecords map[string]uint64, index map[string]string) error {
	if len(index) != len(fromRecords) {
		return fmt.Errorf("%d signatures but %d %s index entries", len(fromRecords), len(index), what)
	}
	for k, seq := range fromRecords {
		if index[k] != seqString(seq) {
			return fmt.Errorf("%s index entry %q points to %q, want %s", what, k, index[k], seqString(seq))
		}
	}
	return nil
}
