# JupyCell developer entry points.
#   make engine   ensure a Docker engine (+ runsc, docker compose) is running
#   make images   build jupycell-sandbox:latest and jupycell-gateway:latest. A custom kernel image from another
#                 requirements file (for JUPYCELL_ALLOWED_IMAGES, docs/packages.md#custom-images):
#                 make images JUPYCELL_BUILD=sandbox JUPYCELL_REQUIREMENTS_APP=requirements_science.txt \
#                             JUPYCELL_SANDBOX_IMAGE=jupycell-sandbox:science
#   make deps     install Python dependencies for development and tests
#   make postgres ensure a throwaway PostgreSQL for the persistence tests; run
#                 them on it with JUPYCELL_TEST_POSTGRES_URL=$$(scripts/ensure-postgres.sh)
#   make check    static checks: ruff, mypy (strict on the core and the notebook model), the import rules
#   make test     all of the above, then the test suite (runc), then integration + security again under gVisor
#   make test-runsc       only the integration and security suites, kernels under gVisor (runsc)
#   make test-agents      both suites again under gVisor with JUPYCELL_BACKEND=agents (each gateway on an agent of its own)
#   make up       run the gateway with docker compose
#   make bench    benchmark against the raw floor and Jupyter Kernel Gateway (BENCH_ARGS=--quick for a fast check)
#   make bench-deadlines  how long after a run's deadline the response comes (timeout, SIGINT ignored)
#   make bench-jupyter    `1+1` over the kernel websocket, direct and through jupyter server --gateway-url
#   make bench-runtimes   kernel start and `1+1` latency under runc and runsc
#   make bench-packages   `%pip install` cell: cached, first fetch, and plain pip on the host (docs/packages.md)
#   make bench-agent      `1+1` through the node agent's Curve relay vs direct ipc; the agent's footprint; then
#                         through a gateway with JUPYCELL_BACKEND=agents vs the local backend (+1.5 ms target)
#   make swarm-up   a two-node Swarm of docker-in-docker nodes on this machine, the stack deployed (docs/swarm.md)
#   make swarm-check    probe the agents again, and restart them all under running kernels
#   make swarm-down remove everything swarm-up made
#   make test-swarm swarm-up, tests/swarm against both replicas, swarm-down (run by .ci/run)
#   make bench-kernel     the sandbox kernel's `1+1` vs stock ipykernel, one row per change (bench/kernel_floor.py)
#   make clean    remove kernel containers left behind (label jupycell.managed=true)
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

PYTHON ?= python3
PYTEST_ARGS ?= -n 2
UP_ARGS ?=
BENCH_ARGS ?=
BENCH_VENV := bench/.venv

# testcontainers' Ryuk reaper image cannot be pulled without a registry;
# tests clean up by label instead.
export TESTCONTAINERS_RYUK_DISABLED ?= true

.PHONY: engine images deps postgres check test test-runsc test-agents up clean bench bench-deadlines bench-jupyter \
	bench-runtimes bench-agent swarm-up swarm-check swarm-down test-swarm bench-kernel bench-packages

engine:
	scripts/ensure-docker.sh

images: engine
	scripts/build-images.sh

deps:
	$(PYTHON) -m pip install -r requirements-dev.txt
	PYTHON=$(PYTHON) scripts/install-browser.sh

postgres:
	scripts/ensure-postgres.sh

check: deps
	$(PYTHON) -m ruff check gateway tests bench
	$(PYTHON) -m mypy
	$(PYTHON) -c 'from importlinter.cli import lint_imports_command; lint_imports_command()'

test: engine images deps check
	$(PYTHON) -m pytest $(PYTEST_ARGS) tests
	$(MAKE) --no-print-directory test-runsc
	$(MAKE) --no-print-directory test-agents

# The same kernels under gVisor: every test gateway passes JUPYCELL_RUNTIME through to its settings.
test-runsc: engine images deps
	JUPYCELL_RUNTIME=runsc $(PYTHON) -m pytest $(PYTEST_ARGS) tests/integration tests/security

# The existing suites with JUPYCELL_BACKEND=agents: every test gateway runs its kernels through a node agent of its
# own (a plain process on the local engine) on a PostgreSQL database of its own (testing/harness.py, TEST_BACKEND),
# the whole integration and security suites, kernels under gVisor (about 12 minutes). With the two passes before it,
# that covers local + runc, local + gVisor and agents + gVisor in full; agents + runc is covered by the agent, agents
# backend, replica and package-on-agents tests of the first pass and by `make test-swarm`, and passes in full too (13
# more minutes): `JUPYCELL_TEST_BACKEND=agents JUPYCELL_TEST_POSTGRES_URL=$(scripts/ensure-postgres.sh) pytest -n 2
# tests/integration tests/security`.
test-agents: engine images deps postgres
	JUPYCELL_TEST_POSTGRES_URL="$${JUPYCELL_TEST_POSTGRES_URL:-$$(scripts/ensure-postgres.sh)}" \
		JUPYCELL_TEST_BACKEND=agents JUPYCELL_RUNTIME=runsc \
		$(PYTHON) -m pytest $(PYTEST_ARGS) tests/integration tests/security

# Not part of `make test`: its own venv (gateway deps + Jupyter Kernel Gateway from PyPI), minutes of load.
bench: engine images
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q -r bench/requirements.txt
	$(BENCH_VENV)/bin/python -m bench --write-docs $(BENCH_ARGS)

up: engine images
	docker compose up $(UP_ARGS)

clean:
	docker ps -aq --filter label=jupycell.managed=true | xargs -r docker rm -f

bench-deadlines:
	$(PYTHON) bench/deadline_accuracy.py

bench-jupyter:
	$(PYTHON) bench/jupyter_websocket.py

bench-runtimes:
	$(PYTHON) bench/runtimes.py

bench-packages:
	$(PYTHON) bench/packages.py

bench-agent: postgres
	$(PYTHON) bench/agent_relay.py
	$(PYTHON) bench/relay_designs.py
	JUPYCELL_TEST_POSTGRES_URL="$${JUPYCELL_TEST_POSTGRES_URL:-$$(scripts/ensure-postgres.sh)}" \
		$(PYTHON) bench/agents_backend.py

# Uses the images `make images` built (or JUPYCELL_GATEWAY_IMAGE / JUPYCELL_SANDBOX_IMAGE from the environment).
swarm-up: engine
	scripts/swarm-up.sh
	scripts/swarm-check.sh

# On a running swarm-up: the probe again, then kernels surviving a forced update of the agent service.
swarm-check:
	scripts/swarm-check.sh
	scripts/swarm-check.sh --agent-restart

swarm-down:
	scripts/swarm-down.sh

# The whole Swarm round trip (run by .ci/run): up, tests/swarm against both replicas, down; the logs of a failure
# are kept in .swarm-logs/ (scripts/swarm-logs.sh).
SWARM_PORT ?= 8800
test-swarm: engine images deps
	trap scripts/swarm-down.sh EXIT; JUPYCELL_SWARM_PORT=$(SWARM_PORT) scripts/swarm-up.sh && \
	JUPYCELL_SWARM_URLS=http://127.0.0.1:$(SWARM_PORT),http://127.0.0.1:$$(($(SWARM_PORT) + 1)) \
	$(PYTHON) -m pytest -n 0 -v -s tests/swarm || { scripts/swarm-logs.sh; exit 1; }

bench-kernel:
	$(PYTHON) -m bench.kernel_floor --switches --firsts 5
