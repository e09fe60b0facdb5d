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

# Tools the integration tests drive, by Debian package.
DEB_TOOLS := skopeo gnupg curl

.PHONY: all build run test test-unit test-race integration reliability soak lint fuzz bench deps clean

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
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && $$SUDO DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@command -v cosign >/dev/null || test -x "$$($(GO) env GOPATH)/bin/cosign" || \
		{ echo "installing: cosign $(COSIGN_VERSION) (a few minutes)"; GOFLAGS=-trimpath CGO_ENABLED=0 $(GO) install github.com/sigstore/cosign/v3/cmd/cosign@$(COSIGN_VERSION); }

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
	./auth/:FuzzParseAuthorization \
	./auth/:FuzzAuthenticate \
	./cosign/:FuzzParseUntrusted \
	./lookaside/:FuzzParseImageDir
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$name ($$pkg, $(FUZZTIME))"; \
		$(GO) test -tags $(TAGS) -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

# Each benchmark runs its baseline in the same process, so compare ratios,
# not absolute numbers. BENCHCOUNT=3 or more for medians.
BENCHCOUNT ?= 1
bench:
	$(GO) test -tags $(TAGS) -run '^$$' -bench . -benchtime 2000x -count $(BENCHCOUNT) ./signaturestore/boltstore/
	$(GO) test -tags $(TAGS) -run '^$$' -bench . -count $(BENCHCOUNT) ./gpg/ ./gpg/payload/

clean:
	rm -rf bin
