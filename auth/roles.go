package auth

import (
	"fmt"

	"github.com/signet-registry/signet/registry"
)

// Role is a named set of accesses granted on repositories.
type Role string

// The roles. They follow OpenShift's split (SPEC §1): signing and saving
// verification results are separate rights from pushing images.
const (
	// RoleReader may pull images and read signatures and records.
	RoleReader Role = "reader"
	// RoleWriter may also push and delete images on /v2.
	RoleWriter Role = "writer"
	// RoleSigner may also PUT signatures and delete one signature
	// (OpenShift's system:image-signer).
	RoleSigner Role = "signer"
	// RoleAuditor may also save and clear verification status
	// (OpenShift's system:image-auditor, what verify --save needs).
	RoleAuditor Role = "auditor"
	// RoleAdmin may do everything, including removing every signature of
	// an image (--remove-all).
	RoleAdmin Role = "admin"
)

// accessSet is a bit set of registry.Access values.
type accessSet uint32

func setOf(as ...registry.Access) accessSet {
	var s accessSet
	for _, a := range as {
		s |= 1 << uint(a)
	}
	return s
}

func (s accessSet) has(a registry.Access) bool {
	if a < 0 || a > registry.AccessAdmin {
		return false
	}
	return s&(1<<uint(a)) != 0
}

// accesses is the role table. Every role includes pull: a role that may
// write something it cannot read is never what an operator means.
func (r Role) accesses() (accessSet, error) {
	switch r {
	case RoleReader:
		return setOf(registry.AccessPull), nil
	case RoleWriter:
		return setOf(registry.AccessPull, registry.AccessPush), nil
	case RoleSigner:
		return setOf(registry.AccessPull, registry.AccessSign), nil
	case RoleAuditor:
		return setOf(registry.AccessPull, registry.AccessSave), nil
	case RoleAdmin:
		return setOf(registry.AccessPull, registry.AccessPush, registry.AccessSign,
			registry.AccessSave, registry.AccessAdmin), nil
	}
	return 0, fmt.Errorf("unknown role %q (want reader, writer, signer, auditor or admin)", string(r))
}

// Grants reports whether the role permits access. AccessNone is granted
// by every role; an unknown role grants nothing.
func (r Role) Grants(access registry.Access) bool {
	if access == registry.AccessNone {
		return true
	}
	set, err := r.accesses()
	return err == nil && set.has(access)
}
