# Signet. `make run` starts the server on its embedded defaults; `make test`
# runs the whole suite (it installs the Debian tools the tests drive).

GO        ?= go
TAGS      := containers_image_openpgp
export CGO_ENABLED ?= 0
GOFLAGS_BUILD := -tags $(TAGS) -trimpath
BIN       := bin/signet
STATICCHECK_VERSION := 2025.1.1

# Tools the integration tests drive, by Debian package.
DEB_TOOLS := skopeo gnupg curl

.PHONY: all build run test test-unit test-race integration lint fuzz bench deps clean

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

test: deps
	$(GO) vet -tags $(TAGS) ./...
	$(GO) test -tags $(TAGS) -count=1 -timeout 15m ./...

test-unit:
	$(GO) test -tags $(TAGS) -count=1 -short ./...

test-race: deps
	CGO_ENABLED=1 $(GO) test -race -tags $(TAGS) -count=1 -timeout 20m ./...

integration: deps
	$(GO) test -tags $(TAGS) -count=1 -timeout 15m ./integration/...

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
	./auth/:FuzzAuthenticate
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
