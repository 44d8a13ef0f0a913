# DSEP — make help lists the targets.
GO        ?= go
PKGS      ?= ./...
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
FUZZTIME  ?= 30s

.PHONY: help deps build test bench fuzz demo lint

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

deps: ## install the tools the tests use (gnupg, sq, hashcash, python3) from Debian
	@bash .ci/deps

build: ## build bin/dsep
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/dsep ./cmd/dsep

test: deps ## install test tools, then gofmt, vet, and all tests (race detector, fuzz seeds)
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 $(PKGS)

bench: ## run the benchmarks (figures go to BENCHMARKS.md)
	$(GO) test -run='^$$' -bench=. -benchtime=2s $(PKGS)

fuzz: ## run every fuzz target for FUZZTIME each (default 30s)
	@bash .ci/fuzz $(FUZZTIME)

demo: ## the embedded local network on loopback: DNS, a domain, users, verified bindings
	$(GO) run -ldflags "$(LDFLAGS)" ./cmd/dsep demo

lint: ## gofmt and go vet
	@test -z "$$(gofmt -l .)" || { gofmt -l .; exit 1; }
	$(GO) vet $(PKGS)
