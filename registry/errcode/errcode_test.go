package errcode

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestEveryCodeHasDescriptor(t *testing.T) {
	seen := map[Code]bool{}
	for c := Unknown; c < numCodes; c++ {
		d := c.Descriptor()
		if d.Value == "" || d.Message == "" || d.Status < 400 || d.Status > 599 {
			t.Errorf("code %d has incomplete descriptor %+v", c, d)
		}
		seen[c] = true
	}
	if got := Code(-1).Descriptor(); got.Value != "UNKNOWN" {
		t.Errorf("out-of-range code described as %q", got.Value)
	}
	if got := numCodes.Descriptor(); got.Value != "UNKNOWN" {
		t.Errorf("numCodes described as %q", got.Value)
	}
}

func TestWriteEnvelope(t *testing.T) {
	tests := []struct {
		name       string
		err        Error
		wantStatus int
		wantCode   string
		wantMsg    string
	}{
		{"invalid", SignatureInvalid.WithDetail("bad name"), 400, "SIGNATURE_INVALID", "invalid image signature"},
		{"exists", SignatureExists.WithDetail(nil), 409, "SIGNATURE_EXISTS", "image signature already exists"},
		{"manifest", ManifestUnknown.WithDetail(nil), 404, "MANIFEST_UNKNOWN", "manifest unknown"},
		{"too large", RequestTooLarge.WithMessage("body over %d bytes", 10), 413, "SIZE_INVALID", "body over 10 bytes"},
		{"limit", SignatureLimit.WithDetail(nil), 409, "SIGNATURE_LIMIT", "too many signatures for this image"},
		{"denied", Denied.WithDetail(nil), 403, "DENIED", "requested access to the resource is denied"},
		{"unauthorized", Unauthorized.WithDetail(nil), 401, "UNAUTHORIZED", "authentication required"},
		{"unknown", Unknown.WithDetail(nil), 500, "UNKNOWN", "unknown error"},
		{"storage full", StorageFull.WithDetail(nil), 507, "STORAGE_FULL", "insufficient storage: the registry's disk is full"},
		{"bad gateway", BadGateway.WithDetail(nil), 502, "UNAVAILABLE", "the upstream registry is unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			Write(rec, tt.err)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d", rec.Code, tt.wantStatus)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
				t.Fatalf("content type %q", ct)
			}
			var body struct {
				Errors []struct {
					Code    string          `json:"code"`
					Message string          `json:"message"`
					Detail  json.RawMessage `json:"detail"`
				} `json:"errors"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", rec.Body.String(), err)
			}
			if len(body.Errors) != 1 || body.Errors[0].Code != tt.wantCode || body.Errors[0].Message != tt.wantMsg {
				t.Fatalf("body %s", rec.Body.String())
			}
		})
	}
}

func TestWriteNoErrorsIsUnknown(t *testing.T) {
	rec := httptest.NewRecorder()
	Write(rec)
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status %d", rec.Code)
	}
}
