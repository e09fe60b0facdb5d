// Package signaturestore owns the model of a stored image signature and the
// Store interface every signature backend implements.
//
// It defines what a signature is (name, type, content, creation time and an
// optional verification status), the domain errors backends return, and the
// limits backends enforce. It must not know about HTTP, wire formats or a
// particular database: handlers translate its errors into error codes, and
// backends (boltstore, and later others) translate their storage into it.
//
// Every backend must pass the conformance suite in storetest.
package signaturestore
