# ferry's developer entry points. `make help` lists them.
GO ?= go
BIN := bin/ferry

.PHONY: help build run test test-stress lint bench fuzz clean

help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## Build the ferry binary into bin/ferry.
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/ferry

run: build ## Run ferry's main job: `ferry up` builds a local git repo holding examples/hello.ferry.yml.
	bash scripts/demo.sh

test: ## Install test dependencies, then run every check and test (what CI runs).
	bash scripts/test.sh

test-stress: ## Run the tests while a CPU hog keeps every core busy (timing-sensitive packages 3 times).
	bash scripts/test-stress.sh

lint: ## Run gofmt, go vet and golangci-lint.
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...
	@test -x bin/golangci-lint || bash scripts/test-deps.sh
	./bin/golangci-lint run --allow-parallel-runners ./...

bench: ## Run the benchmarks and print ratios against their baselines.
	bash scripts/bench.sh

fuzz: ## Fuzz the YAML parser, the pipeline programs, the Woodpecker converter, the log masker, the webhook parsers and the slug and git URL validators, a minute each.
	$(GO) test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=60s ./internal/pipeline
	$(GO) test -run='^$$' -fuzz='^FuzzStarlark$$' -fuzztime=60s ./internal/pipeline/program
	$(GO) test -run='^$$' -fuzz='^FuzzJsonnetOutput$$' -fuzztime=60s ./internal/pipeline/program
	$(GO) test -run='^$$' -fuzz='^FuzzWoodpecker$$' -fuzztime=60s ./internal/pipeline/program
	$(GO) test -run='^$$' -fuzz='^FuzzLineWriter$$' -fuzztime=60s ./internal/logs
	$(GO) test -run='^$$' -fuzz='^FuzzGitHubHook$$' -fuzztime=60s ./internal/forge
	$(GO) test -run='^$$' -fuzz='^FuzzGiteaHook$$' -fuzztime=60s ./internal/forge
	$(GO) test -run='^$$' -fuzz='^FuzzGitLabHook$$' -fuzztime=60s ./internal/forge
	$(GO) test -run='^$$' -fuzz='^FuzzValidateSlug$$' -fuzztime=60s ./internal/server
	$(GO) test -run='^$$' -fuzz='^FuzzCheckGitURL$$' -fuzztime=60s ./internal/server

clean: ## Remove build outputs, test screenshots and the tests' Docker images (ferry-test/*, a cache kept between runs).
	rm -rf bin/ferry bin/ui-screenshots
	@if command -v docker >/dev/null && docker info >/dev/null 2>&1; then \
	  ids=$$(docker images -q --filter label=ferry.testimage.hash | sort -u); \
	  if [ -n "$$ids" ]; then docker rmi -f $$ids >/dev/null && echo "removed the tests' Docker images"; fi; \
	fi
