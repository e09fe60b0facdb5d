// Package console is Signet's read-only web console, served under /ui/:
// the repository list (search, pagination), one repository's tags with a
// signature badge each, and one image's manifest summary with every
// signature and its recorded verification status.
//
// It owns the pages (html/template, embedded with the stylesheet and one
// small script), the console's login sessions (server-side, random ids,
// bounded in number, expiring) and the security headers of its responses
// (a Content-Security-Policy without inline script).
//
// Everything it reads comes through three small interfaces its caller
// supplies: Registry (repositories, tags, manifests, blobs, referrers),
// Signatures (the stored GPG signatures with their status records) and
// Users (login and per-repository pull access). It must not write to any
// of them, must not decide who may see what except by asking Users (the
// decision is made before anything is looked up), and must not trust what
// it displays: repository names, tags, annotations, signed identities,
// certificate identities and status texts are attacker-controlled, are
// escaped by html/template, and claims read from a signature without
// verifying it are labelled as claimed.
package console
