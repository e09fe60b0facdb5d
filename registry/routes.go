package registry

import (
	"net/http"

	"github.com/distribution/reference"
)

// Access is what a route requires of the caller. It is decided before any
// handler looks at whether the repository or image exists, so that an
// unauthorised caller cannot learn what exists (401/403 before 404).
type Access int

// Access levels, from least to most privileged.
const (
	AccessNone Access = iota // health, readiness, metrics
	AccessPull
	AccessPush
	AccessSign
	AccessSave
	AccessAdmin
)

func (a Access) String() string {
	switch a {
	case AccessNone:
		return "none"
	case AccessPull:
		return "pull"
	case AccessPush:
		return "push"
	case AccessSign:
		return "sign"
	case AccessSave:
		return "save"
	case AccessAdmin:
		return "admin"
	}
	return "unknown"
}

// Route names. They are also the "route" label of the metrics.
const (
	RouteSignaturesGet = "signatures.get"
	RouteSignaturesPut = "signatures.put"
	RouteRecordsGet    = "signet.records.get"
	RouteStatusPut     = "signet.status.put"
	RouteStatusDelete  = "signet.status.delete"
	RouteSignatureDel  = "signet.signature.delete"
	RouteSignaturesDel = "signet.signatures.delete"
	RouteDigestLookup  = "signet.digest.lookup"
	RouteSigstoreGet   = "sigstore.get"
	RouteSigstoreHead  = "sigstore.head"
	RouteBackup        = "signet.backup"
	RouteReferrers     = "v2.referrers"
	RouteHealthz       = "healthz"
	RouteReadyz        = "readyz"
	RouteMetrics       = "metrics"
	RouteV2            = "v2"
)

// route is one row of the route table.
type route struct {
	name   string
	method string
	path   string
	access Access
}

// routeTable is the whole API surface except /v2/, which distribution
// routes itself.
func routeTable() []route {
	// The repository uses distribution's own name grammar.
	name := "{name:" + reference.NameRegexp.String() + "}"
	signaturePath := "/extensions/v2/" + name + "/signatures/{digest}"
	records := "/signet/v1/repositories/" + name + "/signatures/{digest:sha256:[0-9a-f]{64}}"
	one := records + "/{signature}"
	sigstore := "/sigstore/" + name + "@sha256={hex:[0-9a-f]{64}}/signature-{index:[1-9][0-9]{0,6}}"
	return []route{
		{RouteSignaturesGet, http.MethodGet, signaturePath, AccessPull},
		{RouteSignaturesPut, http.MethodPut, signaturePath, AccessSign},
		{RouteRecordsGet, http.MethodGet, records, AccessPull},
		{RouteSignaturesDel, http.MethodDelete, records, AccessAdmin},
		{RouteSignatureDel, http.MethodDelete, one, AccessSign},
		{RouteStatusPut, http.MethodPut, one + "/status", AccessSave},
		{RouteDigestLookup, http.MethodGet, "/signet/v1/digests/{digest}", AccessPull},
		// The registries.d lookaside layout; '@' cannot occur in a name,
		// so the name ends exactly at "@sha256=".
		{RouteSigstoreGet, http.MethodGet, sigstore, AccessPull},
		{RouteSigstoreHead, http.MethodHead, sigstore, AccessPull},
		{RouteBackup, http.MethodGet, "/signet/v1/backup", AccessAdmin},
		// distribution v3 has no referrers route; Signet serves it.
		{RouteReferrers, http.MethodGet, "/v2/" + name + "/referrers/{digest}", AccessPull},
		{RouteStatusDelete, http.MethodDelete, one + "/status", AccessSave},
		{RouteHealthz, http.MethodGet, "/healthz", AccessNone},
		{RouteReadyz, http.MethodGet, "/readyz", AccessNone},
		{RouteMetrics, http.MethodGet, "/metrics", AccessNone},
	}
}
