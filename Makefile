# The two commands of the README: `make demo` (the lifecycle on examples/churn) and `make test`.
SHELL := /bin/bash
UV := .tools/uv/bin/uv
RUN := $(UV) run --frozen --all-extras
# zizmor (regular and pedantic) over the kit and the caller templates adopters copy; no exemption for the kit
WORKFLOW_FILES := .github/workflows action.yml $(wildcard actions/*/action.yml) $(wildcard templates/workflows/*.yml)

export UV_PYTHON_DOWNLOADS := never
export DO_NOT_TRACK := 1
export MLFLOW_DISABLE_TELEMETRY := true
export GX_ANALYTICS_ENABLED := false
# uv keys its build of leanops on this (pyproject.toml's cache-keys), as scripts/bootstrap.py does
export LEANOPS_BUILD_KEY := $(shell sha256sum pyproject.toml | cut -c1-16)
export DVC_NO_ANALYTICS := 1

.PHONY: setup engine lint unit e2e test demo demo-down bench release

setup:
	@scripts/dev-setup.sh

# A Docker engine and the local runner image (as root: installs docker.io, debootstrap; builds once).
engine: setup
	@if [ "$$(id -u)" = 0 ]; then $(RUN) leanops act --prepare; \
	else echo "engine: not root; e2e tests need a running Docker engine"; fi

lint: setup
	$(RUN) ruff check .
	$(RUN) mypy
	$(RUN) actionlint .github/workflows/*.yml
	$(RUN) zizmor --no-progress $(WORKFLOW_FILES)
	$(RUN) zizmor --no-progress --pedantic $(WORKFLOW_FILES)

unit: setup
	$(RUN) pytest -m "not e2e" tests

e2e: engine
	$(RUN) pytest -m e2e tests

# Everything: lint, unit, integration and e2e tests (e2e under act with the real engine). The e2e suite and
# the unit and integration suites run side by side, each in its own pytest process (scripts/test-suites.sh).
test: engine
	$(RUN) ruff check .
	$(RUN) mypy
	@UV=$(UV) scripts/test-suites.sh
	$(RUN) actionlint .github/workflows/*.yml
	$(RUN) zizmor --no-progress $(WORKFLOW_FILES)
	$(RUN) zizmor --no-progress --pedantic $(WORKFLOW_FILES)

# The whole lifecycle on examples/churn (grows with each capability).
demo: setup
	$(RUN) python scripts/demo.py

# Stop what `make demo` leaves running (the model behind its router, the MLflow server).
demo-down: setup
	$(RUN) python scripts/demo.py --down

bench: setup
	$(RUN) python bench/setup/run.py

# make release VERSION=x.y.z: version, self-references, then the tag commands.
release: setup
	@test -n "$(VERSION)" || { echo "usage: make release VERSION=x.y.z"; exit 2; }
	$(RUN) leanops release "$(VERSION)"
