# danmaku: `make test` is what CI runs (.ci/run).
GO ?= go
GOFLAGS_TEST ?= -race -count=1 -timeout 20m

.PHONY: all build test vet fmt-check fuzz-smoke clean

all: build

build:
	$(GO) build -o danmaku .

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

## test: formatting, vet, then every test with the race detector.
test: fmt-check vet
	$(GO) test $(GOFLAGS_TEST) ./...

clean:
	rm -f danmaku
