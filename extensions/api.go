package extensions

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/signet-registry/signet/internal/reqctx"
	"github.com/signet-registry/signet/internal/strictjson"
	"github.com/signet-registry/signet/signaturestore"
)

// The Signet API (/signet/v1/...) carries what the OpenShift-compatible
// extension cannot: full signature records with their verification status,
// saving a verification result, and deleting signatures. The extension's
// GET stays byte-for-byte what containers/image expects.

// maxStatusBody bounds a status PUT body.
const maxStatusBody = 64 << 10

// Record is one signature as the Signet API shows it.
type Record struct {
	Name    string                 `json:"name"`
	Type    string                 `json:"type"`
	Content []byte                 `json:"content"`
	Created time.Time              `json:"created"`
	Status  *signaturestore.Status `json:"status,omitempty"`
}

// RecordList is the body of GET /signet/v1/repositories/<name>/signatures/<digest>.
type RecordList struct {
	Repository string   `json:"repository"`
	Digest     string   `json:"digest"`
	Signatures []Record `json:"signatures"`
}

// StatusUpdate is the body of a status PUT: the outcome of one
// verification, as computed by the auditor's client. The server adds who
// and when; the client cannot choose either.
type StatusUpdate struct {
	// Trusted is true when every verification step passed.
	Trusted bool `json:"trusted"`
	// Reason explains a failure; ignored on success.
	Reason        string                  `json:"reason,omitempty"`
	ImageIdentity string                  `json:"imageIdentity,omitempty"`
	SignedClaims  map[string]string       `json:"signedClaims,omitempty"`
	IssuedBy      *signaturestore.Issuer  `json:"issuedBy,omitempty"`
	IssuedTo      *signaturestore.Subject `json:"issuedTo,omitempty"`
}

// Bounds on a StatusUpdate's fields; generous for real data, small enough
// that hostile input cannot bloat the store.
const (
	maxStatusString = 1024
	maxClaims       = 16
)

func (u StatusUpdate) validate() error {
	strs := []string{u.Reason, u.ImageIdentity}
	if u.IssuedBy != nil {
		strs = append(strs, u.IssuedBy.CommonName, u.IssuedBy.Organization)
	}
	if u.IssuedTo != nil {
		strs = append(strs, u.IssuedTo.CommonName, u.IssuedTo.Organization, u.IssuedTo.PublicKeyID)
	}
	if len(u.SignedClaims) > maxClaims {
		return invalidf("more than %d signed claims", maxClaims)
	}
	for k, v := range u.SignedClaims {
		strs = append(strs, k, v)
	}
	for _, s := range strs {
		if len(s) > maxStatusString {
			return invalidf("a status field is longer than %d bytes", maxStatusString)
		}
	}
	if !u.Trusted && u.Reason == "" {
		return invalidf("a failed verification needs a reason")
	}
	return nil
}

// BuildStatus turns a verification outcome into the stored status.
// LastTransitionTime moves only when the Trusted status changes.
func BuildStatus(u StatusUpdate, user string, now time.Time, prev *signaturestore.Status) *signaturestore.Status {
	now = now.UTC().Truncate(time.Second)
	st := &signaturestore.Status{
		ImageIdentity: u.ImageIdentity,
		SignedClaims:  u.SignedClaims,
		IssuedBy:      u.IssuedBy,
		IssuedTo:      u.IssuedTo,
	}
	trusted := signaturestore.Condition{Type: signaturestore.ConditionTrusted, LastProbeTime: now, LastTransitionTime: now}
	if u.Trusted {
		trusted.Status = signaturestore.ConditionTrue
		trusted.Reason = "manually verified"
		trusted.Message = fmt.Sprintf("verified by user %q", user)
	} else {
		trusted.Status = signaturestore.ConditionFalse
		trusted.Reason = u.Reason
		trusted.Message = fmt.Sprintf("verification by user %q failed", user)
		// A failed verification says nothing trustworthy about the
		// signer or the claims.
		st.SignedClaims, st.IssuedBy, st.IssuedTo = nil, nil, nil
	}
	if prev != nil {
		for _, c := range prev.Conditions {
			if c.Type == signaturestore.ConditionTrusted && c.Status == trusted.Status {
				trusted.LastTransitionTime = c.LastTransitionTime
			}
		}
	}
	st.Conditions = []signaturestore.Condition{trusted}
	if u.Trusted {
		st.Conditions = append(st.Conditions, signaturestore.Condition{
			Type: signaturestore.ConditionForImage, Status: signaturestore.ConditionTrue,
			LastProbeTime: now, LastTransitionTime: trusted.LastTransitionTime,
		})
	}
	return st
}

// GetRecords serves GET /signet/v1/repositories/<name>/signatures/<digest>.
func (h *Handler) GetRecords(w http.ResponseWriter, r *http.Request, repository, rawDigest string) {
	key, sigs, ok := h.freshSignatures(w, r, repository, rawDigest)
	if !ok {
		return
	}
	out := RecordList{Repository: key.Repository, Digest: key.Digest.String(), Signatures: make([]Record, len(sigs))}
	for i, s := range sigs {
		out.Signatures[i] = Record{Name: s.Name, Type: s.Type, Content: s.Content, Created: s.Created, Status: s.Status}
	}
	writeJSON(w, http.StatusOK, out)
}

// PutStatus serves PUT .../signatures/<digest>/<name>/status: it records a
// verification outcome and never touches the signature's name, type or
// content.
func (h *Handler) PutStatus(w http.ResponseWriter, r *http.Request, repository, rawDigest, name string) {
	if _, err := parseSignature(repository, rawDigest, name); err != nil {
		h.fail(w, r, err)
		return
	}
	body, err := readBody(w, r, maxStatusBody)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	u, err := decodeStatusUpdate(body)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if err := u.validate(); err != nil {
		h.fail(w, r, err)
		return
	}
	key, sigs, ok := h.freshSignatures(w, r, repository, rawDigest)
	if !ok {
		return
	}
	var prev *signaturestore.Status
	found := false
	for _, s := range sigs {
		if s.Name == name {
			prev, found = s.Status, true
		}
	}
	if !found {
		h.fail(w, r, signaturestore.ErrNotFound)
		return
	}
	st := BuildStatus(u, reqctx.User(r.Context()), time.Now(), prev)
	if err := h.opts.Store.SetStatus(r.Context(), key, name, st); err != nil {
		h.fail(w, r, fmt.Errorf("save status of %s: %w", name, err))
		return
	}
	h.opts.Audit.Record(r, "status.save", key, slog.String("signature", name), slog.Bool("trusted", u.Trusted))
	writeJSON(w, http.StatusOK, st)
}

// DeleteStatus serves DELETE .../signatures/<digest>/<name>/status.
func (h *Handler) DeleteStatus(w http.ResponseWriter, r *http.Request, repository, rawDigest, name string) {
	key, err := parseSignature(repository, rawDigest, name)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.opts.Store.SetStatus(r.Context(), key, name, nil); err != nil {
		h.fail(w, r, fmt.Errorf("remove status of %s: %w", name, err))
		return
	}
	h.opts.Audit.Record(r, "status.delete", key, slog.String("signature", name))
	w.WriteHeader(http.StatusNoContent)
}

// DeleteSignature serves DELETE .../signatures/<digest>/<name>.
func (h *Handler) DeleteSignature(w http.ResponseWriter, r *http.Request, repository, rawDigest, name string) {
	key, err := parseSignature(repository, rawDigest, name)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.opts.Store.Delete(r.Context(), key, name); err != nil {
		h.fail(w, r, fmt.Errorf("delete signature %s: %w", name, err))
		return
	}
	h.opts.Audit.Record(r, "signature.delete", key, slog.String("signature", name))
	w.WriteHeader(http.StatusNoContent)
}

// DeleteAll serves DELETE .../signatures/<digest>: --remove-all.
func (h *Handler) DeleteAll(w http.ResponseWriter, r *http.Request, repository, rawDigest string) {
	key, err := parseImage(repository, rawDigest)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.requireManifest(r.Context(), key); err != nil {
		h.fail(w, r, err)
		return
	}
	n, err := h.opts.Store.DeleteAll(r.Context(), key)
	if err != nil {
		h.fail(w, r, fmt.Errorf("delete signatures of %s: %w", key, err))
		return
	}
	h.opts.Audit.Record(r, "signatures.remove-all", key, slog.Int("removed", n))
	writeJSON(w, http.StatusOK, map[string]int{"deleted": n})
}

// statusKeys lists the exact-case keys a status body may hold in the
// top-level object ("") and in its nested objects.
func statusKeys(object string) ([]string, bool) {
	switch object {
	case "":
		return []string{"trusted", "reason", "imageIdentity", "signedClaims", "issuedBy", "issuedTo"}, true
	case "issuedBy":
		return []string{"organization", "commonName"}, true
	case "issuedTo":
		return []string{"organization", "commonName", "publicKeyID"}, true
	}
	return nil, false
}

// decodeStatusUpdate parses an untrusted status body strictly. The syntax
// pass rejects duplicate keys (encoding/json keeps the last, so
// {"trusted":false,...,"trusted":true} would save True), invalid UTF-8 and
// trailing data; the key pass rejects any key not spelled exactly as
// above (encoding/json matches keys case-insensitively).
func decodeStatusUpdate(body []byte) (StatusUpdate, error) {
	var u StatusUpdate
	tree, err := strictjson.Parse(body)
	if err != nil {
		return u, invalidf("status body: %v", err)
	}
	if tree.Kind != strictjson.Object {
		return u, invalidf("status body is not a JSON object")
	}
	top, _ := statusKeys("")
	for _, m := range tree.Members {
		if !slices.Contains(top, m.Key) {
			return u, invalidf("status body: unknown key %q", truncate(m.Key))
		}
		if nested, ok := statusKeys(m.Key); ok && m.Value.Kind == strictjson.Object {
			for _, n := range m.Value.Members {
				if !slices.Contains(nested, n.Key) {
					return u, invalidf("status body: unknown key %q in %s", truncate(n.Key), m.Key)
				}
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&u); err != nil {
		return u, invalidf("status body: %v", err)
	}
	return u, nil
}

// parseSignature validates the URL variables naming one signature.
func parseSignature(repository, rawDigest, name string) (signaturestore.ImageKey, error) {
	key, err := parseImage(repository, rawDigest)
	if err != nil {
		return key, err
	}
	return key, ValidateName(key.Digest, name)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	buf, err := json.Marshal(v)
	if err != nil {
		buf = []byte(`{"errors":[{"code":"UNKNOWN","message":"unknown error"}]}`)
		status = http.StatusInternalServerError
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(buf)))
	w.WriteHeader(status)
	_, _ = w.Write(buf)
}
