package auth

import (
	"os"
	"time"
)

// fileStamp identifies one version of a file well enough to notice an
// edit: size, modification time and identity (an atomic rename replaces
// the inode even when size and time happen to match).
type fileStamp struct {
	path    string
	size    int64
	modTime time.Time
	info    os.FileInfo // nil when the file could not be stat'ed
}

func stampOf(path string, info os.FileInfo) fileStamp {
	return fileStamp{path: path, size: info.Size(), modTime: info.ModTime(), info: info}
}

// statStamp stamps path now; a missing or unreadable file gets a stamp
// with no info, equal to any other such stamp of the same path.
func statStamp(path string) fileStamp {
	info, err := os.Stat(path)
	if err != nil {
		return fileStamp{path: path}
	}
	return stampOf(path, info)
}

func (s fileStamp) equal(o fileStamp) bool {
	if s.path != o.path || (s.info == nil) != (o.info == nil) {
		return false
	}
	if s.info == nil {
		return true
	}
	return s.size == o.size && s.modTime.Equal(o.modTime) && os.SameFile(s.info, o.info)
}
