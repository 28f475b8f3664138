# danmaku: `make test` is what CI runs (.ci/run).
GO ?= go
NODE ?= node
GOFLAGS_TEST ?= -race -count=1 -timeout 20m

.PHONY: all build test test-go test-js typecheck-js test-browser web-deps vet fmt-check fuzz-smoke soak-smoke soak clean bench bench-quick

all: build

build:
	$(GO) build -o danmaku .

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

## test: formatting, vet, every Go test with the race detector, the JS unit
## tests and the browser tests, every fuzz target briefly, and a one-minute
## soak.
test: fmt-check vet test-go test-js typecheck-js test-browser fuzz-smoke soak-smoke

test-go:
	$(GO) test $(GOFLAGS_TEST) ./...

## test-js: danmaku.js's pure parts and feed loop, with node's test runner.
test-js:
	$(NODE) --test web/test/unit.test.mjs

## typecheck-js: danmaku.js's JSDoc types hold (tsc from make web-deps).
## Skips without it unless CI is set.
typecheck-js:
	@if [ -x web/node_modules/.bin/tsc ]; then web/node_modules/.bin/tsc -p web/tsconfig.json && echo "danmaku.js: JSDoc types check"; \
	elif [ -n "$$CI" ]; then echo "typecheck-js: web/node_modules/.bin/tsc is missing (make web-deps)"; exit 1; \
	else echo "typecheck-js skipped: run make web-deps"; fi

## test-browser: the demo in Chromium (/usr/bin/chromium) through
## playwright-core (make web-deps). Skips without them unless CI is set.
test-browser:
	$(NODE) --test web/test/browser.test.mjs

## fuzz-smoke: every fuzz target (every func Fuzz* in a _test.go file) for
## FUZZTIME each, starting from its corpus in testdata/fuzz/<Name>. The
## budget is a count of executions, not a duration: Go 1.26's coordinator can
## fail a target with a bare "context deadline exceeded" when a duration runs
## out while a worker is busy (golang/go#75804, fixed in 1.27).
FUZZTIME ?= 50000x
fuzz-smoke:
	@set -e; for f in $$(git ls-files --cached --others --exclude-standard '*_test.go' | xargs grep -l '^func Fuzz'); do \
		dir=$$(dirname $$f); \
		for name in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
			echo "fuzz-smoke: $$name in ./$$dir for $(FUZZTIME)"; \
			$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) ./$$dir; \
		done; \
	done

## soak-smoke: the soak test for one minute (no race detector: it measures
## memory); soak: the full ten minutes.
SOAKTIME ?= 60s
soak-smoke:
	$(GO) test -tags soak -count=1 -timeout 30m -run '^TestSoak$$' ./cmd -args -soak.duration $(SOAKTIME)

soak:
	$(MAKE) soak-smoke SOAKTIME=10m

## web-deps: playwright-core for the browser tests (never a browser download).
web-deps:
	cd web && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund

## bench: every measurement against its baseline (nginx, naive JSON,
## Bilibili's protobuf, Varnish), written to BENCHMARKS.md with the machine,
## the date and the commands; installs wrk, nginx-light and varnish from
## Debian when missing. Under 10 minutes on the 2-core machine.
bench:
	$(GO) run ./bench -out BENCHMARKS.md

## bench-quick: a reduced set in under a minute that prints its figures, for
## CI: it fails only if the harness breaks, never on a missed goal.
bench-quick:
	$(GO) run ./bench -quick

clean:
	rm -f danmaku
	rm -rf bin/testserve
