# stompica. `make test` is the one command CI (.ci/run) and newcomers run: it
# installs what the tests need, checks formatting, vets, fuzzes each fuzz
# target briefly, runs each benchmark once, and last runs every test with the
# race detector (the e2e tests drive the real binary with third-party clients).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test
# the steps of `test` run in order, even under make -j
.NOTPARALLEL:

GO ?= go
FUZZTIME ?= 5s
TEST_TIMEOUT ?= 15m
BIN ?= bin
# arguments for `make run`, e.g. make run RUN_ARGS='--port 3490 --log-level debug'
RUN_ARGS ?=
BENCH ?= .
BENCHTIME ?= 1s

# Debian's interpreter sees Debian's python3-stomp; the python3 first on PATH may not.
DEB_PYTHON := /usr/bin/python3
# apt-get as root, through sudo otherwise
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# $(call apt_install,PACKAGES): update the package lists and install PACKAGES.
apt_install = { echo "deps: installing Debian packages: $(1)"; \
	$(SUDO) apt-get update -qq && \
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1); }

# Go files to check with gofmt (not the ones npm may bring in).
GO_FILES = $(shell find . -name '*.go' -not -path './.git/*' -not -path '*/node_modules/*' -not -path '*/testdata/*')

.PHONY: test deps deps-python deps-chromium deps-node gofmt vet gotest fuzz-smoke bench-smoke \
	build run bench fuzz soak clean npm-test static release npm docker

# gotest runs last, so the run ends with the test results.
test: deps gofmt vet npm-test fuzz-smoke bench-smoke gotest

## deps: install missing Debian packages and npm modules the tests use.
## Each deps-* step checks first and installs only what is missing.
deps: deps-python deps-chromium deps-node

deps-python:
	@$(DEB_PYTHON) -c 'import stomp' 2>/dev/null || $(call apt_install,python3-stomp)
	@$(DEB_PYTHON) -c 'import stomp' || { echo "deps: $(DEB_PYTHON) still cannot import stomp"; exit 1; }

# Hook for the browser tests (e2e/node): Debian's chromium, never a downloaded browser.
deps-chromium:
	@test -x /usr/bin/chromium || $(call apt_install,chromium)

# Hook for the Node tests (e2e/node): `npm ci` from its package-lock.json, redone when that is newer than
# npm's own record of what it installed (node_modules/.package-lock.json).
NODE_DIR := e2e/node
ifneq ($(wildcard $(NODE_DIR)/package-lock.json),)
deps-node: $(NODE_DIR)/node_modules/.package-lock.json
$(NODE_DIR)/node_modules/.package-lock.json: $(NODE_DIR)/package-lock.json $(NODE_DIR)/package.json
	@command -v npm >/dev/null || $(call apt_install,nodejs npm)
	cd $(NODE_DIR) && npm ci --no-audit --no-fund
	touch $@
else
deps-node:
	@:
endif

## gofmt: fail, listing them, if any Go files are not gofmt-formatted.
gofmt:
	@files=$$(gofmt -l $(GO_FILES)); \
	if [ -n "$$files" ]; then echo "gofmt: these files are not formatted (run gofmt -w):"; echo "$$files"; exit 1; fi

vet:
	$(GO) vet ./...

## gotest: every test with the race detector, e2e included.
gotest:
	$(GO) test -race -timeout $(TEST_TIMEOUT) ./...

## fuzz-smoke / fuzz: run each fuzz target of each package (found with go test -list) for FUZZTIME.
## Go 1.26's fuzz coordinator can fail a run whose -fuzztime ends while a worker is busy with a bare
## "context deadline exceeded" and no failing input (go.dev/issue/75804, fixed in Go 1.27): such a
## run is reported and tolerated; a run that wrote a failing input, or failed otherwise, fails.
fuzz-smoke:
	@out=$$(mktemp); trap 'rm -f "$$out"' EXIT; \
	for pkg in $$($(GO) list ./...); do \
	  list=$$($(GO) test -list '^Fuzz' "$$pkg"); \
	  for f in $$(grep '^Fuzz' <<<"$$list" || true); do \
	    echo "fuzz: $$pkg $$f for $(FUZZTIME)"; \
	    if ! $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) -timeout 10m "$$pkg" 2>&1 | tee "$$out"; then \
	      if grep -q 'context deadline exceeded' "$$out" && ! grep -q 'Failing input written' "$$out"; then \
	        echo "fuzz: $$f: Go's fuzztime shutdown race (go.dev/issue/75804), no failing input: tolerated"; \
	      else \
	        exit 1; \
	      fi; \
	    fi; \
	  done; \
	done

fuzz: FUZZTIME = 60s
fuzz: fuzz-smoke

## bench-smoke: every benchmark once, to prove they run.
bench-smoke:
	$(GO) test -run '^$$' -bench . -benchtime=1x -timeout 10m ./...

## bench: the full benchmarks with allocations.
bench:
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchtime=$(BENCHTIME) -benchmem -timeout 30m ./...

build:
	$(GO) build -o $(BIN)/ ./cmd/...

## Release build flags: the one place `make release`, `make npm` and docker/Dockerfile (through
## `make static`) take them from. Static (no cgo), -trimpath, no VCS stamp and an empty build id, so
## the same source, VERSION, COMMIT and Go toolchain give the same bytes on any machine.
## VERSION defaults to server.Version; COMMIT to the checked-out commit (with -dirty for local changes).
ifeq ($(strip $(VERSION)),)
override VERSION := $(shell sed -n 's/^const Version = "\(.*\)"$$/\1/p' server/server.go)
endif
ifeq ($(strip $(COMMIT)),)
override COMMIT := $(shell c=$$(git rev-parse --short=12 HEAD 2>/dev/null) && \
	{ git diff --quiet HEAD 2>/dev/null && echo "$$c" || echo "$$c-dirty"; } || echo unknown)
endif
GO_LDFLAGS = -s -w -buildid= -X main.version=$(VERSION) -X main.commit=$(COMMIT)
GO_RELEASE_FLAGS = -trimpath -buildvcs=false -ldflags '$(GO_LDFLAGS)'
# $(call static_build,GOOS,GOARCH,OUTPUT): one static stompica binary.
static_build = CGO_ENABLED=0 GOOS=$(1) GOARCH=$(2) $(GO) build $(GO_RELEASE_FLAGS) -o $(3) ./cmd/stompica

## static: one release-built binary for GOOS/GOARCH (default: this machine's) at OUT.
GOOS ?= $(shell $(GO) env GOOS)
GOARCH ?= $(shell $(GO) env GOARCH)
OUT ?= $(BIN)/stompica-static
static:
	$(call static_build,$(GOOS),$(GOARCH),$(OUT))

## release: the release binaries and their SHA256SUMS in RELEASE_DIR. RELEASE_TARGETS picks a subset
## (the tests build only linux/amd64).
RELEASE_DIR ?= build/release
RELEASE_TARGETS ?= linux/amd64 linux/arm64 darwin/arm64 windows/amd64
release:
	rm -rf $(RELEASE_DIR) && mkdir -p $(RELEASE_DIR)
	@for t in $(RELEASE_TARGETS); do \
	  os=$${t%/*}; arch=$${t#*/}; ext=; [ "$$os" = windows ] && ext=.exe; \
	  out=$(RELEASE_DIR)/stompica-$(VERSION)-$$os-$$arch$$ext; \
	  echo "release: $$out"; \
	  $(call static_build,$$os,$$arch,$$out); \
	done
	cd $(RELEASE_DIR) && sha256sum stompica-* > SHA256SUMS
	@cat $(RELEASE_DIR)/SHA256SUMS

## npm: the npm package `stompica` (npm/) with static linux x64 and arm64 binaries, packed by
## `npm pack` into NPM_OUT/stompica-VERSION.tgz.
NPM_OUT ?= build/npm
npm:
	rm -rf $(NPM_OUT)/package && mkdir -p $(NPM_OUT)/package
	cp -R npm/. $(NPM_OUT)/package/
	rm -rf $(NPM_OUT)/package/test $(NPM_OUT)/package/node_modules
	$(call static_build,linux,amd64,$(NPM_OUT)/package/bin/linux-x64/stompica)
	$(call static_build,linux,arm64,$(NPM_OUT)/package/bin/linux-arm64/stompica)
	cd $(NPM_OUT)/package && npm pkg set version=$(VERSION)
	cd $(NPM_OUT) && npm pack --silent --pack-destination . ./package

## docker: the container image (docker/Dockerfile, which builds with `make static`), tagged DOCKER_TAG.
DOCKER_TAG ?= stompica:$(VERSION)
docker:
	docker build -f docker/Dockerfile -t $(DOCKER_TAG) --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) .

## npm-test: the npm package's own unit tests (argument mapping, platform choice), no broker needed.
npm-test:
	cd npm && node --test --test-reporter=spec test/

## soak: a bounded mixed soak of the real binary over TCP and WebSocket (not part of `test`):
## publishers, churning subscribers, consumers, abrupt disconnects and backpressure pauses, every
## message accounted for. `make soak SOAK_DURATION=5m` for the long one; SOAK_ARGS adds stompbench flags.
SOAK_DURATION ?= 60s
SOAK_ARGS ?=
soak: build
	SOAK_DURATION='$(SOAK_DURATION)' SOAK_ARGS='$(SOAK_ARGS)' scripts/soak.sh $(BIN)

run: build
	$(BIN)/stompica $(RUN_ARGS)

clean:
	rm -rf $(BIN) build
