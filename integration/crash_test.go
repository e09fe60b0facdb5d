package integration

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// crashConfig lets one image hold enough signatures for a round of
// writes, and keeps the access log (thousands of lines a round) out.
const crashConfig = "signatures:\n  maxPerImage: 1024\n  maxBytesPerImage: 2097152\nlog:\n  accessLog: false\n"

const (
	crashWriters         = 32
	crashMaxKillDelay    = 2 * time.Second
	crashPerWriterRound  = 1000 // stays under maxPerImage
	crashMinContent      = 64
	crashMaxContent      = 512
	crashRequestTimeout  = 10 * time.Second
	crashDefaultRounds   = 20
	crashDefaultPushRuns = 5
)

// crashImage is one image the crash test signs: one per writer per round.
// Its writer alone touches attempted while the round runs; the test reads
// both maps only after the writers are done.
type crashImage struct {
	repo, digest string
	// attempted is every signature the writer sent: name -> content.
	attempted map[string][]byte
	// ackLog is the writer's log of 201s, fsynced after each one;
	// acked is what it held after the crash.
	ackLog string
	acked  map[string]bool
	// deleteSent: a DELETE of the manifest was sent. deleteAcked: it
	// got 202, so the manifest and its signatures must be gone.
	deleteSent, deleteAcked bool
}

// readAcks reads the image's writer log: the names that got 201.
func (img *crashImage) readAcks() error {
	img.acked = map[string]bool{}
	f, err := os.Open(img.ackLog)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name := sc.Text()
		if _, ok := img.attempted[name]; !ok {
			return fmt.Errorf("writer log %s names %s, which its writer never sent", img.ackLog, name)
		}
		img.acked[name] = true
	}
	return sc.Err()
}

// crashStats counts what a verification saw.
type crashStats struct {
	listed, acked, unackedCommitted int
}

func (a *crashStats) add(b crashStats) {
	a.listed += b.listed
	a.acked += b.acked
	a.unackedCommitted += b.unackedCommitted
}

// verifySigned checks the crash-consistency properties for imgs: every
// acknowledged signature is listed with the exact bytes sent, and every
// listed signature is one the image's writer sent, byte for byte (so no
// partial or foreign record is visible).
func verifySigned(c *http.Client, base string, imgs []*crashImage) (crashStats, error) {
	var st crashStats
	for _, img := range imgs {
		sigs, err := listSignatures(c, base, img.repo, img.digest)
		if err != nil {
			return st, err
		}
		listed := map[string]bool{}
		for _, s := range sigs {
			content, ok := img.attempted[s.Name]
			switch {
			case !ok:
				return st, fmt.Errorf("%s@%s lists %s, which its writer never sent", img.repo, img.digest, s.Name)
			case !bytes.Equal(content, s.Content) || s.Type != "atomic" || s.SchemaVersion != 2:
				return st, fmt.Errorf("%s@%s: %s differs from what was sent (%d bytes stored, %d sent, type %q)", img.repo, img.digest, s.Name, len(s.Content), len(content), s.Type)
			case listed[s.Name]:
				return st, fmt.Errorf("%s@%s lists %s twice", img.repo, img.digest, s.Name)
			}
			listed[s.Name] = true
			if !img.acked[s.Name] {
				st.unackedCommitted++
			}
		}
		for name := range img.acked {
			if !listed[name] {
				return st, fmt.Errorf("%s@%s: acknowledged signature %s is lost", img.repo, img.digest, name)
			}
		}
		st.listed += len(sigs)
		st.acked += len(img.acked)
	}
	return st, nil
}

// TestCrashConsistency: rounds of 32 concurrent signature writers, plus
// a deleter removing older images (which takes their signatures with
// them), and a kill -9 at a random moment. After every crash: signet
// check passes on the data directory; the server starts and answers;
// every acknowledged signature is readable and byte-identical; nothing
// unacknowledged is visible except whole signatures exactly as a writer
// sent them; an acknowledged manifest delete took its signatures along,
// and an interrupted one either did or left everything in place (the
// stored-signature count equals what the live images list, so no orphan
// hides in the database).
//
// Images live for three rounds: written in round r, verified in full
// after the crashes of rounds r and r+1, deleted during round r+2. That
// keeps the database, and each round's checks, the same size however
// many rounds run.
//
// SIGNET_CRASH_ROUNDS sets the rounds (20 by default; make reliability
// runs 200), SIGNET_CRASH_SEED replays a run's kill schedule.
func TestCrashConsistency(t *testing.T) {
	tmp := t.TempDir()
	runCrashRounds(t, tmp, envInt(t, "SIGNET_CRASH_ROUNDS", shortOr(crashDefaultRounds, 3)), &killCrash{dir: filepath.Join(tmp, "data")})
}

// crashMethod is how a round ends: a process kill, or a power cut.
type crashMethod interface {
	// name says what the method does, for messages.
	name() string
	// dataDir is where the next server start finds its data.
	dataDir() string
	// crash ends s abruptly at once.
	crash(t *testing.T, s *server)
}

// killCrash is kill -9: the process dies, the kernel's page cache (and
// so every write the process made, synced or not) survives.
type killCrash struct{ dir string }

func (k *killCrash) name() string    { return "kill -9" }
func (k *killCrash) dataDir() string { return k.dir }
func (k *killCrash) crash(t *testing.T, s *server) {
	t.Helper()
	if err := s.stop(syscall.SIGKILL); err == nil {
		t.Fatal("server exited cleanly instead of being killed")
	}
}

// crashSeed is SIGNET_CRASH_SEED, or a fresh seed.
func crashSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("SIGNET_CRASH_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("SIGNET_CRASH_SEED=%q: %v", v, err)
		}
	}
	return seed
}

// runCrashRounds is the crash-consistency loop shared by the kill -9
// and the power-cut tests.
func runCrashRounds(t *testing.T, tmp string, rounds int, method crashMethod) {
	seed := crashSeed(t)
	t.Logf("%s test: %d rounds, seed %d (SIGNET_CRASH_SEED=%d replays the schedule)", method.name(), rounds, seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	cfg := writeConfig(t, tmp, crashConfig)
	logDir := filepath.Join(tmp, "acks")
	if err := os.Mkdir(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	c := newHTTPClient(crashWriters+1, crashRequestTimeout)
	var (
		prev, prev2 []*crashImage // the last two rounds' images
		doomed      []*crashImage // older images whose delete is not acknowledged yet
		killDelays  []time.Duration
		total       crashStats
		s           *server
	)
	var deletesAcked, deletesInterrupted, deletesCompleted, sent, logged int
	start := time.Now()

	for round := 0; ; round++ {
		if round > 0 {
			mustCheck(t, method.dataDir())
		}
		s = startServer(t, method.dataDir(), "--config", cfg)
		base := "http://" + s.addr
		if r, err := send(c, "GET", base+"/readyz", nil, nil); err != nil || r.status != http.StatusOK {
			t.Fatalf("round %d: not ready after restart: %v %d", round, err, r.status)
		}
		// The last round's writes, seen for the first time after their
		// crash, and the round before, seen for the second time.
		st, err := verifySigned(c, base, prev)
		if err != nil {
			t.Fatalf("round %d, after restart: %v", round, err)
		}
		total.add(st)
		listed := st.listed
		st, err = verifySigned(c, base, prev2)
		if err != nil {
			t.Fatalf("round %d, after restart: %v", round, err)
		}
		listed += st.listed
		// Images being deleted: gone entirely, or (delete interrupted
		// before the manifest went) still whole.
		var survivors []*crashImage
		for _, img := range doomed {
			r, err := send(c, "GET", base+"/v2/"+img.repo+"/manifests/"+img.digest, nil, map[string]string{"Accept": ociManifestType})
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case r.status == http.StatusNotFound:
				if !img.deleteAcked {
					deletesCompleted++
				}
				if !img.deleteSent {
					t.Fatalf("round %d: %s@%s vanished without a delete", round, img.repo, img.digest)
				}
				img.attempted, img.acked = nil, nil // gone for good
				if r, err := send(c, "GET", base+"/extensions/v2/"+img.repo+"/signatures/"+img.digest, nil, nil); err != nil || r.status != http.StatusNotFound {
					t.Fatalf("round %d: signatures of deleted %s@%s still served: %v %d", round, img.repo, img.digest, err, r.status)
				}
			case r.status == http.StatusOK && img.deleteAcked:
				t.Fatalf("round %d: %s@%s is back after its delete was acknowledged", round, img.repo, img.digest)
			case r.status == http.StatusOK:
				st, err := verifySigned(c, base, []*crashImage{img})
				if err != nil {
					t.Fatalf("round %d, interrupted delete: %v", round, err)
				}
				listed += st.listed
				if img.deleteSent {
					deletesInterrupted++
				}
				img.deleteSent = false
				survivors = append(survivors, img)
			default:
				t.Fatalf("round %d: GET manifest %s@%s: %d %s", round, img.repo, img.digest, r.status, r.body)
			}
		}
		// Nothing else is stored: no signature of a deleted image
		// survived, no record hides where no list shows it.
		m, err := metricsOf(c, base, "signet_signatures_stored")
		if err != nil {
			t.Fatal(err)
		}
		if got := int(m["signet_signatures_stored"]); got != listed {
			t.Fatalf("round %d: the store holds %d signatures, the live images list %d", round, got, listed)
		}
		if round == rounds {
			break
		}

		imgs := pushCrashImages(t, c, base, round)
		doomed = append(survivors, prev2...)
		prev, prev2 = imgs, prev

		var killed atomic.Bool
		var wg sync.WaitGroup
		failures := make(chan error, crashWriters+1)
		for w, img := range imgs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				img.ackLog = filepath.Join(logDir, fmt.Sprintf("r%03d-w%02d.log", round, w))
				if err := crashWriter(c, base, img, &killed); err != nil {
					failures <- fmt.Errorf("writer %d: %w", w, err)
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, img := range doomed {
				img.deleteSent = true
				r, err := send(c, "DELETE", base+"/v2/"+img.repo+"/manifests/"+img.digest, nil, nil)
				if err != nil {
					if !killed.Load() {
						failures <- fmt.Errorf("deleter before the kill: %w", err)
					}
					return
				}
				if r.status != http.StatusAccepted {
					failures <- fmt.Errorf("DELETE %s@%s: %d %s", img.repo, img.digest, r.status, r.body)
					return
				}
				img.deleteAcked = true
			}
		}()
		delay := time.Duration(rng.Int64N(int64(crashMaxKillDelay)))
		killDelays = append(killDelays, delay)
		time.Sleep(delay)
		killed.Store(true)
		method.crash(t, s)
		wg.Wait()
		close(failures)
		for err := range failures {
			t.Fatalf("round %d: %v", round, err)
		}
		for _, img := range doomed {
			if img.deleteAcked {
				deletesAcked++
			}
		}
		// What the writers were told, from their logs.
		for _, img := range imgs {
			if err := img.readAcks(); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			sent += len(img.attempted)
			logged += len(img.acked)
		}
	}

	if err := s.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("clean stop: %v\n%s", err, s.logs.String())
	}
	summary := mustCheck(t, method.dataDir())
	slices.Sort(killDelays)
	if total.acked != logged {
		t.Fatalf("verified %d acknowledged signatures after their crash, the logs hold %d", total.acked, logged)
	}
	t.Logf("%s test passed: %d rounds in %v; crash after %v..%v (median %v); %d signatures sent, %d acknowledged "+
		"(every one read back intact after its crash), %d committed but unacknowledged (whole and byte-identical), "+
		"%d in flight at the crash and not stored; %d manifest deletes acknowledged (manifest and signatures gone), %d unacknowledged deletes found complete, "+
		"%d interrupted deletes found not done (manifest and signatures intact, retried); %s",
		method.name(), rounds, time.Since(start).Round(time.Second), killDelays[0].Round(time.Millisecond), killDelays[len(killDelays)-1].Round(time.Millisecond),
		killDelays[len(killDelays)/2].Round(time.Millisecond), sent, total.acked, total.unackedCommitted, sent-total.listed,
		deletesAcked, deletesCompleted, deletesInterrupted, summary)
}

// pushCrashImages pushes one image per writer for a round.
func pushCrashImages(t *testing.T, c *http.Client, base string, round int) []*crashImage {
	t.Helper()
	imgs := make([]*crashImage, crashWriters)
	var wg sync.WaitGroup
	errs := make(chan error, crashWriters)
	for w := range crashWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			repo := fmt.Sprintf("crash/r%03d/w%02d", round, w)
			img, err := pushImage(c, base, repo, "v1", 256)
			if err != nil {
				errs <- fmt.Errorf("push %s: %w", repo, err)
				return
			}
			imgs[w] = &crashImage{repo: repo, digest: img.digest, attempted: map[string][]byte{}}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("round %d: %v", round, err)
	}
	return imgs
}

// crashWriter PUTs unique signatures to img until the server dies (or
// the per-round cap). Every 201 is appended to logPath and fsynced before
// the next PUT. A transport error is expected only once the kill was
// decided; any answer but 201 is a failure.
func crashWriter(c *http.Client, base string, img *crashImage, killed *atomic.Bool) error {
	f, err := os.OpenFile(img.ackLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	u := base + "/extensions/v2/" + img.repo + "/signatures/" + img.digest
	for range crashPerWriterRound {
		name, content, body := newSignature(img.digest, crashMinContent+rand.IntN(crashMaxContent-crashMinContent))
		img.attempted[name] = content
		r, err := send(c, "PUT", u, body, map[string]string{"Content-Type": "application/json"})
		if err != nil {
			if killed.Load() {
				return nil
			}
			return fmt.Errorf("PUT before the kill: %w", err)
		}
		if r.status != http.StatusCreated {
			return fmt.Errorf("PUT %s: %d %s", name, r.status, r.body)
		}
		if _, err := io.WriteString(f, name+"\n"); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
	}
	return nil
}

// TestCrashDuringPush: kill -9 while a blob upload is mid-body, then
// while pushers push whole images. After each restart the registry
// passes signet check, serves every image that was acknowledged byte for
// byte, lets the client resume the interrupted upload from the offset the
// server reports, and takes new and restarted pushes.
func TestCrashDuringPush(t *testing.T) {
	tmp := t.TempDir()
	dataDir := filepath.Join(tmp, "data")
	cfg := writeConfig(t, tmp, "log:\n  accessLog: false\n")
	c := newHTTPClient(8, 30*time.Second)

	// 1. Killed in the middle of a chunk.
	s := startServer(t, dataDir, "--config", cfg)
	base := "http://" + s.addr
	const repo = "crash/push"
	blob := make([]byte, 3<<20)
	for i := range blob {
		blob[i] = byte(i * 7 % 251)
	}
	r, err := send(c, "POST", base+"/v2/"+repo+"/blobs/uploads/", nil, nil)
	if err != nil || r.status != http.StatusAccepted {
		t.Fatalf("start upload: %v %d %s", err, r.status, r.body)
	}
	loc, err := uploadURL(base, r.header.Get("Location"), nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err = send(c, "PATCH", loc, blob[:1<<20], map[string]string{"Content-Type": "application/octet-stream"})
	if err != nil || r.status != http.StatusAccepted {
		t.Fatalf("first chunk: %v %d %s", err, r.status, r.body)
	}
	if loc, err = uploadURL(base, r.header.Get("Location"), nil); err != nil {
		t.Fatal(err)
	}
	// The second chunk: half of it arrives, then the server dies.
	pr, pw := io.Pipe()
	req, err := http.NewRequest("PATCH", loc, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	patchDone := make(chan error, 1)
	go func() {
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("PATCH answered %d", resp.StatusCode)
		}
		patchDone <- err
	}()
	if _, err := pw.Write(blob[1<<20 : 1<<20+512<<10]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // let the server write what it has
	if err := s.stop(syscall.SIGKILL); err == nil {
		t.Fatal("server exited cleanly instead of being killed")
	}
	_ = pw.CloseWithError(errors.New("server killed"))
	if err := <-patchDone; err == nil {
		t.Fatal("the interrupted PATCH succeeded")
	}
	mustCheck(t, dataDir)

	s = startServer(t, dataDir, "--config", cfg)
	base = "http://" + s.addr
	// The client asks where the upload stands (the upload state is signed
	// with the HTTP secret, which survives restarts) and resumes there.
	// The restarted server listens on a new port.
	if loc, err = rebase(base, loc); err != nil {
		t.Fatal(err)
	}
	r, err = send(c, "GET", loc, nil, nil)
	if err != nil || r.status != http.StatusNoContent {
		t.Fatalf("upload status after restart: %v %d %s", err, r.status, r.body)
	}
	rng := strings.TrimPrefix(r.header.Get("Range"), "0-")
	last, err := strconv.Atoi(rng)
	if err != nil || last+1 < 1<<20 || last+1 > 1<<20+512<<10 {
		t.Fatalf("upload status Range %q after restart; want between the first chunk and what was sent", r.header.Get("Range"))
	}
	t.Logf("the interrupted upload holds %d bytes after the restart (1 MiB acknowledged, 1.5 MiB sent)", last+1)
	if loc, err = uploadURL(base, r.header.Get("Location"), nil); err != nil {
		t.Fatal(err)
	}
	r, err = send(c, "PATCH", loc, blob[last+1:], map[string]string{"Content-Type": "application/octet-stream"})
	if err != nil || r.status != http.StatusAccepted {
		t.Fatalf("resumed chunk: %v %d %s", err, r.status, r.body)
	}
	if loc, err = uploadURL(base, r.header.Get("Location"), map[string][]string{"digest": {sha256Digest(blob)}}); err != nil {
		t.Fatal(err)
	}
	r, err = send(c, "PUT", loc, nil, nil)
	if err != nil || r.status != http.StatusCreated {
		t.Fatalf("complete resumed upload: %v %d %s", err, r.status, r.body)
	}
	if r, err := send(c, "GET", base+"/v2/"+repo+"/blobs/"+sha256Digest(blob), nil, nil); err != nil || !bytes.Equal(r.body, blob) {
		t.Fatalf("resumed blob not served intact: %v", err)
	}
	// A push restarted from scratch works too.
	if _, err := pushImage(c, base, repo, "after-crash", 1<<20); err != nil {
		t.Fatalf("push after restart: %v", err)
	}

	// 2. Killed at a random moment while 4 pushers push whole images.
	runs := envInt(t, "SIGNET_CRASH_PUSH_ROUNDS", shortOr(crashDefaultPushRuns, 1))
	var acked []*testImage
	var mu sync.Mutex
	for run := range runs {
		var killed atomic.Bool
		var wg sync.WaitGroup
		failures := make(chan error, 4)
		for p := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 100; i++ {
					img, err := pushImage(c, base, fmt.Sprintf("crash/pusher%d", p), fmt.Sprintf("r%d-%d", run, i), 64<<10+rand.IntN(512<<10))
					if err != nil {
						if !killed.Load() {
							failures <- fmt.Errorf("pusher %d before the kill: %w", p, err)
						}
						return
					}
					mu.Lock()
					acked = append(acked, img)
					mu.Unlock()
				}
			}()
		}
		time.Sleep(time.Duration(rand.Int64N(int64(crashMaxKillDelay))))
		killed.Store(true)
		if err := s.stop(syscall.SIGKILL); err == nil {
			t.Fatalf("push round %d: server exited cleanly instead of being killed", run)
		}
		wg.Wait()
		close(failures)
		for err := range failures {
			t.Fatal(err)
		}
		mustCheck(t, dataDir)
		s = startServer(t, dataDir, "--config", cfg)
		base = "http://" + s.addr
		for _, img := range acked {
			if err := verifyImage(c, base, img); err != nil {
				t.Fatalf("push round %d, after restart: acknowledged image lost or damaged: %v", run, err)
			}
		}
		// Every pusher's restarted push goes through.
		for p := range 4 {
			if _, err := pushImage(c, base, fmt.Sprintf("crash/pusher%d", p), fmt.Sprintf("r%d-retry", run), 128<<10); err != nil {
				t.Fatalf("push round %d: restarted push: %v", run, err)
			}
		}
	}
	if err := s.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("clean stop: %v", err)
	}
	t.Logf("push crash test passed: %d rounds, %d acknowledged images intact after every restart", runs, len(acked))
}
