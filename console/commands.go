package console

import (
	"net/http"
	"regexp"
	"strings"

	"github.com/opencontainers/go-digest"
)

// command is one copyable command line.
type command struct {
	Label string
	Text  string
	Note  string
}

// hostRE accepts a DNS name or IPv4 address with an optional port, or a
// bracketed IPv6 address: shell-safe and a valid reference domain.
var hostRE = regexp.MustCompile(`^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?$`)

// registryHost is the host clients use to reach this server: the
// request's Host header when it is a plain host[:port], else a
// placeholder. Repository names, tags and digests are validated before
// they get here, so every command line is safe to paste into a shell.
func registryHost(r *http.Request) string {
	h := strings.ToLower(r.Host)
	if hostRE.MatchString(h) {
		return h
	}
	return "REGISTRY"
}

// commands are the copyable lines for one image, all pinned to its digest.
func commands(host string, tls bool, repository string, dgst digest.Digest, tag string) []command {
	pinned := host + "/" + repository + "@" + dgst.String()
	identity := pinned
	if tag != "" {
		identity = host + "/" + repository + ":" + tag
	}
	tlsVerify, insecure, cosignHTTP := "", "", ""
	if !tls {
		tlsVerify, insecure, cosignHTTP = " --tls-verify=false", " --insecure", " --allow-http-registry"
	}
	return []command{
		{Label: "skopeo", Text: "skopeo inspect" + tlsVerify + " docker://" + pinned},
		{Label: "podman", Text: "podman pull" + tlsVerify + " " + pinned},
		{
			Label: "signet verify-image-signature",
			Text:  "signet verify-image-signature " + pinned + " --expected-identity " + identity + " --public-key KEY.gpg" + insecure,
			Note:  "Add --save as an auditor to record the outcome here.",
		},
		{
			Label: "cosign verify",
			Text:  "cosign verify --key cosign.pub" + cosignHTTP + " " + pinned,
			Note:  "Keyless: --certificate-identity and --certificate-oidc-issuer instead of --key.",
		},
	}
}
