# Loom: `make demo` runs the lab demo, `make lab` keeps a lab running, `make test` runs the whole test suite.
# Both install what they need first (Debian packages, venv, protos) and start
# Open vSwitch in userspace mode.
PY := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: all bootstrap ovs protos protos-check lint test test-unit fuzz demo lab bench clean

all: test

bootstrap:
	bash scripts/bootstrap.sh

ovs: bootstrap
	bash scripts/start-ovs.sh

protos: bootstrap
	bash scripts/gen-protos.sh

protos-check: bootstrap
	bash scripts/gen-protos.sh --check

# ruff; the import contracts in pyproject.toml (the agent never imports the controller, leaves stay
# leaves); mypy on the compiler and the controller/agent contract.
lint: bootstrap
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	.venv/bin/lint-imports
	$(PY) -m mypy

test: bootstrap ovs protos-check lint
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-unit: bootstrap protos-check
	$(PY) -m pytest -q tests/unit $(PYTEST_ARGS)

# The differential test of incremental compilation, long: FUZZ_EXAMPLES examples of up to 60 steps.
FUZZ_EXAMPLES ?= 5000
fuzz: bootstrap
	LOOM_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -q -p no:cacheprovider --timeout=0 tests/unit/test_distributor_differential.py

demo: bootstrap ovs
	$(PY) -m lab.mininet demo

# Loom on the lab until Ctrl-C: a controller, three hypervisors with agents, and how to use them
# (docs/lab.md). Another lab beside it: make lab LAB_ARGS="--prefix lab2 --mgmt-cidr 198.18.2.0/24".
LAB_ARGS ?=
lab: bootstrap
	$(PY) -m lab.mininet up $(LAB_ARGS)

BENCHMARKS := api compile flow_install time_to_ping dhcp_metadata lab_start ovsdb_monitor guest_tcp secgroups l3 compute

bench: ovs
	bash scripts/bootstrap.sh --bench
	for b in $(BENCHMARKS); do $(PY) bench/$$b.py || exit 1; done

clean:
	$(PY) -m lab.mininet clean || true
	rm -rf .pytest_cache .ruff_cache
