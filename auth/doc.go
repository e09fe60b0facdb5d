// Package auth is Signet's access control: who the caller is, and whether
// that caller may perform an access on a repository.
//
// It owns the users file (users, bcrypt passwords, hashed API tokens and
// per-repository role grants, optionally with an htpasswd file beside it),
// its validation, its reloading, the parsing of the Authorization header,
// and the one decision function, Authorizer.Authorize, that the registry
// front calls for every route.
//
// It must not know what exists: a decision is made from the credentials,
// the repository name and the grant patterns only, never from a lookup of
// the repository or image (SPEC §1: 401/403 before 404). It must not write
// HTTP responses (the front does, from the errcode.Error returned) and it
// must never log or return secrets: errors name users, token ids and
// patterns, never passwords, tokens or hashes.
//
// Users file, version 1 (all paths relative to the users file):
//
//	version: 1
//	htpasswd: ./htpasswd            # optional
//	users:
//	  alice:
//	    password: "$2y$10$..."      # optional bcrypt hash
//	    tokens:
//	      - id: 3f9c0a1b5d7e2c4a
//	        sha256: "<64 hex>"      # sha256 of the whole token string
//	        created: 2026-11-22T00:00:00Z
//	        expires: 2027-11-22T00:00:00Z   # optional
//	        description: ci             # optional
//	        revoked: false              # optional
//	grants:
//	  - repositories: ["team-a/**"]
//	    users: [alice]
//	    roles: [reader, signer]
//	  - repositories: ["public/**"]
//	    anonymous: true
//	    roles: [reader]
//
// See File for the meaning of every field.
package auth
