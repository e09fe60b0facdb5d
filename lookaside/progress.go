package lookaside

import (
	"fmt"
	"io"
	"strings"
)

// Progress reports an import as it runs: on a terminal one line redrawn
// in place with a bar, elsewhere (logs, CI) one line per image. Both carry
// the running counts. A nil *Progress reports nothing.
type Progress struct {
	w      io.Writer
	tty    bool
	total  int
	images int
	// signatures handled so far, in finished images and in the current one.
	sigs, failed, added, skipped int
}

// NewProgress reports to w about total images; tty selects the redrawn
// bar.
func NewProgress(w io.Writer, tty bool, total int) *Progress {
	return &Progress{w: w, tty: tty, total: total}
}

const barWidth = 24

func (p *Progress) bar() {
	done := 0
	if p.total > 0 {
		done = min(barWidth, p.images*barWidth/p.total)
	}
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d images, %d signatures: %d added, %d skipped, %d failed images\x1b[K",
		strings.Repeat("#", done), strings.Repeat(".", barWidth-done), p.images, p.total, p.sigs, p.added, p.skipped, p.failed)
}

func (p *Progress) signature() {
	if p == nil {
		return
	}
	p.sigs++
	if p.tty {
		p.bar()
	}
}

func (p *Progress) image(r Result) {
	if p == nil {
		return
	}
	p.images++
	p.added += r.Added
	p.skipped += r.Skipped
	name := r.Image
	if r.Digest != "" && !strings.Contains(name, "@") {
		name += "@" + r.Digest.String()
	}
	line := fmt.Sprintf("%s: %d found, %d added, %d skipped", name, r.Found, r.Added, r.Skipped)
	if r.Repository != "" {
		line += " (into " + r.Repository + ")"
	}
	if r.Err != nil {
		p.failed++
		line = name + ": error: " + r.Err.Error()
	}
	if !p.tty {
		fmt.Fprintf(p.w, "[%d/%d] %s; total %d added, %d skipped\n", p.images, p.total, line, p.added, p.skipped)
		return
	}
	if r.Err != nil {
		// Errors stay on screen above the bar.
		fmt.Fprintf(p.w, "\r%s\x1b[K\n", line)
	}
	p.bar()
}

// Finish ends the bar's line.
func (p *Progress) Finish() {
	if p != nil && p.tty {
		fmt.Fprintln(p.w)
	}
}
