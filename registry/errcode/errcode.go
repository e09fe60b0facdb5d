// Package errcode is Signet's one registry of HTTP error codes.
//
// Every error Signet sends over HTTP is one of the Codes below, and each Code
// carries its own status and default message, so handlers never choose a
// status number. The wire format is distribution's error envelope:
//
//	{"errors":[{"code":"SIGNATURE_INVALID","message":"invalid image signature","detail":...}]}
//
// The table is immutable: there is no registration at run time.
package errcode

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// Code identifies one kind of API error.
type Code int

// The codes. The distribution codes keep distribution's values so clients
// that switch on them keep working.
const (
	Unknown Code = iota
	Unsupported
	Unauthorized
	Denied
	Unavailable
	TooManyRequests
	NameInvalid
	NameUnknown
	ManifestUnknown
	DigestInvalid
	SignatureInvalid
	SignatureExists
	SignatureUnknown
	SignatureLimit
	RequestTooLarge
	MethodNotAllowed
	NotFound
	StorageFull
	BadGateway
	StoreUnavailable
	numCodes
)

// Descriptor describes a Code: its wire value, default message and status.
type Descriptor struct {
	Value   string
	Message string
	Status  int
}

// descriptors is indexed by Code. It is a value, never modified.
var descriptors = [numCodes]Descriptor{
	Unknown:          {"UNKNOWN", "unknown error", http.StatusInternalServerError},
	Unsupported:      {"UNSUPPORTED", "the operation is unsupported", http.StatusMethodNotAllowed},
	Unauthorized:     {"UNAUTHORIZED", "authentication required", http.StatusUnauthorized},
	Denied:           {"DENIED", "requested access to the resource is denied", http.StatusForbidden},
	Unavailable:      {"UNAVAILABLE", "service unavailable", http.StatusServiceUnavailable},
	TooManyRequests:  {"TOOMANYREQUESTS", "too many requests", http.StatusTooManyRequests},
	NameInvalid:      {"NAME_INVALID", "invalid repository name", http.StatusBadRequest},
	NameUnknown:      {"NAME_UNKNOWN", "repository name not known to registry", http.StatusNotFound},
	ManifestUnknown:  {"MANIFEST_UNKNOWN", "manifest unknown", http.StatusNotFound},
	DigestInvalid:    {"DIGEST_INVALID", "provided digest did not match uploaded content", http.StatusBadRequest},
	SignatureInvalid: {"SIGNATURE_INVALID", "invalid image signature", http.StatusBadRequest},
	SignatureExists:  {"SIGNATURE_EXISTS", "image signature already exists", http.StatusConflict},
	SignatureUnknown: {"SIGNATURE_UNKNOWN", "image signature unknown", http.StatusNotFound},
	SignatureLimit:   {"SIGNATURE_LIMIT", "too many signatures for this image", http.StatusConflict},
	RequestTooLarge:  {"SIZE_INVALID", "request body too large", http.StatusRequestEntityTooLarge},
	MethodNotAllowed: {"UNSUPPORTED", "method not allowed", http.StatusMethodNotAllowed},
	NotFound:         {"NOT_FOUND", "not found", http.StatusNotFound},
	// 507 (RFC 4918 section 11.5): the request was fine, the disk is
	// not; retrying once space is freed succeeds, so it is not a 500.
	StorageFull: {"STORAGE_FULL", "insufficient storage: the registry's disk is full", http.StatusInsufficientStorage},
	// Proxy mode: the upstream registry did not answer. distribution's
	// UNAVAILABLE code, with the gateway's own status.
	BadGateway: {"UNAVAILABLE", "the upstream registry is unavailable", http.StatusBadGateway},
	// A networked signature store (etcd) cannot be reached or has no
	// quorum. The request was fine; the same request succeeds once the
	// store is back, without restarting Signet.
	StoreUnavailable: {"UNAVAILABLE", "signature store unavailable; retry later", http.StatusServiceUnavailable},
}

// Descriptor returns the code's descriptor; an out-of-range code describes
// as Unknown.
func (c Code) Descriptor() Descriptor {
	if c < 0 || c >= numCodes {
		return descriptors[Unknown]
	}
	return descriptors[c]
}

// Status is the HTTP status the code is sent with.
func (c Code) Status() int { return c.Descriptor().Status }

func (c Code) String() string { return c.Descriptor().Value }

// WithDetail returns an Error of this code with the default message.
func (c Code) WithDetail(detail any) Error {
	return Error{Code: c, Message: c.Descriptor().Message, Detail: detail}
}

// WithMessage returns an Error of this code with a specific message.
func (c Code) WithMessage(format string, args ...any) Error {
	return Error{Code: c, Message: fmt.Sprintf(format, args...)}
}

// Error is one API error.
type Error struct {
	Code    Code
	Message string
	Detail  any
}

func (e Error) Error() string {
	return fmt.Sprintf("%s: %s", e.Code.Descriptor().Value, e.Message)
}

type wireError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

type envelope struct {
	Errors []wireError `json:"errors"`
}

// Write sends errs in distribution's envelope with the status of the first
// error. It must be called before anything else is written to w.
func Write(w http.ResponseWriter, errs ...Error) {
	if len(errs) == 0 {
		errs = []Error{Unknown.WithDetail(nil)}
	}
	body := envelope{Errors: make([]wireError, len(errs))}
	for i, e := range errs {
		msg := e.Message
		if msg == "" {
			msg = e.Code.Descriptor().Message
		}
		body.Errors[i] = wireError{Code: e.Code.Descriptor().Value, Message: msg, Detail: e.Detail}
	}
	buf, err := json.Marshal(body)
	if err != nil {
		// Details are ours and always marshal; fall back to a bare
		// envelope rather than a half-written body.
		buf = []byte(`{"errors":[{"code":"UNKNOWN","message":"unknown error"}]}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(errs[0].Code.Status())
	_, _ = w.Write(buf)
}
