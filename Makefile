# preview-broker developer commands. Everything installs into .venv; Go binaries
# for the real control plane go to a cache outside the tree (scripts/testbin).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help venv run test test-unit testbin system-deps image clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)  ## create .venv with the project and its test tools

run: $(STAMP)  ## run the broker locally against a real Dex (http dev mode) and print the URL to open
	$(PY) scripts/dev

testbin:  ## build etcd, kube-apiserver, kube-controller-manager, dex, helm (once)
	$(PYTHON) scripts/testbin

system-deps:  ## install buildah and debootstrap (Debian, as root) when missing, for the image tests
	@command -v buildah >/dev/null && command -v debootstrap >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah debootstrap >/dev/null; } || \
	  echo "make: buildah/debootstrap missing and not root; the image tests will say what to install"

image: system-deps  ## build the container image without Docker (debootstrap + buildah)
	$(PYTHON) scripts/build-image

test: $(STAMP) testbin system-deps  ## set up and run every test (builds the real binaries when missing)
	$(PY) -m pytest -q

test-unit: $(STAMP)  ## only the fast tests that need no real control plane
	$(PY) -m pytest -q -m 'not cluster and not dex'

clean:  ## remove the virtualenv and caches (not the testbin cache)
	rm -rf $(VENV) .pytest_cache
