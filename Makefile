# CloudPose — every target sets up what it needs (virtual environment, model) and is safe to rerun.
#   make up      start both functions locally on :60000 (the local default)
#   make test    run the test suite (what .ci/run runs)
# Caches outside the clone: ~/.cache/cloudpose (models, wheels), ~/.cache/pip.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CACHE ?= $(HOME)/.cache/cloudpose
export POSE_MODEL_DIR ?= $(CACHE)/models
export CLOUDPOSE_DATA ?= $(abspath ../shared/data)
PYTEST_ARGS ?=

REQS := requirements/serve.txt requirements/build.txt requirements/dev.txt pyproject.toml
STAMP := $(VENV)/.installed

.PHONY: help venv model up test bench images swarm-up swarm-down clean

help:
	@sed -n '2,4p' Makefile

$(STAMP): $(REQS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip wheel
	$(PY) -m pip install --quiet -r requirements/dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $@

venv: $(STAMP)

model: $(STAMP)
	$(VENV)/bin/cloudpose-prepare

up: model
	$(VENV)/bin/cloudpose-local

test: model
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build .pytest_cache
