# CloudPose — every target sets up what it needs (virtual environment, model) and is safe to rerun.
#   make up      start every function locally on :60000 (the local default)
#   make test    run the test suite (what .ci/run runs)
#   make bench   each task's serving variants against its typical peer server (docs/benchmarks.md)
#   make album-up / album-down   the photo-album system on :61000 (docs/album.md)
# Caches outside the clone: ~/.cache/cloudpose (models, wheels), ~/.cache/pip.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CACHE ?= $(HOME)/.cache/cloudpose
export POSE_MODEL_DIR ?= $(CACHE)/models
export CLOUDPOSE_DATA ?= $(abspath ../shared/data)
PYTEST_ARGS ?=

REQS := requirements/serve.txt requirements/build.txt requirements/dev.txt requirements/album.txt pyproject.toml
STAMP := $(VENV)/.installed
# OpenCV 4.10 (the last with a Darknet importer) in a venv of its own: the detect reference and peer server
REF_VENV ?= $(CACHE)/venvs/opencv4
REF_STAMP := $(REF_VENV)/.installed-$(shell sha256sum requirements/reference.txt | cut -c1-12)
export CLOUDPOSE_REFERENCE_PYTHON ?= $(REF_VENV)/bin/python

.PHONY: help venv reference-venv model up album-up album-down album-status test bench soak images manifests swarm-up swarm-down failover clean

help:
	@sed -n '2,5p' Makefile

$(STAMP): $(REQS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip wheel
	$(PY) -m pip install --quiet -r requirements/dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $@

venv: $(STAMP)

$(REF_STAMP): requirements/reference.txt
	@test -x $(REF_VENV)/bin/python || $(PYTHON) -m venv $(REF_VENV)
	$(REF_VENV)/bin/python -m pip install --quiet -r requirements/reference.txt
	@rm -f $(REF_VENV)/.installed-* && touch $@

reference-venv: $(REF_STAMP)

model: $(STAMP)
	$(VENV)/bin/cloudpose-prepare

up: model
	$(VENV)/bin/cloudpose-local

# The photo-album system (docs/album.md): PostgreSQL, SeaweedFS, Temporal, the functions, the worker and the
# album page on http://127.0.0.1:61000/; album-down stops it and keeps the data (~/.cache/cloudpose/album).
album-up: model
	$(PY) -m album.local up

album-down: $(STAMP)
	$(PY) -m album.local down

album-status: $(STAMP)
	$(PY) -m album.local status

test: model $(REF_STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

bench: model $(REF_STAMP)
	$(PY) -m bench.serving $(BENCH_ARGS)

# 10,000 mixed good and bad requests on pose-json and on detect-json, each in a 0.5-CPU / 512 MiB cgroup (root)
soak: model
	$(PY) -m loadtest.soak $(SOAK_ARGS)

# stack.yml, k8s/ and the Swarm stack's services, rendered from shared/cloudpose/deployment.py (commit the result)
manifests: $(STAMP)
	$(PY) -m cloudpose.manifests

clean:
	rm -rf $(VENV) build .pytest_cache

# Container images and Docker Swarm (docs/containers.md):
#   make images [FUNCTIONS="pose-json detect-json"]   the function images (default all), built offline
#   make swarm-up REPLICAS=2 [FUNCTIONS=...]          those functions on Docker Swarm, behind nginx on 127.0.0.1:8088
#   make swarm-scale REPLICAS=1 [FN=pose-json] [OVERCOMMIT=1]     make swarm-status     make swarm-down
#   make failover [FAILOVER_ARGS=...]                 kill a replica under load (docs/failover.md)
WHEELS ?= $(CACHE)/wheels/serve
IMAGE_TAG ?= latest
BASE_IMAGE ?=
# empty: each function's build_args in stack.yml; 0 or 1 overrides them all
WITH_OPENVINO ?=
FUNCTIONS ?= all
REPLICAS ?= 2
FN ?= all
OVERCOMMIT ?=
SWARM := $(PY) -m loadtest.engines.swarm
# Wheels for the images' CPython 3.11 on Debian bookworm x86_64 (glibc 2.36), whatever the host runs.
WHEEL_TARGET := --only-binary=:all: --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none \
	$(foreach v,$(shell seq 36 -1 17),--platform manylinux_2_$(v)_x86_64) --platform manylinux2014_x86_64 --platform linux_x86_64
export CACHE WHEELS IMAGE_TAG BASE_IMAGE WITH_OPENVINO

.PHONY: wheels base-image images swarm-scale swarm-status

$(WHEELS)/.complete: requirements/serve.txt | $(STAMP)
	$(PY) -m pip download --quiet --disable-pip-version-check -r requirements/serve.txt -d $(WHEELS) $(WHEEL_TARGET)
	@touch $@

wheels: $(WHEELS)/.complete

base-image:
	scripts/rootfs-image.sh cloudpose/base:bookworm python3 python3-venv

SELECTED := $(if $(filter all,$(FUNCTIONS)),,$(FUNCTIONS))

images: model wheels
	scripts/build-images.sh $(SELECTED)

swarm-up: images
	$(SWARM) up --replicas $(REPLICAS) $(foreach f,$(SELECTED),--function $(f)) $(if $(OVERCOMMIT),--overcommit)

swarm-scale: $(STAMP)
	$(SWARM) scale --replicas $(REPLICAS) --function $(FN) $(if $(OVERCOMMIT),--overcommit)

swarm-status: $(STAMP)
	$(SWARM) status

swarm-down: $(STAMP)
	$(SWARM) down

failover: $(STAMP)
	$(PY) -m loadtest.failover $(FAILOVER_ARGS)
