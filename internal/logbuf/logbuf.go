// Package logbuf batches log lines into fewer writes. Writer buffers, as
// nginx's access_log buffer= and flush= do: it is for the access log
// only, since a line may wait up to the flush interval and lines still
// buffered when the process is killed are lost; audit and error records
// must not go through it. Group buffers nothing past the call: it only
// lets records written at the same moment share one write.
package logbuf

import (
	"io"
	"sync"
	"time"
)

// Writer buffers whole writes (one log record each) and passes them on
// when the buffer would overflow, every interval, and on Flush or Close.
type Writer struct {
	mu   sync.Mutex
	w    io.Writer
	buf  []byte
	size int
	err  error

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// New returns a Writer over w holding up to size bytes for at most
// interval.
func New(w io.Writer, size int, interval time.Duration) *Writer {
	b := &Writer{w: w, buf: make([]byte, 0, size), size: size, stop: make(chan struct{}), done: make(chan struct{})}
	go b.loop(interval)
	return b
}

func (b *Writer) loop(interval time.Duration) {
	defer close(b.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			_ = b.Flush()
		}
	}
}

// Write buffers p, which must be one or more whole lines. A record
// larger than the buffer is written through at once.
func (b *Writer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.buf)+len(p) > b.size {
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
	}
	if len(p) > b.size {
		return b.w.Write(p)
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}

// Flush writes out what is buffered.
func (b *Writer) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.flushLocked()
}

func (b *Writer) flushLocked() error {
	if len(b.buf) == 0 {
		return nil
	}
	_, err := b.w.Write(b.buf)
	b.buf = b.buf[:0]
	if err != nil {
		b.err = err
	}
	return err
}

// Close stops the background flushes and flushes what is left.
func (b *Writer) Close() error {
	b.once.Do(func() { close(b.stop) })
	<-b.done
	return b.Flush()
}
