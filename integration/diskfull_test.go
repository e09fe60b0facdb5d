package integration

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// mountTmpfs mounts a tmpfs of size bytes on a new directory and
// unmounts it when the test ends.
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the disk-full test mounts a small tmpfs, which needs root; CI runs as root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs on %s: %v: %s", dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fillDisk writes a file in dir until the file system is full.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, chunk := range []int{1 << 20, 4 << 10, 256} {
		buf := make([]byte, chunk)
		for {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("fill %s: %v", dir, err)
				}
				break
			}
		}
	}
	return p
}

// wantStorageFull fails unless r is 507 with a STORAGE_FULL JSON error.
func wantStorageFull(t *testing.T, what string, r reply) {
	t.Helper()
	if r.status != http.StatusInsufficientStorage || errorCodeOf(r.body) != "STORAGE_FULL" ||
		r.header.Get("Content-Type") != "application/json; charset=utf-8" {
		t.Fatalf("%s on a full disk: %d %s %q; want 507 STORAGE_FULL JSON", what, r.status, r.header.Get("Content-Type"), r.body)
	}
}

// TestDiskFull runs the data directory on a 16 MiB tmpfs and fills it.
// Signature PUTs get 507 STORAGE_FULL (never a 500) and store nothing;
// reads carry on; blob uploads, chunked uploads and manifest PUTs also
// get 507; after space is freed every write succeeds again without a
// restart, and the database passes signet check.
func TestDiskFull(t *testing.T) {
	mnt := mountTmpfs(t, 16<<20)
	tmp := t.TempDir()
	cfg := writeConfig(t, tmp, "log:\n  accessLog: false\n")
	dataDir := filepath.Join(mnt, "data")
	s := startServer(t, dataDir, "--config", cfg)
	base := "http://" + s.addr
	c := newHTTPClient(4, 0)

	img, err := pushImage(c, base, "full/app", "v1", 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	sigURL := base + "/extensions/v2/full/app/signatures/" + img.digest
	stored := map[string][]byte{}
	for range 3 {
		name, content, body := newSignature(img.digest, 512)
		if r, err := send(c, "PUT", sigURL, body, nil); err != nil || r.status != http.StatusCreated {
			t.Fatalf("PUT before filling: %v %d %s", err, r.status, r.body)
		}
		stored[name] = content
	}

	filler := fillDisk(t, mnt)

	// Signature PUTs: 8 KiB each, so they need fresh pages and the free
	// list cannot absorb them for long. Each is 201 or 507, nothing else.
	var refused [][]byte
	var refusedNames []string
	for i := 0; i < 200 && len(refused) < 5; i++ {
		name, content, body := newSignature(img.digest, 8<<10)
		r, err := send(c, "PUT", sigURL, body, nil)
		if err != nil {
			t.Fatal(err)
		}
		switch r.status {
		case http.StatusCreated:
			stored[name] = content
		case http.StatusInsufficientStorage:
			wantStorageFull(t, "signature PUT", r)
			refused = append(refused, body)
			refusedNames = append(refusedNames, name)
		default:
			t.Fatalf("signature PUT on a full disk: %d %s; want 201 or 507", r.status, r.body)
		}
	}
	if len(refused) == 0 {
		t.Fatal("no signature PUT was refused on a full disk")
	}
	// Reads carry on, and show exactly what was acknowledged: no partial
	// record of a refused PUT.
	sigs, err := listSignatures(c, base, "full/app", img.digest)
	if err != nil {
		t.Fatalf("read on a full disk: %v", err)
	}
	if len(sigs) != len(stored) {
		t.Fatalf("full disk: %d signatures listed, %d acknowledged", len(sigs), len(stored))
	}
	for _, sg := range sigs {
		if string(stored[sg.Name]) != string(sg.Content) {
			t.Fatalf("full disk: %s listed but not as acknowledged", sg.Name)
		}
	}
	if err := verifyImage(c, base, img); err != nil {
		t.Fatalf("image read on a full disk: %v", err)
	}

	// Registry writes: starting an upload, a monolithic and a chunked
	// upload, and a manifest PUT. distribution answers these with a
	// 500; Signet sends 507.
	r, err := send(c, "POST", base+"/v2/full/app/blobs/uploads/", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantStorageFull(t, "upload start", r)
	manifest := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[],"annotations":{"full":"yes"}}`,
		ociManifestType, firstConfig(img), len(img.blobs[firstConfig(img)])))
	r, err = send(c, "PUT", base+"/v2/full/app/manifests/v2", manifest, map[string]string{"Content-Type": ociManifestType})
	if err != nil {
		t.Fatal(err)
	}
	wantStorageFull(t, "manifest PUT", r)

	// Free a little: an upload can start but its body does not fit.
	if err := os.Truncate(filler, max(0, fileSize(t, filler)-256<<10)); err != nil {
		t.Fatal(err)
	}
	r, err = send(c, "POST", base+"/v2/full/app/blobs/uploads/", nil, nil)
	if err != nil || r.status != http.StatusAccepted {
		t.Fatalf("upload start with 256 KiB free: %v %d %s", err, r.status, r.body)
	}
	loc, err := uploadURL(base, r.header.Get("Location"), nil)
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 2<<20)
	r, err = send(c, "PATCH", loc, big, map[string]string{"Content-Type": "application/octet-stream"})
	if err != nil {
		t.Fatal(err)
	}
	wantStorageFull(t, "chunk upload", r)
	// The client gives up on that upload: it asks where the upload stands
	// (the failed chunk left part of its data) and cancels it, which
	// frees the partial data.
	r, err = send(c, "GET", loc, nil, nil)
	if err != nil || r.status != http.StatusNoContent {
		t.Fatalf("status of the failed upload: %v %d %s", err, r.status, r.body)
	}
	if loc, err = uploadURL(base, r.header.Get("Location"), nil); err != nil {
		t.Fatal(err)
	}
	if r, err := send(c, "DELETE", loc, nil, nil); err != nil || r.status != http.StatusNoContent {
		t.Fatalf("cancel the failed upload: %v %d %s", err, r.status, r.body)
	}

	// Space comes back: the refused writes go through, no restart.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for i, body := range refused {
		r, err := send(c, "PUT", sigURL, body, nil)
		if err != nil || r.status != http.StatusCreated {
			t.Fatalf("signature PUT after freeing space: %v %d %s", err, r.status, r.body)
		}
		stored[refusedNames[i]] = nil
	}
	if sigs, err := listSignatures(c, base, "full/app", img.digest); err != nil || len(sigs) != len(stored) {
		t.Fatalf("after freeing space: %d signatures listed (%v), %d acknowledged", len(sigs), err, len(stored))
	}
	if _, err := pushImage(c, base, "full/app", "v3", 1<<20); err != nil {
		t.Fatalf("push after freeing space: %v", err)
	}
	r, err = send(c, "PUT", base+"/v2/full/app/manifests/v2", manifest, map[string]string{"Content-Type": ociManifestType})
	if err != nil || r.status != http.StatusCreated {
		t.Fatalf("manifest PUT after freeing space: %v %d %s", err, r.status, r.body)
	}
	// The operator sees why: both paths log the full disk.
	for _, want := range []string{"registry storage full", "signature store out of disk space"} {
		if !strings.Contains(s.logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, s.logs.String())
		}
	}
	if err := s.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("clean stop: %v\n%s", err, s.logs.String())
	}
	t.Logf("disk full: %d signature PUTs refused with 507, store intact: %s", len(refused), mustCheck(t, dataDir))
}

func firstConfig(img *testImage) string {
	for d, b := range img.blobs {
		if len(b) < 1024 { // the config; the layer is bigger
			return d
		}
	}
	return ""
}

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
