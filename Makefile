# Every command a newcomer needs. Targets are thin wrappers; the work lives in the Python packages.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)
STUBS := menuflow/v1/flow_pb2.py menuflow/v1/flow_pb2.pyi menuflow/v1/flow_pb2_grpc.py menuflow/v1/flow_pb2_grpc.pyi
# google/rpc/status.proto, as googleapis-common-protos installs it (read once the venv exists).
GOOGLE_PROTOS = $(shell $(PY) -c 'import google.rpc, pathlib; print(pathlib.Path(google.rpc.__path__[0]).parents[1])')

DATABASE_URL ?= sqlite:///menuflow.db
export DATABASE_URL

.PHONY: install proto migrate seed run post-sample test lint typecheck fmt revision clean chat \
  bench-flowsvc

install: $(STAMP) $(STUBS)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

# Stubs are generated from the .proto by grpcio-tools, typed by mypy-protobuf's .pyi files; never
# edited by hand (and never committed).
$(STUBS) &: proto/menuflow/v1/flow.proto $(STAMP)
	$(PY) -m grpc_tools.protoc -I proto -I $(GOOGLE_PROTOS) --python_out=. --grpc_python_out=. \
	  --plugin=protoc-gen-mypy=$(VENV)/bin/protoc-gen-mypy --mypy_out=. \
	  --plugin=protoc-gen-mypy_grpc=$(VENV)/bin/protoc-gen-mypy_grpc --mypy_grpc_out=. proto/menuflow/v1/flow.proto

proto: $(STAMP)
	rm -f $(STUBS)
	$(MAKE) $(STUBS)

migrate: install
	$(PY) -m alembic upgrade head

seed: migrate
	$(PY) -m flowsvc.seed

# Both services on the embedded default: flowsvc, then the gateway once flowsvc serves, then a
# "ready" line. Without META_ACCESS_TOKEN the gateway runs in dev mode: it accepts unsigned
# webhooks and prints outbound messages (dev.outbound log lines) instead of sending them.
run: seed
	@$(PY) -m menuflow.launcher

# Post a webhook file to the running gateway as Meta would (SAMPLE=tests/fixtures/webhooks/...;
# FRESH=1 gives it new message ids, so it is a new message rather than a redelivery).
SAMPLE ?= tests/fixtures/webhooks/text.json
post-sample: install
	@$(PY) -m menuflow.post $(SAMPLE) $(if $(FRESH),--fresh)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .
	$(PY) -m mypy

# mypy --strict over flowsvc/, gateway/ and menuflow/ (settings in pyproject.toml); part of lint.
typecheck: install
	$(PY) -m mypy

fmt: install
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

revision: install
	$(PY) -m alembic revision --autogenerate -m "$(m)"

clean:
	rm -rf $(VENV) $(STUBS) menuflow.db .pytest_cache .ruff_cache

# Talk to a running flowsvc as a customer (PHONE=15550001234 to pick the number).
chat: install
	$(PY) -m menuflow.chat $(if $(PHONE),--phone $(PHONE)) $(if $(TEMPLATE),--template $(TEMPLATE)) \
	  $(if $(VERSION),--version $(VERSION)) $(if $(CONTEXT),--context '$(CONTEXT)') $(if $(CALL_RESULT),--call-result '$(CALL_RESULT)') $(if $(LIVE),--live)

# HandleMessage throughput, latency and SQL per message on PostgreSQL, next to pgbench -N.
bench-flowsvc: install
	$(PY) -m bench.flowsvc

# End to end on PostgreSQL (BENCH_DATABASE_URL): signed webhooks -> gateway -> flowsvc -> the Graph
# API stand-in, 200 customers walking the order flow, next to bare ceilings from the same run.
# BENCH_ARGS="--rate 1000 --seconds 60" for the documented run (see `python -m bench.e2e -h`).
.PHONY: bench
bench: install
	$(PY) -m bench.e2e $(BENCH_ARGS)

# The fault suite: the whole system on loopback under duplicate webhooks, bursts, Graph API
# failures, SIGKILLs and a PostgreSQL outage; prints one table, fails on any lost, duplicated or
# reordered message (see chaos/). chaos-short is the few-minute form CI runs.
.PHONY: chaos chaos-short
chaos: install
	$(PY) -m chaos

chaos-short: install
	$(PY) -m chaos --short

# The container image. No registry is needed: BASE_IMAGE defaults to a local Debian bookworm with
# Python 3.11 (scripts/base-image.sh: debootstrap, built once and kept); BASE_IMAGE=python:3.11-slim
# pulls the usual one instead. image-smoke runs the image against PostgreSQL on 127.0.0.1:5432.
BASE_IMAGE ?= menuflow-base:bookworm
IMAGE ?= menuflow:dev
.PHONY: image image-smoke
image:
	BASE_IMAGE=$(BASE_IMAGE) scripts/base-image.sh
	@old=$$(docker image inspect -f '{{.Id}}' $(IMAGE) 2>/dev/null || true); \
	docker build --network host --build-arg BASE_IMAGE=$(BASE_IMAGE) -t $(IMAGE) . && \
	new=$$(docker image inspect -f '{{.Id}}' $(IMAGE)) && \
	if [ -n "$$old" ] && [ "$$old" != "$$new" ]; then docker rmi "$$old" >/dev/null 2>&1 || true; fi

image-smoke: image
	IMAGE=$(IMAGE) scripts/image-smoke.sh
