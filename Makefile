# sitewatch — one loop over every Go module in go.work for build, vet, lint
# and test; PostgreSQL and Kafka come from scripts/ (or DATABASE_URL /
# KAFKA_BROKERS when set).
SHELL        := /bin/bash
.SHELLFLAGS  := -euo pipefail -c
MODULES      := $(shell go list -f '{{.Dir}}' -m)
BIN          := $(CURDIR)/.cache/bin
STATICCHECK  := $(BIN)/staticcheck
STATICCHECK_VERSION := v0.8.2
# Loads DATABASE_URL and KAFKA_BROKERS for the recipe line it prefixes.
INFRA_ENV    := eval "$$(scripts/infra.sh env)";
# Loads DOCKER_CONFIG (compose and buildx built here) and the base images
# scripts/docker.sh chose (official, or stand-ins built here).
DOCKER_ENV   := eval "$$(scripts/docker.sh env)";
COMPOSE      := docker compose -f deploy/docker-compose.yml
TEST_FLAGS   ?= -race -count=1 -timeout 30m

.PHONY: all build vet lint test test-unit fuzz up down run migrate bench bench-before soak tidy fmt binaries clean \
	docker up-containers down-containers

all: build vet lint test

build:
	@for m in $(MODULES); do (cd $$m && go build ./...); done

vet:
	@for m in $(MODULES); do (cd $$m && go vet ./...); done

$(STATICCHECK):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

lint: $(STATICCHECK)
	@for m in $(MODULES); do (cd $$m && $(STATICCHECK) ./...); done
	@test -z "$$(gofmt -l $(MODULES))" || { echo "gofmt needed:"; gofmt -l $(MODULES); exit 1; }

## test: unit and integration tests of every module against real PostgreSQL and Kafka
## (promtool, for the alert-rule tests, and chromium, for the status page's browser test, are
## installed by scripts/promtool.sh and scripts/chromium.sh and required; the containers test,
## e2e/containers_test.go, needs the Docker engine and images of scripts/docker.sh)
test: up docker vet lint
	@scripts/promtool.sh
	@scripts/chromium.sh
	@$(INFRA_ENV) $(DOCKER_ENV) export SITEWATCH_REQUIRE_PROMTOOL=1 SITEWATCH_REQUIRE_CHROMIUM=1 SITEWATCH_REQUIRE_DOCKER=1; for m in $(MODULES); do echo "== $${m#$(CURDIR)/}"; (cd $$m && go test $(TEST_FLAGS) ./...); done

## test-unit: the tests that need no PostgreSQL or Kafka
test-unit:
	@for m in $(MODULES); do (cd $$m && go test -short -count=1 -run '^(Test|Fuzz)' ./...); done

## fuzz: every fuzz target for FUZZTIME each (their seed corpora, f.Add and
## testdata/fuzz/, also run as plain tests in `make test`). `go test -fuzz`
## takes one package and one target per run: module dir:package:target.
FUZZTIME     ?= 20s
FUZZ_TARGETS := \
	services/monitor:./internal/site:FuzzValidate \
	services/monitor:./internal/cli:FuzzReadSites \
	services/relay:.:FuzzSourcesFile \
	services/relay:./internal/relay:FuzzHeaders \
	services/relay:./internal/relay:FuzzDecodeHeaders \
	platform:./checkevent:FuzzDecode \
	platform:./checkevent:FuzzFastDecodeMatchesEncodingJSON
fuzz:
	@missing=$$(grep -rhoE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]+' $(MODULES) | sed 's/^func //' | sort -u | \
		while read -r n; do [[ " $(FUZZ_TARGETS) " == *":$$n "* ]] || echo "$$n"; done); \
		test -z "$$missing" || { echo "fuzz targets not in FUZZ_TARGETS: $$missing"; exit 1; }
	@for t in $(FUZZ_TARGETS); do IFS=: read -r dir pkg name <<<"$$t"; \
		echo "== $$name ($$dir$${pkg#.}, $(FUZZTIME))"; \
		(cd $$dir && go test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg); done

up:
	@scripts/infra.sh up

down:
	@scripts/infra.sh down

binaries:
	@mkdir -p $(BIN)
	@for s in monitor relay sink; do (cd services/$$s && go build -o $(BIN)/$$s .); done

migrate: up binaries
	@$(INFRA_ENV) $(BIN)/monitor migrate -log-format=console

## run: the whole pipeline on this machine, with demo sites; Ctrl-C stops it
run: up binaries
	@scripts/run.sh

## docker: a Docker engine, Compose v2 and buildx, and the base images (scripts/docker.sh)
docker:
	@scripts/docker.sh up

## up-containers: the three services in containers, with PostgreSQL and Kafka, as
## deploy/docker-compose.yml runs them (deploy/README.md); down-containers stops them (data kept)
up-containers: docker
	@scripts/secrets.sh
	@$(DOCKER_ENV) $(COMPOSE) up -d --build --wait --wait-timeout 300
	@$(DOCKER_ENV) $(COMPOSE) ps
	@echo "status page: http://127.0.0.1:8080/ (any user, password deploy/secrets/sink_ui_token)"
	@echo "add a site:  eval \"\$$(scripts/docker.sh env)\"; $(COMPOSE) run --rm monitor sites add URL"

down-containers:
	@$(DOCKER_ENV) $(COMPOSE) down

## bench: benchmarks against real PostgreSQL and Kafka
bench: up
	@$(INFRA_ENV) for m in $(MODULES); do (cd $$m && go test -run '^$$' -bench . -benchmem -timeout 30m ./...); done

## bench-before: the relay's throughput benchmark of commit BASE (62cfdc3, the code before
## issue 22) and of this checkout, one after the other RUNS (3) times (scripts/bench-before.sh)
bench-before: up
	@$(INFRA_ENV) scripts/bench-before.sh $(or $(BASE),62cfdc3) $(or $(RUNS),3)

## soak: SOAK_EVENTS (30,000,000) events through the relay with retention on, three times:
## flat out with PostgreSQL's default autovacuum settings, then with sitewatch's tuned ones
## (throughput at the start vs the end), then written at SOAK_RATE (15,000 rows/s) on the
## defaults with 25,000-row partitions (the size alone); the outbox's size over time,
## drawn into docs/soak-outbox-size.svg
SOAK_EVENTS ?= 30000000
SOAK_RATE ?= 15000
soak: up
	@mkdir -p docs/soak
	@$(INFRA_ENV) cd services/relay && SOAK_EVENTS=$(SOAK_EVENTS) SOAK_AUTOVACUUM_DEFAULTS=1 SOAK_OUT=$(CURDIR)/docs/soak/defaults.tsv \
		go test -run '^$$' -bench Soak -benchtime 1x -timeout 24h ./internal/relay
	@$(INFRA_ENV) cd services/relay && SOAK_EVENTS=$(SOAK_EVENTS) SOAK_OUT=$(CURDIR)/docs/soak/tuned.tsv \
		go test -run '^$$' -bench Soak -benchtime 1x -timeout 24h ./internal/relay
	@$(INFRA_ENV) cd services/relay && SOAK_EVENTS=$(SOAK_EVENTS) SOAK_RATE=$(SOAK_RATE) SOAK_PARTITION_ROWS=25000 \
		SOAK_AUTOVACUUM_DEFAULTS=1 SOAK_OUT=$(CURDIR)/docs/soak/defaults-paced.tsv \
		go test -run '^$$' -bench Soak -benchtime 1x -timeout 24h ./internal/relay
	@mv docs/soak/soak-outbox-size.svg docs/soak-outbox-size.svg

tidy:
	@for m in $(MODULES); do (cd $$m && go mod tidy); done

fmt:
	@gofmt -w $(MODULES)

clean:
	rm -rf $(BIN)
