# taskevents: Dapr publish/subscribe in Go without the Dapr SDK.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

APPS    := publisher worker
# kit: the module both apps require (relative replace); unit-tested and benchmarked like them.
UNIT_MODULES := kit $(APPS)
MODULES := kit publisher worker e2e tools
# Go modules kept out of go.work (their dependencies must not reach the apps): the bench's
# go-sdk anchor. They are formatted, vetted, linted and tested like the others, with GOWORK=off.
OUTSIDE_MODULES := tools/bench/gosdk-publisher
BIN     := $(CURDIR)/bin
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT := $(BIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
BROKER ?= redis
IMAGE_REGISTRY ?= ghcr.io/taskevents
IMAGE_TAG ?= $(shell awk '/^appVersion:/ {gsub(/"/,"",$$2); print $$2}' charts/taskevents/Chart.yaml)
# Brokers the end-to-end tests run on (comma-separated); empty means all: redis,kafka,rabbitmq.
BROKERS ?=
# make fuzz: the request decoder's and the envelope parser's targets run FUZZTIME each,
# every other fuzz target FUZZ_OTHERTIME. Counts (Nx) rather than durations: with a
# duration, go1.26's fuzz coordinator can end a clean run with "context deadline exceeded"
# (golang/go#75804).
FUZZ_PARSERS   := FuzzDecodeTask FuzzParseEvent
FUZZTIME       ?= 1000000x
FUZZ_OTHERTIME ?= 200000x

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage: make <target>\n"} /^[a-zA-Z0-9_-]+:.*?##/ { printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Run

.PHONY: run
run: prereqs build ## Run broker, both sidecars and both apps locally (BROKER=redis|kafka|rabbitmq|snssqs; JAEGER=1 adds Jaeger); Ctrl-C stops all.
	@go build -o $(BIN)/taskevents-local ./tools/cmd/taskevents-local
	@daprd=$$(tools/daprd/build.sh) && libs= && if [ "$(BROKER)" = kafka ]; then libs=$$(tools/kafka/fetch.sh); fi \
		&& moto= && if [ "$(BROKER)" = snssqs ]; then moto=$$(tools/moto/install.sh); fi \
		&& jaeger= && case "$(JAEGER)" in ""|0|false|no) ;; *) jaeger=$$(tools/jaeger/build.sh);; esac \
		&& DAPRD=$$daprd KAFKA_LIBS=$$libs MOTO_SERVER=$$moto JAEGER=$$jaeger PUBLISHER_BIN=$(BIN)/publisher WORKER_BIN=$(BIN)/worker \
		BROKER=$(BROKER) exec $(BIN)/taskevents-local

##@ Build

.PHONY: build
build: ## Build the publisher and worker binaries into ./bin.
	@for app in $(APPS); do CGO_ENABLED=0 go build -trimpath -o $(BIN)/$$app ./$$app; done

.PHONY: daprd
daprd: ## Build (once per machine) the pinned daprd and print its path.
	@tools/daprd/build.sh

.PHONY: helm
helm: ## Build (once per machine) the pinned helm and print its path.
	@tools/helm/build.sh

.PHONY: helm-docs
helm-docs: ## Build (once per machine) the pinned helm-docs and print its path.
	@tools/helm-docs/build.sh

.PHONY: chart-docs
chart-docs: ## Regenerate charts/taskevents/README.md from the `# --` comments in its values.yaml.
	@tools/helm-docs/render.sh charts/taskevents

.PHONY: kube
kube: ## Build (once per machine) the pinned Kubernetes binaries (apiserver to kubelet, kubectl); print their directory.
	@tools/kube/build.sh

.PHONY: images
images: ## Build both images with Docker from the repository root (IMAGE_REGISTRY, IMAGE_TAG).
	@for app in $(APPS); do docker build -f $$app/Dockerfile -t $(IMAGE_REGISTRY)/$$app:$(IMAGE_TAG) .; done

.PHONY: containerd
containerd: ## Build (once per machine) the pinned containerd, ctr and runc shim; print their directory.
	@tools/containerd/build.sh

.PHONY: coredns
coredns: ## Build (once per machine) the pinned CoreDNS and print its path.
	@tools/coredns/build.sh

.PHONY: prometheus
prometheus: ## Build (once per machine) the pinned Prometheus server and promtool; print their directory.
	@tools/prometheus/build.sh

.PHONY: jaeger
jaeger: ## Build (once per machine) the pinned Jaeger (v2: collector, in-memory store, query API) and print its path.
	@tools/jaeger/build.sh

.PHONY: dapr-control-plane
dapr-control-plane: ## Build (once per machine) Dapr's operator, injector, sentry, placement and scheduler; print their directory.
	@tools/daprd/build-control-plane.sh

.PHONY: kafka
kafka: ## Fetch (once per machine) the pinned Apache Kafka jars from Maven Central; print their directory.
	@tools/kafka/fetch.sh

.PHONY: prereqs
prereqs: ## Install missing Debian packages the local run and tests need (brokers, Java, etcd, runc, CNI plugins, iptables).
	@tools/prereqs.sh

##@ Test

.PHONY: test
test: check test-unit test-e2e test-cluster ## Every check and test: format, vet, lint, unit, fuzz seeds, end-to-end, cluster.

.PHONY: test-unit
test-unit: ## Unit tests and fuzz seed corpora of kit and both apps (and the bench's go-sdk anchor), with the race detector.
	@for m in $(UNIT_MODULES); do (cd $$m && go test -race -count=1 ./...); done
	@for m in $(OUTSIDE_MODULES); do (cd $$m && GOWORK=off go test -race -count=1 ./...); done

.PHONY: test-e2e
# One e2e package at a time, as when they were one: flows and chaos time daprd and the brokers
# on this machine's CPU, and must not share it with each other. The tools module's own tests
# (harness, images, bench, commands: some start Kafka or build images) run with the repository checks.
test-e2e: prereqs ## End-to-end tests through the real daprd and brokers (BROKERS=redis,kafka,rabbitmq: all by default).
	@daprd=$$(tools/daprd/build.sh) && libs=$$(tools/kafka/fetch.sh) && helm=$$(tools/helm/build.sh) && helmdocs=$$(tools/helm-docs/build.sh) && jaeger=$$(tools/jaeger/build.sh) \
		&& kube=$$(tools/kube/build.sh) && moto=$$(tools/moto/install.sh) && prom=$$(tools/prometheus/build.sh) \
		&& export DAPRD=$$daprd KAFKA_LIBS=$$libs HELM=$$helm HELM_DOCS=$$helmdocs KUBE_DIR=$$kube MOTO_SERVER=$$moto JAEGER=$$jaeger PROMETHEUS=$$prom BROKERS=$(BROKERS) \
		&& rc=0 && for pkgs in './e2e/repo ./tools/...' ./e2e/flows ./e2e/chaos ./e2e/cluster; do \
			go test -count=1 -v -timeout 30m -skip '^TestCluster$$' $$pkgs 2>&1 \
			| grep -E --line-buffered -v '^=== (RUN|PAUSE|CONT)' || rc=1; \
		done; exit $$rc

.PHONY: test-cluster
test-cluster: prereqs ## The chart on a real single-node Kubernetes cluster (containerd, kubelet, Dapr's control plane); needs root.
	@daprd=$$(tools/daprd/build.sh) && cp=$$(tools/daprd/build-control-plane.sh) && helm=$$(tools/helm/build.sh) \
		&& kube=$$(tools/kube/build.sh) && containerd=$$(tools/containerd/build.sh) && coredns=$$(tools/coredns/build.sh) \
		&& cd e2e && DAPRD=$$daprd DAPR_CONTROL_PLANE_DIR=$$cp HELM=$$helm KUBE_DIR=$$kube CONTAINERD_DIR=$$containerd \
		COREDNS=$$coredns go test -count=1 -v -timeout 20m -run '^TestCluster$$' ./cluster 2>&1 \
		| grep -E --line-buffered -v '^=== (RUN|PAUSE|CONT)'

.PHONY: fuzz
fuzz: ## Fuzz every target: FUZZ_PARSERS for FUZZTIME (1000000x), the rest for FUZZ_OTHERTIME (200000x); then fuzz-api.
	@failed=0; ran=; for m in $(UNIT_MODULES); do \
		list=$$(cd $$m && go test -list '^Fuzz' ./... | awk '/^Fuzz/ {f = f " " $$1} /^ok / {if (f != "") print $$2 f; f = ""}'); \
		while read -r pkg targets; do for f in $$targets; do \
			ft=$(FUZZ_OTHERTIME); case " $(FUZZ_PARSERS) " in *" $$f "*) ft=$(FUZZTIME);; esac; \
			log=$$(mktemp); start=$$EPOCHREALTIME; rc=0; \
			(cd $$m && go test -run '^$$' -fuzz "^$$f$$" -fuzztime $$ft $$pkg) >$$log 2>&1 || rc=$$?; \
			secs=$$(awk -v a=$$start -v b=$$EPOCHREALTIME 'BEGIN {printf "%.1f", b - a}'); \
			execs=$$(awk 'match($$0, /execs: [0-9]+/) {n = substr($$0, RSTART + 7, RLENGTH - 7)} END {print n + 0}' $$log); \
			crashes=$$(grep -c 'Failing input written to' $$log || true); note=; \
			if [ $$rc -ne 0 ] && [ $$crashes -eq 0 ] && grep -q '^    context deadline exceeded$$' $$log; then \
				note=" (a duration ended with go1.26's coordinator race, golang/go#75804: no input failed; Nx avoids it)"; \
			elif [ $$rc -ne 0 ]; then cat $$log; failed=1; [ $$crashes -gt 0 ] || crashes=1; fi; \
			if [[ $$ft == *x ]] && [ $$execs -lt $${ft%x} ]; then echo "fuzz $$f: only $$execs of $$ft executions"; failed=1; fi; \
			echo "fuzz $$f: execs=$$execs crashes=$$crashes duration=$${secs}s$$note"; rm -f $$log; ran="$$ran $$f "; \
		done; done <<<"$$list"; done; \
	for f in $(FUZZ_PARSERS); do case "$$ran" in *" $$f "*) ;; *) echo "fuzz $$f: no such fuzz target"; failed=1;; esac; done; \
	if $(MAKE) -n fuzz-api >/dev/null 2>&1; then $(MAKE) fuzz-api || failed=1; else echo "fuzz-api: no such target yet; skipped"; fi; \
	exit $$failed

# make fuzz-api: schemathesis test cases per API operation and phase.
FUZZ_API_EXAMPLES ?= 500

.PHONY: fuzz-api
fuzz-api: prereqs build ## schemathesis on publisher/openapi.yaml against the real system: no 5xx, every answer as documented (FUZZ_API_EXAMPLES, 500).
	@go build -o $(BIN)/fuzz-api ./tools/cmd/fuzz-api
	@daprd=$$(tools/daprd/build.sh) && st=$$(tools/schemathesis/install.sh) \
		&& DAPRD=$$daprd SCHEMATHESIS=$$st PUBLISHER_BIN=$(BIN)/publisher WORKER_BIN=$(BIN)/worker \
		FUZZ_API_ARGS="--max-examples $(FUZZ_API_EXAMPLES) $(FUZZ_API_ARGS)" $(BIN)/fuzz-api

.PHONY: chaos
chaos: prereqs ## Chaos at full size (SIGKILLed worker, sidecar and replica, Redis restart, slow handler, SIGTERM, Idempotency-Key retries) and 5 minutes of load; a line each.
	@daprd=$$(tools/daprd/build.sh) && libs=$$(tools/kafka/fetch.sh) && brokers='$(BROKERS)' && cd e2e || exit 1; \
	start=$$SECONDS; rc=0; \
	TASKEVENTS_CHAOS=full DAPRD=$$daprd KAFKA_LIBS=$$libs BROKERS=$${brokers:-redis,kafka} \
		go test -count=1 -v -timeout 90m -run '^TestChaos' ./chaos 2>&1 \
		| grep -E --line-buffered -v '^=== (RUN|PAUSE|CONT)' || rc=$$?; \
	echo "make chaos: $$((SECONDS - start))s, exit status $$rc"; exit $$rc

# make bench: the Python venv downloads from PyPI while the Go builds use the CPU.
.PHONY: bench
bench: prereqs build ## Both apps against their anchors (direct daprd, go-sdk, Python FastAPI + Dapr SDK, no-op handler) on Redis, ~7 min: a line per measure, bin/bench/results.*, docs/benchmarks/*.png.
	@py=$$(mktemp) && { tools/bench/python/install.sh >$$py & pid=$$!; } \
		&& go build -o $(BIN)/taskevents-bench ./tools/cmd/bench && go build -o $(BIN)/noop-worker ./tools/cmd/noop-worker \
		&& daprd=$$(tools/daprd/build.sh) && gosdk=$$(tools/bench/gosdk-publisher/build.sh) \
		&& wait $$pid && uvicorn=$$(cat $$py) && rm -f $$py \
		&& DAPRD=$$daprd GOSDK_PUBLISHER_BIN=$$gosdk PYTHON_UVICORN=$$uvicorn PUBLISHER_BIN=$(BIN)/publisher \
		WORKER_BIN=$(BIN)/worker NOOP_WORKER_BIN=$(BIN)/noop-worker $(BIN)/taskevents-bench

.PHONY: bench-micro
bench-micro: ## Go microbenchmarks (-benchmem) of kit and both apps.
	@for m in $(UNIT_MODULES); do (cd $$m && go test -run '^$$' -bench . -benchmem ./...); done

##@ Code quality

.PHONY: check
check: fmt-check vet lint ## gofmt, go vet and golangci-lint on every module.

.PHONY: fmt
fmt: ## Format all Go code.
	@gofmt -w $(MODULES)

.PHONY: fmt-check
fmt-check:
	@out=$$(gofmt -l $(MODULES) $(OUTSIDE_MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

.PHONY: vet
vet: ## go vet every module.
	@go vet $(addprefix ./,$(addsuffix /...,$(MODULES)))
	@for m in $(OUTSIDE_MODULES); do (cd $$m && GOWORK=off go vet ./...); done

.PHONY: lint
lint: $(GOLANGCI_LINT) ## golangci-lint (pinned) on every module.
	@for m in $(MODULES); do (cd $$m && $(GOLANGCI_LINT) run --config ../.golangci.yml ./...); done
	@for m in $(OUTSIDE_MODULES); do (cd $$m && GOWORK=off $(GOLANGCI_LINT) run --config $(CURDIR)/.golangci.yml ./...); done

$(GOLANGCI_LINT):
	@mkdir -p $(BIN)
	@echo "installing golangci-lint $(GOLANGCI_LINT_VERSION) from the Go module proxy..." >&2
	@GOBIN=$(BIN) GOWORK=off go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	@mv $(BIN)/golangci-lint $@

.PHONY: tidy
tidy: ## go mod tidy every module, then go work sync.
	@for m in $(MODULES) $(OUTSIDE_MODULES) tools/daprd tools/helm tools/helm-docs tools/kube tools/containerd tools/coredns tools/jaeger tools/prometheus; do (cd $$m && GOWORK=off go mod tidy); done; go work sync
