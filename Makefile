# preview-broker developer commands. Everything installs into .venv; Go binaries
# for the real control plane go to a cache outside the tree (scripts/testbin).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help venv lock run demo test test-node test-unit testbin system-deps image bench bench-quick clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

# The locks: every runtime and test dependency pinned with the hashes of all its files (the wheels
# of every platform: the release builds amd64 and arm64), made from pyproject.toml by `make lock`.
# requirements.lock is what the image installs; requirements-test.lock adds the test extra at the
# same versions; requirements-build.lock pins the build backend ([build-system] requires), so
# building the project itself fetches nothing unpinned either. tests/test_lock.py fails when
# pyproject.toml and the locks disagree. `make lock LOCK_FLAGS=--upgrade` moves every pin forward;
# without it the pins already in the locks are kept where pyproject.toml still allows them.
LOCK := requirements.lock
TEST_LOCK := requirements-test.lock
BUILD_LOCK := requirements-build.lock
LOCK_VENV := .venv-lock
UV_VERSION := 0.13.8
UV := $(LOCK_VENV)/bin/uv
UV_COMPILE := $(UV) pip compile -q pyproject.toml --universal --python-version 3.11 --generate-hashes \
	--custom-compile-command 'make lock' $(LOCK_FLAGS)

$(STAMP): pyproject.toml $(TEST_LOCK) $(BUILD_LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --require-hashes -r $(TEST_LOCK) -r $(BUILD_LOCK)
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)  ## create .venv with the project and its test tools, at the versions of requirements-test.lock

$(UV):
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install -q uv==$(UV_VERSION)

lock: $(UV)  ## pin every dependency of pyproject.toml with hashes: requirements.lock (image), -test.lock, -build.lock
	$(UV_COMPILE) --extra test -o $(TEST_LOCK)
	$(UV_COMPILE) -c $(TEST_LOCK) -o $(LOCK)
	$(PYTHON) -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")' \
	  | $(subst pyproject.toml,-,$(UV_COMPILE)) -o $(BUILD_LOCK)

run: $(STAMP)  ## run the broker locally against a real Dex (http dev mode) and print the URL to open
	$(PY) scripts/dev

# What the demo starts, and only that (the TOOLS of scripts/demo; tests/test_demo_target.py checks):
# etcd, kube-apiserver and kube-controller-manager ("kube"), Dex and the CRDs. Traefik comes from
# PyPI with .venv; no Debian package is needed, so no system-deps.
DEMO_TOOLS := etcd kube dex crds

demo: $(STAMP)  ## the whole stack (control plane, Dex, Traefik, broker, controller, sample previews) until Ctrl-C
	$(PYTHON) scripts/testbin $(DEMO_TOOLS) >/dev/null
	$(PY) scripts/demo

testbin: system-deps  ## build etcd, kube-apiserver, kube-controller-manager, dex, helm, promtool, actionlint, the node's parts (once)
	$(PYTHON) scripts/testbin

SYSTEM_TOOLS := buildah debootstrap chromium wrk
# Debian packages that are no command of that name: runc's build links libseccomp (cgo); the node
# tests (tests/node) run nft, iptables and ip.
SYSTEM_PACKAGES := libseccomp-dev nftables iptables iproute2

system-deps:  ## install buildah, debootstrap, chromium and the node tests' packages (Debian, as root) when missing
	@missing=""; for t in $(SYSTEM_TOOLS); do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then echo "make: installing$$missing"; apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "make: missing$$missing and not root; the tests that need them will say what to install"; fi; \
	fi

image: system-deps  ## build the container image without Docker (debootstrap + buildah)
	$(PYTHON) scripts/build-image

test: $(STAMP) testbin system-deps  ## set up and run every test (builds the real binaries when missing)
	$(PY) -m pytest -q

test-node: $(STAMP) testbin  ## only the chart on a real one-node cluster (tests/node; root; a few minutes)
	$(PY) -m pytest -q -m node

test-unit: $(STAMP)  ## only the fast tests (and the chart, alerts and workflow with the real helm, promtool, actionlint): no control plane, IdP, browser or image
	$(PYTHON) scripts/testbin helm promtool actionlint >/dev/null
	$(PY) -m pytest -q -m 'not cluster and not dex and not e2e and not image'

bench: $(STAMP) testbin system-deps  ## every benchmark: writes docs/benchmarks.md and its plots (about 30 minutes)
	$(PY) bench/forward_auth.py --duration 10 --rounds 5 --report
	$(PY) bench/propagation.py --count 200 --report
	$(PY) bench/scale.py --namespaces 10000 --changes 200 --report

bench-quick: $(STAMP) testbin system-deps  ## the same comparison in seconds; ends with the forward-auth summary line
	$(PY) bench/forward_auth.py --duration 2 --rounds 2

clean:  ## remove the virtualenvs and caches (not the testbin cache)
	rm -rf $(VENV) $(LOCK_VENV) .pytest_cache
