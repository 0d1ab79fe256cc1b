# taskq: the verbs. Every target sets itself up (its own venv) first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup dev test unit integration lint audit lock fmt clean
.PHONY: sam-setup validate build sam-api test-localstack deploy undeploy events
.PHONY: sam-host-build test-sam sam-api-localstack

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "taskq needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

dev: setup  ## run the whole service on the embedded emulator (Ctrl-C stops it)
	$(PY) -m infra.dev

# Two test files at a time (pytest-xdist, each file whole on one worker: its stack and
# fixtures stay shared): most tests wait on a local cloud, so the two cores are not the
# limit. The fault suite then runs alone, as its deadline and accounting assume.
test: setup  ## the whole suite: unit, integration and end-to-end
	$(PY) -m pytest -n 2 --dist loadfile --ignore=tests/faults
	$(PY) -m pytest tests/faults

unit: setup
	$(PY) -m pytest tests/unit

integration: setup
	$(PY) -m pytest tests/integration

# The counted fault suite at full size (make test runs it with a few hundred jobs): jobs,
# kills, duplicates, AWS faults and the accounting are printed. FAULT_JOBS and FAULT_SEED
# (a seed printed by an earlier run replays its plan) may be given: make faults FAULT_SEED=42
FAULT_JOBS ?= 2000
.PHONY: faults
faults: setup  ## thousands of jobs under kills, duplicates and AWS faults, every one accounted for
	TASKQ_FAULT_JOBS=$(FAULT_JOBS) $(if $(FAULT_SEED),TASKQ_FAULT_SEED=$(FAULT_SEED)) \
		$(PY) -m pytest tests/faults --timeout=900

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy shared/taskq infra functions bench
	$(VENV)/bin/bandit -q -r shared functions infra -ll

# pip-audit asks PyPI's JSON API (or OSV) about each pinned version: it needs the internet,
# which CI here does not have (only the package index), so it is its own target.
audit: setup
	$(VENV)/bin/pip-audit -r requirements.lock --no-deps --strict

lock: setup  ## pin every installed version again (after changing pyproject.toml)
	@(echo "# Exact versions of every package in .venv, as installed on the project's machine (Python 3.11)."; \
	  echo "# make setup installs with these as constraints; make lock writes this file again."; \
	  $(PY) -m pip freeze --exclude-editable | grep -viE '^(-e|taskq)') > requirements.lock

.PHONY: bench
bench: setup  ## throughput, latency, AWS calls and cost per job on the emulator -> results/
	@$(PY) -c 'import matplotlib, celery, kombu.transport.SQS, pycurl' 2>/dev/null || \
		$(PY) -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[bench]'
	$(PY) -m bench

fmt: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache build *.egg-info

# --- the AWS SAM CLI paths -------------------------------------------------------------------
# aws-sam-cli (the `sam` extra in pyproject.toml) pins boto3, click and pydantic below what
# taskq uses, so it gets a venv of its own; `make test` does not need it (its tests skip).
SAM_VENV  ?= .venv-sam
SAM       := $(SAM_VENV)/bin/sam
SAM_STAMP := $(SAM_VENV)/.installed-stamp
REGION    ?= us-east-1
# The CPU of this machine, for builds that run here (the smoke test, sam local).
HOST_ARCH  = $(shell $(PYTHON) -c 'import platform; print("arm64" if platform.machine().lower() in ("aarch64", "arm64") else "x86_64")')
HOST_BUILD := .aws-sam/host/build
export SAM_CLI_TELEMETRY := 0

$(SAM_STAMP): pyproject.toml
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check \
		$$($(PYTHON) -c 'import tomllib; print(" ".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["sam"]))')
	@touch $(SAM_STAMP)

sam-setup: $(SAM_STAMP)

validate: setup sam-setup  ## sam validate --lint, cfn-lint, and what those linters miss
	$(SAM) validate --lint --region $(REGION)
	$(SAM_VENV)/bin/cfn-lint template.yaml
	$(PY) -m pytest -q tests/unit/test_template_*.py

build: setup sam-setup  ## sam build (what deploy uploads), then run the built handlers here
	$(SAM) build --cached --parallel
	$(PY) -m infra.bytecode .aws-sam/build
	$(PY) -m pytest -q tests/integration/test_sam_build.py

env.json: template.yaml infra/samlocal.py | $(STAMP)
	$(PY) -m infra.samlocal env-json

# The host build: this machine's CPU, for what runs here (sam local, tests/integration/
# test_sam_build.py builds the same folder, so CI's make build leaves it ready).
sam-host-build: setup sam-setup
	$(SAM) build --cached --parallel --parameter-overrides Architecture=$(HOST_ARCH) \
		--build-dir $(HOST_BUILD) --cache-dir .aws-sam/host/cache
	$(PY) -m infra.bytecode $(HOST_BUILD)

# sam local start-api in Lambda containers (Docker) on the embedded emulator; the worker,
# sweeper and clock on the local runners. Builds the stand-in Lambda image first where AWS's
# cannot be pulled (infra/lambda_image.py; needs root for debootstrap).
sam-api: setup sam-setup  ## sam local start-api on 127.0.0.1:3000 in Lambda containers (Docker)
	@$(PY) -m infra.docker_engine
	$(PY) -m infra.lambda_image ensure
	$(MAKE) --no-print-directory sam-host-build
	$(PY) -m infra.sam_api

# The API's tests through sam local start-api (marker `docker`, left out of make test).
# Without a Docker engine: one line and success, except in CI (CI=true), where it fails.
test-sam: setup sam-setup  ## the API in Lambda containers through sam local (Docker)
	@if ! $(PY) -m infra.docker_engine 2>/dev/null; then \
		if [ "$${CI:-}" = true ]; then echo "test-sam: CI=true, but no Docker engine answers"; exit 1; fi; \
		echo "test-sam: skipped, no Docker engine answers (start dockerd or Docker Desktop)"; \
	else \
		$(PY) -m infra.lambda_image ensure && \
		$(MAKE) --no-print-directory sam-host-build && \
		$(PY) -m pytest -m docker tests/sam_local -q; \
	fi

# The same against LocalStack's container (docker compose up -d), with the committed env.json.
sam-api-localstack: setup sam-setup env.json
	$(PY) -m infra.localstack provision
	$(MAKE) --no-print-directory sam-host-build
	$(SAM) local start-api --template $(HOST_BUILD)/template.yaml \
		--parameter-overrides Architecture=$(HOST_ARCH) --env-vars env.json \
		--docker-network taskq-local --host 127.0.0.1 --port 3000 --region $(REGION)

test-localstack: setup  ## the integration suite on LocalStack ($$AWS_ENDPOINT_URL, or :4566)
	$(PY) -m infra.localstack

deploy: setup sam-setup  ## sam build + sam deploy to AWS (guided the first time: samconfig.toml)
	$(SAM) build --cached --parallel \
		--parameter-overrides Architecture=$$($(PY) -m infra.samlocal deploy-arch)
	$(PY) -m infra.bytecode .aws-sam/build
	$(PY) -m infra.samlocal check-build .aws-sam/build $$($(PY) -m infra.samlocal deploy-arch)
	if [ -f samconfig.toml ]; then $(SAM) deploy; else $(SAM) deploy --guided; fi
	@$(PY) -m infra.samlocal check-build .aws-sam/build $$($(PY) -m infra.samlocal deploy-arch) \
		|| echo "deploy: Architecture was changed while deploying; run make deploy again"

undeploy: sam-setup  ## sam delete: remove the stack samconfig.toml names (tables included)
	$(SAM) delete

events: setup sam-setup  ## regenerate tests/events/ with sam local generate-event
	$(PY) tests/events/generate.py --sam $(SAM)
