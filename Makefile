# The lifecycle's front door. `make setup` once, then `make run`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
# Any DVC remote URL (s3://bucket/path, gs://..., ssh://...); local by default. An s3:// remote installs the
# `s3` extra (dvc-s3); DVC_S3_ENDPOINT points it at an S3-compatible store. Credentials: AWS_ACCESS_KEY_ID and
# AWS_SECRET_ACCESS_KEY (or an AWS profile) in the environment, never in a config file.
DVC_REMOTE ?= $(CURDIR)/.dvcstore
DVC_S3_ENDPOINT ?=
PORT ?= 3000
# The address `make serve` listens on. Beyond loopback it needs keys (MLOPS_API_KEY for clients, MLOPS_LABEL_KEY
# for labellers, or a keys file in MLOPS_KEYS_FILE): `mlops keys check` refuses to start without them.
HOST ?= 127.0.0.1
# The params file `make monitor-ui` reads monitor.workspace from (a relative workspace is under this file's folder)
PARAMS ?= params.yaml

include airflow.env
export $(shell sed -n 's/^\([A-Z_][A-Z0-9_]*\)=.*/\1/p' airflow.env)
export AIRFLOW_HOME := $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export BENTOML_HOME := $(CURDIR)/.bentoml
export BENTOML_DO_NOT_TRACK := True
export DVC_NO_ANALYTICS := 1
export GX_ANALYTICS_ENABLED := False
export HF_HUB_OFFLINE := 1
export MLOPS_TRAFFIC_DIR ?= $(CURDIR)/logs/traffic
export MLOPS_FEEDBACK_DIR ?= $(CURDIR)/logs/feedback
export PATH := $(BIN):$(PATH)

.PHONY: help setup run test test-fast lint docs docs-serve serve monitor-ui airflow airflow-stop bento-image compose-check clean

help:  ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

setup: $(BIN)/python  ## create .venv, install the locked dependencies, initialise DVC, Airflow and BentoML homes
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	@# DVC talks to S3 through its dvc-s3 plugin: the `s3` extra, at the lock's versions
	@case "$(DVC_REMOTE)" in s3://*) $(BIN)/python -m pip install -q -c requirements.lock --no-build-isolation \
		-e '.[s3]' ;; esac
	$(BIN)/dvc config core.analytics false
	$(BIN)/dvc remote add --local --force --default storage $(DVC_REMOTE)
	@# an S3-compatible store other than AWS (MinIO, Ceph, moto): its URL; credentials stay in the environment
	@if [ -n "$(DVC_S3_ENDPOINT)" ]; then $(BIN)/dvc remote modify --local storage endpointurl $(DVC_S3_ENDPOINT); fi
	mkdir -p $(BENTOML_HOME) $(AIRFLOW_HOME)
	@# ingest depends on the feedback batches folder: without it a plain `dvc repro` stops at once (with
	@# data/feedback.dvc, `make run` or `dvc pull data/feedback.dvc` brings the recorded batches instead)
	@if [ ! -f data/feedback.dvc ]; then mkdir -p data/feedback; fi
	@case "$(DVC_REMOTE)" in *://*) ;; *) mkdir -p $(DVC_REMOTE) ;; esac
	$(BIN)/airflow db migrate > $(AIRFLOW_HOME)/db-migrate.log 2>&1 || (tail -20 $(AIRFLOW_HOME)/db-migrate.log; exit 1)
	@echo "setup: done. Next: make run"

run:  ## run the whole lifecycle with DVC (stages that are up to date are skipped), then promote what the gate accepted
	@# the feedback batches git records (data/feedback.dvc) come from the DVC remote; none yet: an empty folder
	@if [ -f data/feedback.dvc ]; then $(BIN)/dvc pull -q data/feedback.dvc; else mkdir -p data/feedback; fi
	$(BIN)/dvc repro
	@# `mlops promote` exits 3 when the gate rejected the candidate: an outcome, so the run goes on and ends 0
	@# with the verdict last; make would turn any other status into its own 2 (docs/reference/exit-status.md)
	@status=0; $(BIN)/mlops promote || status=$$?; \
	if [ $$status -ne 0 ] && [ $$status -ne 3 ]; then exit $$status; fi; \
	$(BIN)/dvc push -q && $(BIN)/python -m mlops.orchestration.summary

# Workers for `make test` (pytest-xdist), two by default, as CI runs it: they overlap the suite's waits on Airflow,
# DVC and served processes; tests/conftest.py keeps the tests that share an expensive fixture (the trained tiny
# model, a module's lifecycle) on one worker. TEST_WORKERS=0 runs one process.
TEST_WORKERS ?= 2

test:  ## the test suite, as CI runs it (two xdist workers; TEST_WORKERS=0 for one process)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup

test-fast:  ## the tests that take seconds, not minutes (on every core: pytest-xdist)
	$(BIN)/pytest -m "not slow" -n auto

lint:  ## ruff (style, imports, docstrings in mlops/core), mypy (strict on mlops/core), the import layers (lint-imports)
	$(BIN)/ruff check mlops dags plugins tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

docs:  ## build the documentation site into site/ (mkdocs build --strict: a broken link or reference fails)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

docs-serve:  ## serve the documentation on http://127.0.0.1:8000, rebuilt on every change
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

serve:  ## serve the champion Bento on $(HOST):$(PORT) (127.0.0.1 by default; beyond it, keys are required)
	@$(BIN)/mlops keys check --host $(HOST)
	@bento=$$($(BIN)/mlops registry show --field bento) && echo "serving $$bento on http://$(HOST):$(PORT)" && \
	MLOPS_PROJECT_DIR=$(CURDIR) $(BIN)/bentoml serve $$bento --host $(HOST) --port $(PORT)

monitor-ui: PORT = 8002
monitor-ui:  ## Evidently's UI over monitor.workspace (a snapshot per monitoring run) on 127.0.0.1:$(PORT), 8002 by default
	@workspace=$$($(BIN)/python -c 'import sys; from mlops.core.settings import load_settings; \
	print(load_settings(sys.argv[1]).monitor.workspace)' "$(PARAMS)") && cd "$(dir $(PARAMS))" && \
	echo "monitor-ui: the Evidently workspace $$workspace on http://127.0.0.1:$(PORT)" && \
	DO_NOT_TRACK=1 exec $(BIN)/evidently ui --workspace "$$workspace" --host 127.0.0.1 --port $(PORT)

airflow:  ## start Airflow (SQLite, LocalExecutor) on 127.0.0.1 only, port 8080, in the background
	@$(BIN)/python -m mlops.orchestration.airflow_ctl start

airflow-stop:  ## stop the Airflow started by `make airflow`
	@$(BIN)/python -m mlops.orchestration.airflow_ctl stop

bento-image:  ## the champion's Bento as a container image (`bentoml containerize`; needs a Docker engine)
	$(CURDIR)/docker/build-bento-image.sh $(IMAGE)

compose-check:  ## validate docker/docker-compose.yaml with docker/.env (or the example, which must fail)
	@env_file=docker/.env; [ -f $$env_file ] || env_file=docker/.env.example; \
	if docker compose version >/dev/null 2>&1; then compose="docker compose"; else compose=docker-compose; fi; \
	$$compose -f docker/docker-compose.yaml --env-file $$env_file config -q && echo "compose: valid with $$env_file"

clean:  ## remove lifecycle outputs (the DVC cache and the model store stay)
	rm -rf data models metrics plots reports dvclive
