# Signet. `make run` starts the server on its embedded defaults; `make test`
# runs the whole suite (it installs the Debian tools the tests drive).

GO        ?= go
TAGS      := containers_image_openpgp
export CGO_ENABLED ?= 0
GOFLAGS_BUILD := -tags $(TAGS) -trimpath
BIN       := bin/signet
STATICCHECK_VERSION := v0.7.0
# cosign for the interoperability tests (integration/cosign_test.go).
COSIGN_VERSION := v3.1.3
# MinIO for the object-storage tests (integration/s3_test.go): the newest
# module version on the Go module proxy; it builds with Go 1.26.
MINIO_VERSION := v0.0.0-20260212201848-7aac2a2c5b7c
# distribution's registry, the upstream of the proxy-mode tests
# (integration/proxy_test.go).
DISTRIBUTION_VERSION := v3.1.2

# Tools the integration tests drive, by Debian package (etcd-server: the
# etcd signature store's tests start their own etcd on loopback;
# chromium: the web console's browser tests).
DEB_TOOLS := skopeo gnupg curl etcd-server chromium

.PHONY: all build run test test-unit test-race integration reliability soak lint fuzz bench bench-scale deps clean

all: build

build:
	$(GO) build $(GOFLAGS_BUILD) -o $(BIN) ./cmd/signet

run: build
	./$(BIN) serve

# Installs missing test tools with apt-get (as root, or through sudo).
deps:
	@missing=""; \
	command -v skopeo >/dev/null || missing="$$missing skopeo"; \
	command -v gpg >/dev/null || missing="$$missing gnupg"; \
	command -v curl >/dev/null || missing="$$missing curl"; \
	command -v etcd >/dev/null || missing="$$missing etcd-server"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && $$SUDO DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@command -v cosign >/dev/null || test -x "$$($(GO) env GOPATH)/bin/cosign" || \
		{ echo "installing: cosign $(COSIGN_VERSION) (a few minutes)"; GOFLAGS=-trimpath CGO_ENABLED=0 $(GO) install github.com/sigstore/cosign/v3/cmd/cosign@$(COSIGN_VERSION); }
	@command -v minio >/dev/null || test -x "$$($(GO) env GOPATH)/bin/minio" || \
		{ echo "installing: minio $(MINIO_VERSION) (a few minutes)"; GOFLAGS=-trimpath CGO_ENABLED=0 $(GO) install github.com/minio/minio@$(MINIO_VERSION); }
	@test -x "$$($(GO) env GOPATH)/bin/registry" || \
		{ echo "installing: distribution registry $(DISTRIBUTION_VERSION)"; GOFLAGS=-trimpath CGO_ENABLED=0 $(GO) install github.com/distribution/distribution/v3/cmd/registry@$(DISTRIBUTION_VERSION); }

test: deps
	$(GO) vet -tags $(TAGS) ./...
	$(GO) test -tags $(TAGS) -count=1 -timeout 15m ./...

test-unit:
	$(GO) test -tags $(TAGS) -count=1 -short ./...

test-race: deps
	CGO_ENABLED=1 $(GO) test -race -tags $(TAGS) -count=1 -timeout 20m ./...

integration: deps
	$(GO) test -tags $(TAGS) -count=1 -timeout 15m ./integration/...

# Crash consistency: ROUNDS rounds of 32 writers killed with SIGKILL at a
# random moment (make test runs 20), POWER_ROUNDS rounds ended by a
# simulated power cut (make test runs 5; needs root for a loop device),
# and 20 rounds of kills during registry pushes (make test runs 5).
# SEED=N replays a run's schedule. See README, "What Signet guarantees
# and how it is tested".
ROUNDS ?= 200
POWER_ROUNDS ?= 50
reliability: deps
	SIGNET_CRASH_ROUNDS=$(ROUNDS) SIGNET_POWERLOSS_ROUNDS=$(POWER_ROUNDS) SIGNET_CRASH_SEED=$(SEED) SIGNET_CRASH_PUSH_ROUNDS=20 \
		$(GO) test -tags $(TAGS) -count=1 -timeout 60m -run '^(TestCrash|TestPowerLoss)' -v ./integration/

# Soak: 64 clients for SOAK (make test runs 10s), then the leak checks.
SOAK ?= 60s
soak: deps
	SIGNET_SOAK_DURATION=$(SOAK) $(GO) test -tags $(TAGS) -count=1 -timeout 30m -run '^TestSoak$$' -v ./integration/

lint:
	$(GO) vet -tags $(TAGS) ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) -tags $(TAGS) ./...

# Bounded fuzzing of every parser and of verification (which must never
# accept random input). FUZZTIME=5m for longer runs. Seed corpora live in
# each package's testdata/fuzz and also run as plain tests in `make test`.
FUZZTIME ?= 30s
FUZZ_TARGETS := \
	./extensions/:FuzzDecodeSignature \
	./registry/:FuzzRoutes \
	./registry/:FuzzSignatureName \
	./gpg/:FuzzVerify \
	./gpg/payload/:FuzzParseUntrusted \
	./signaturestore/boltstore/:FuzzDecodeRecord \
	./signaturestore/boltstore/:FuzzValidateDigest \
	./registry/:FuzzFastRoute \
	./registry/:FuzzFastV2Need \
	./registry/:FuzzAccessLine \
	./internal/refname/:FuzzGrammar \
	./extensions/:FuzzIsSHA256Digest \
	./extensions/:FuzzDecodeFast \
	./registry/:FuzzBlobTarget \
	./extensions/:FuzzAuditLine \
	./extensions/:FuzzPlainJSON \
	./auth/:FuzzParseAuthorization \
	./auth/:FuzzAuthenticate \
	./cosign/:FuzzParseUntrusted \
	./lookaside/:FuzzParseImageDir \
	./containerspolicy/:FuzzParse \
	./proxy/:FuzzParseChallenge \
	./internal/slogtext/:FuzzAppendString
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$name ($$pkg, $(FUZZTIME))"; \
		$(GO) test -tags $(TAGS) -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

# make bench: the side-by-side harness (bench/, README "Performance"):
# Signet against nginx, the stock distribution registry binary and a
# naive bbolt server, pinned to separate cores, medians of BENCH_RUNS
# runs; it installs wrk, nginx and the registry binary when missing and
# writes bench/results/latest.md. Then the in-process Go benchmarks
# (store, verifier, hot read paths), each with its baseline in the same
# process: compare ratios, not absolute numbers.
BENCH_RUNS ?= 3
BENCH_DURATION ?= 10s
BENCHCOUNT ?= 1
bench:
	$(GO) run ./bench -runs $(BENCH_RUNS) -duration $(BENCH_DURATION)
	$(GO) test -tags $(TAGS) -run '^$$' -bench . -benchtime 2000x -count $(BENCHCOUNT) ./signaturestore/boltstore/
	$(GO) test -tags $(TAGS) -run '^$$' -bench . -count $(BENCHCOUNT) ./gpg/ ./gpg/payload/
	$(GO) test -tags $(TAGS) -run '^$$' -bench Hot -benchtime 20000x -count $(BENCHCOUNT) ./registry/
	$(GO) test -tags $(TAGS) -run '^$$' -bench 'Proxy|BlobFastPath' -benchtime 200x -count $(BENCHCOUNT) ./registry/
	$(GO) test -tags $(TAGS) -run '^$$' -bench '^BenchmarkConsole' -benchtime 50x -count $(BENCHCOUNT) ./registry/

# make bench-scale: 1,000 against 1,000,000 signatures (GET p99, bytes
# per signature, RSS, cold start); writes bench/results/scale.md.
SCALE_SIGNATURES ?= 1000000
bench-scale:
	$(GO) run ./bench -scale -scale-signatures $(SCALE_SIGNATURES) -runs $(BENCH_RUNS) -duration $(BENCH_DURATION)

clean:
	rm -rf bin
