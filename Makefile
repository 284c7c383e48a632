# Vigil: `make help` lists the targets.
GO        ?= go
BIN       ?= bin
PKGS      ?= ./...
BENCH     ?= .
BENCHTIME ?= 2s
COUNT     ?= 5
FUZZTIME  ?= 30s

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: run
run: ## start the whole platform in one process (embedded SQLite + Redis unless VIGIL_DATABASE_URL/VIGIL_REDIS_URL are set)
	$(GO) run ./cmd/api

.PHONY: test
test: ## run every test with the race detector (real PostgreSQL/Redis when VIGIL_TEST_DATABASE_URL/VIGIL_TEST_REDIS_URL are set)
	$(GO) test -race -count=1 -timeout 30m $(PKGS)

.PHONY: test-short
test-short: ## quick test run without the race detector
	$(GO) test -count=1 $(PKGS)

.PHONY: bench
bench: ## run benchmarks (BENCH=regexp PKGS=./pkg/dmarc COUNT=5 BENCHTIME=2s); compare runs with benchstat
	$(GO) test -run='^$$' -bench='$(BENCH)' -benchmem -benchtime=$(BENCHTIME) -count=$(COUNT) $(PKGS)

REPORTS  ?= 100000
DATABASE ?= sqlite://data/vigil.db

.PHONY: bench-data
bench-data: ## fill DATABASE with synthetic reports for the analytics benchmarks (REPORTS=1000000 DATABASE=postgres://…)
	$(GO) run ./cmd/vigil-synth -database '$(DATABASE)' -reports $(REPORTS)

.PHONY: fuzz
fuzz: ## fuzz the unwrapper and the parsers (aggregate, TLS, failure) for FUZZTIME each
	$(GO) test -run='^$$' -fuzz=FuzzWalk -fuzztime=$(FUZZTIME) ./pkg/unwrap
	$(GO) test -run='^$$' -fuzz=FuzzParse -fuzztime=$(FUZZTIME) ./pkg/dmarc
	$(GO) test -run='^$$' -fuzz=FuzzParse -fuzztime=$(FUZZTIME) ./pkg/tlsrpt
	$(GO) test -run='^$$' -fuzz=FuzzParse -fuzztime=$(FUZZTIME) ./pkg/failure

.PHONY: lint
lint: ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 $(PKGS)

.PHONY: generate
generate: ## regenerate the typed API client (pkg/apiclient) from the served OpenAPI document (fetches oapi-codegen once)
	$(GO) generate ./pkg/apiclient

SPEC_LINT_DIR ?=
.PHONY: lint-spec
lint-spec: ## lint the served OpenAPI document with redocly and spectral installed in SPEC_LINT_DIR (npm install @redocly/cli @stoplight/spectral-cli there first)
	@test -n "$(SPEC_LINT_DIR)" -a -x "$(SPEC_LINT_DIR)/node_modules/.bin/redocly" || { echo "set SPEC_LINT_DIR to a folder where @redocly/cli and @stoplight/spectral-cli are installed"; exit 1; }
	$(GO) run ./pkg/apiclient/internal/dumpspec $(SPEC_LINT_DIR)/openapi.json
	cd $(SPEC_LINT_DIR) && node_modules/.bin/redocly lint --format=stylish openapi.json
	cd $(SPEC_LINT_DIR) && printf 'extends: ["spectral:oas"]\n' > .spectral.yaml && node_modules/.bin/spectral lint --fail-severity=warn openapi.json

.PHONY: build
build: ## build static binaries into bin/
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/ ./cmd/api ./cmd/worker ./cmd/scheduler

.PHONY: migrate
migrate: ## apply database migrations to VIGIL_DATABASE_URL (or the embedded SQLite)
	$(GO) run ./cmd/api migrate

.PHONY: import
import: ## import report files or folders: make import FILES="path/to/reports"
	$(GO) run ./cmd/api import $(FILES)

.PHONY: docker
docker: ## build the container image (needs a Docker engine)
	docker build -f deployments/Dockerfile -t vigil:dev .

.PHONY: docker-up
docker-up: ## start api, worker, scheduler, PostgreSQL and Redis with docker compose
	docker compose up --build

.PHONY: clean
clean: ## remove build output and the embedded default's data
	rm -rf $(BIN) data

BENCH_IMPORT_ARGS ?=

.PHONY: bench-import
bench-import: ## time `api import` and POST /api/upload + a worker, whole processes, rollups included, on both backends (BENCH_IMPORT_ARGS="-runs 3 -database postgres://… -redis redis://…")
	$(GO) run ./cmd/vigil-benchimport $(BENCH_IMPORT_ARGS)

.PHONY: bench-export
bench-export: ## time one export through a real api process, bytes read by curl (DATABASE=postgres://… REDIS=redis://… EXPORT_PATH=/api/export/records/csv RUNS=3)
	DATABASE='$(DATABASE)' REDIS='$(REDIS)' EXPORT_PATH='$(EXPORT_PATH)' RUNS='$(RUNS)' .ci/bench-export
