// Package certreload serves a TLS certificate and key from files and picks
// up new files without a restart (certificate rotation), checking at most
// once per interval during handshakes.
package certreload

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"time"
)

// Reloader holds the current certificate. A pair that fails to load keeps
// the previous one in service and reports the error through LastError.
type Reloader struct {
	certFile, keyFile string
	interval          time.Duration
	now               func() time.Time

	mu        sync.Mutex
	cert      *tls.Certificate
	stamp     string
	checked   time.Time
	lastError error
}

// New loads the pair once; it fails if the first load fails.
func New(certFile, keyFile string, interval time.Duration) (*Reloader, error) {
	r := &Reloader{certFile: certFile, keyFile: keyFile, interval: interval, now: time.Now}
	stamp, err := r.stampFiles()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate: %w", err)
	}
	r.cert, r.stamp, r.checked = &cert, stamp, r.now()
	return r, nil
}

// stampFiles identifies the files' current versions by size and mtime.
func (r *Reloader) stampFiles() (string, error) {
	var stamp string
	for _, p := range []string{r.certFile, r.keyFile} {
		fi, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("stat TLS file: %w", err)
		}
		stamp += fmt.Sprintf("%s:%d:%d;", p, fi.Size(), fi.ModTime().UnixNano())
	}
	return stamp, nil
}

// GetCertificate is for tls.Config.GetCertificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := r.now(); now.Sub(r.checked) >= r.interval {
		r.checked = now
		r.reloadLocked()
	}
	return r.cert, nil
}

func (r *Reloader) reloadLocked() {
	stamp, err := r.stampFiles()
	if err != nil {
		r.lastError = err
		return
	}
	if stamp == r.stamp {
		return
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		// Half-written rotation: keep serving the old pair and try
		// again at the next interval.
		r.lastError = fmt.Errorf("reload TLS certificate: %w", err)
		return
	}
	r.cert, r.stamp, r.lastError = &cert, stamp, nil
}

// LastError reports the most recent failed reload, or nil.
func (r *Reloader) LastError() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastError
}

// ServerConfig is a TLS 1.2+ server configuration using the reloader.
func (r *Reloader) ServerConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.GetCertificate}
}
