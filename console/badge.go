package console

import (
	"strconv"
	"strings"
	"time"

	"github.com/signet-registry/signet/signaturestore"
)

// Badge states. The page always shows the word, never only a colour.
const (
	stateVerified   = "verified"
	stateUnverified = "unverified"
	stateUnsigned   = "unsigned"
	stateFailed     = "failed"
)

// badge is an image's or a signature's verification state.
type badge struct{ State string }

// Label is the badge's text.
func (b badge) Label() string {
	switch b.State {
	case stateVerified:
		return "Verified"
	case stateFailed:
		return "Failed"
	case stateUnsigned:
		return "Unsigned"
	}
	return "Unverified"
}

// Help explains the badge (its title attribute and the legend).
func (b badge) Help() string {
	switch b.State {
	case stateVerified:
		return "the most recent recorded verification succeeded"
	case stateFailed:
		return "the most recent recorded verification failed"
	case stateUnsigned:
		return "no signatures are stored for this image"
	}
	return "signatures are stored, but no verification of them is recorded"
}

// imageBadge summarises an image from its GPG signatures (the only ones
// with recorded statuses) and whether any cosign signature exists:
//
//   - unsigned: no signature of either kind;
//   - unverified: signatures, but no recorded verification;
//   - verified: the most recent recorded verification (the latest probe
//     time among the signatures' Trusted conditions) succeeded for at
//     least one signature;
//   - failed: it failed for every signature it covered.
//
// One `verify-image-signature --save` records every signature of the
// image at the same time, so "most recent" is that run.
func imageBadge(sigs []signaturestore.Signature, cosignCount int) badge {
	if len(sigs) == 0 && cosignCount == 0 {
		return badge{stateUnsigned}
	}
	var latest time.Time
	trusted, recorded := false, false
	for _, s := range sigs {
		c, ok := trustedCondition(s.Status)
		if !ok {
			continue
		}
		switch {
		case !recorded || c.LastProbeTime.After(latest):
			latest, trusted, recorded = c.LastProbeTime, c.Status == signaturestore.ConditionTrue, true
		case c.LastProbeTime.Equal(latest):
			trusted = trusted || c.Status == signaturestore.ConditionTrue
		}
	}
	switch {
	case !recorded:
		return badge{stateUnverified}
	case trusted:
		return badge{stateVerified}
	}
	return badge{stateFailed}
}

// signatureBadge is one GPG signature's state.
func signatureBadge(st *signaturestore.Status) badge {
	c, ok := trustedCondition(st)
	switch {
	case !ok:
		return badge{stateUnverified}
	case c.Status == signaturestore.ConditionTrue:
		return badge{stateVerified}
	}
	return badge{stateFailed}
}

func trustedCondition(st *signaturestore.Status) (signaturestore.Condition, bool) {
	if st == nil {
		return signaturestore.Condition{}, false
	}
	for _, c := range st.Conditions {
		if c.Type == signaturestore.ConditionTrusted {
			return c, true
		}
	}
	return signaturestore.Condition{}, false
}

// verifierOf extracts the user a status names: the server writes the
// message `verified by user "<name>"` (or `verification by user "<name>"
// failed`) with Go quoting, from the authenticated user, never from the
// request body.
func verifierOf(c signaturestore.Condition) string {
	for _, prefix := range []string{`verified by user `, `verification by user `} {
		rest, ok := strings.CutPrefix(c.Message, prefix)
		if !ok {
			continue
		}
		q, err := strconv.QuotedPrefix(rest)
		if err != nil {
			return ""
		}
		u, err := strconv.Unquote(q)
		if err != nil {
			return ""
		}
		return u
	}
	return ""
}
