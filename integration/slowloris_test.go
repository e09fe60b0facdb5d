package integration

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestSlowHeaderAttack: 1,000 connections dribbling request headers do
// not stop normal requests, and the server cuts them off after its
// header timeout.
func TestSlowHeaderAttack(t *testing.T) {
	tmp := t.TempDir()
	cfgFile := filepath.Join(tmp, "signet.yaml")
	if err := os.WriteFile(cfgFile, []byte("version: 1\nserver:\n  readHeaderTimeout: 2s\nlog:\n  accessLog: false\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, filepath.Join(tmp, "data"), "--config", cfgFile)

	const attackers = 1000
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		closed int
	)
	stop := make(chan struct{})
	for i := 0; i < attackers; i++ {
		c, err := net.DialTimeout("tcp", s.addr, 5*time.Second)
		if err != nil {
			t.Fatalf("attacker %d could not connect: %v", i, err)
		}
		wg.Add(1)
		go func(c net.Conn) {
			defer wg.Done()
			defer c.Close()
			if _, err := c.Write([]byte("GET /v2/ HTTP/1.1\r\nHost: x\r\n")); err != nil {
				return
			}
			tick := time.NewTicker(200 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if _, err := c.Write([]byte("X-Slow: a\r\n")); err != nil {
						mu.Lock()
						closed++
						mu.Unlock()
						return
					}
				}
			}
		}(c)
	}
	// Normal clients keep being served while the attack runs.
	client := &http.Client{Timeout: 5 * time.Second}
	for i := 0; i < 20; i++ {
		resp, err := client.Get(s.url("/v2/"))
		if err != nil {
			t.Fatalf("normal request %d during the attack: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("normal request %d: status %d", i, resp.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// After the header timeout the server has dropped the attackers.
	deadline := time.Now().Add(8 * time.Second)
	for {
		mu.Lock()
		n := closed
		mu.Unlock()
		if n >= attackers*9/10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d slow connections were cut off", n, attackers)
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
}
