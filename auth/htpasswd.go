package auth

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// htpasswdEntry is one "user:hash" line.
type htpasswdEntry struct {
	file string
	line int
	user string
	hash string
}

// parseHtpasswd reads Apache htpasswd lines. Blank lines and lines
// starting with '#' are skipped. Hashes are checked later, with the users
// file, so every problem is reported with its line.
func parseHtpasswd(path string, data []byte) ([]htpasswdEntry, error) {
	var (
		entries []htpasswdEntry
		errs    []error
		seen    = make(map[string]int)
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxFileBytes)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" || hash == "" {
			errs = append(errs, &FileError{File: path, Line: n, Err: errors.New(`want "user:bcrypt-hash"`)})
			continue
		}
		if prev, dup := seen[user]; dup {
			errs = append(errs, &FileError{File: path, Line: n, Field: user, Err: fmt.Errorf("user already defined on line %d", prev)})
			continue
		}
		seen[user] = n
		entries = append(entries, htpasswdEntry{file: path, line: n, user: user, hash: hash})
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, &FileError{File: path, Err: err})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return entries, nil
}
