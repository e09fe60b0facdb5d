package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestLookasideCommandsRefuseBadArguments: argument mistakes are caught
// before anything is contacted or opened.
func TestLookasideCommandsRefuseBadArguments(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"import without --to", []string{"import-signatures", "registry.example.com/ns/app:v1"}, "--to HOST"},
		{"import with --registry-url", []string{"import-signatures", "registry.example.com/ns/app:v1", "--to", "127.0.0.1:1", "--registry-url", "x"}, "the destination is --to"},
		{"import --repository without --all", []string{"import-signatures", "registry.example.com", "--to", "127.0.0.1:1", "--repository", "ns/**"}, "--repository goes with --all"},
		{"import without images", []string{"import-signatures", "--to", "127.0.0.1:1"}, "requires at least 1 arg"},
		{"import of a bad reference", []string{"import-signatures", "Registry.example.com/NS/app", "--to", "127.0.0.1:1", "--insecure"}, "image \"Registry.example.com/NS/app\""},
		{"import --all with a bad pattern", []string{"import-signatures", "127.0.0.1:1", "--all", "--repository", "NS/**", "--to", "127.0.0.1:1", "--insecure"}, "--repository"},
		{"export with a bad pattern", []string{"export-sigstore", t.TempDir(), "--repository", "ns/[x]"}, "--repository"},
		{"export of a missing database", []string{"export-sigstore", t.TempDir(), "--file", missing}, "no such file"},
		{"export without DIR", []string{"export-sigstore"}, "accepts 1 arg"},
		{"push with neither signing nor import", []string{"push", "docker://registry.example.com/ns/app:v1", "127.0.0.1:1/ns/app:v1"}, "--sign-by or --import-signatures"},
		{"push --import-signatures from a layout", []string{"push", "oci:" + missing + ":v1", "127.0.0.1:1/ns/app:v1", "--import-signatures"}, "needs a docker:// source"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runCLI(t, nil, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want mention of %q\n%s", err, tt.want, out)
			}
		})
	}
}
