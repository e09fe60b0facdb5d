package signaturestore

import "context"

// SignatureView is one signature as VisitList shows it: the fields a
// signature list on the wire carries. Name and Content alias memory that
// is only valid until the visit function returns; a caller that keeps
// them copies them.
type SignatureView struct {
	Name    []byte
	Type    string
	Content []byte
}

// ListVisitor is an optional fast path of List for callers that only
// transform an image's signatures (the extension API encodes them): no
// Signature is built and no content is copied.
type ListVisitor interface {
	// VisitList reads the image's signatures from one consistent
	// snapshot, in the order List returns them. It calls size once, with
	// their number and the sum of their content lengths, before the
	// first call of each; an image without signatures gets size(0, 0)
	// and no each. An error from each stops the visit and is returned.
	// The store's lock or snapshot may be held while size and each run,
	// so they must not call into the store.
	VisitList(ctx context.Context, key ImageKey, size func(n int, contentBytes int64), each func(SignatureView) error) error
}

// VisitList visits the image's signatures through s's ListVisitor when it
// has one, and through List otherwise, with the same calls either way.
func VisitList(ctx context.Context, s Store, key ImageKey, size func(n int, contentBytes int64), each func(SignatureView) error) error {
	if v, ok := s.(ListVisitor); ok {
		return v.VisitList(ctx, key, size, each)
	}
	sigs, err := s.List(ctx, key)
	if err != nil {
		return err
	}
	var total int64
	for _, sig := range sigs {
		total += int64(len(sig.Content))
	}
	size(len(sigs), total)
	for _, sig := range sigs {
		if err := each(SignatureView{Name: []byte(sig.Name), Type: sig.Type, Content: sig.Content}); err != nil {
			return err
		}
	}
	return nil
}
