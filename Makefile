# bonychat-adapter: the two commands a newcomer needs are `make run` and `make test`.
GO          ?= go
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -s -w -X main.version=$(VERSION)
BIN         := bin/bonychat-adapter
# The example config reads its channel token from DEMO_TOKEN (documented in the README).
DEMO_TOKEN  ?= bonychat-demo-token
export DEMO_TOKEN

.PHONY: all build run test test-short soak lint fmt vet openapi-lint bench clean

all: lint test build

## build: a static binary (CGO_ENABLED=0) at bin/bonychat-adapter
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/bonychat-adapter

## run: serve config.example.yaml (console provider, demo BonyChat stand-in; no credentials)
run: build
	./$(BIN) serve --config config.example.yaml

## test: every test, with the race detector where cgo (a C compiler) is there
# -race needs cgo; without a C compiler the tests still run, without it.
RACE := $(shell [ "$$($(GO) env CGO_ENABLED)" = 1 ] && command -v "$$($(GO) env CC)" >/dev/null 2>&1 && echo -race)
test:
	@[ -n "$(RACE)" ] || echo "note: no C compiler for cgo: running the tests without the race detector"
	$(GO) test $(RACE) -count=1 ./...

## soak: the chaos test (kills and restarts under traffic) for CHAOS_SECONDS, on more contacts and Twilio's default reconcile_wait;
## a failure names its seed, and CHAOS_SEED=n replays that run's faults
CHAOS_SECONDS ?= 120
soak:
	CHAOS_SECONDS=$(CHAOS_SECONDS) $(GO) test $(RACE) -count=1 -v -timeout $$(( $(CHAOS_SECONDS) + 600 ))s \
		-run '^TestChaosRestartsLoseAndDuplicateNothing$$' ./cmd/bonychat-adapter

## lint: gofmt, go vet and the OpenAPI linter
lint: fmt vet openapi-lint

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './node_modules/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

node_modules/.bin/redocly: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

openapi-lint: node_modules/.bin/redocly
	./node_modules/.bin/redocly lint openapi.yaml

## bench: the benchmarks; write the results into the README's Performance section
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin
