# The two set-up commands of the README:
#   make demo   a real chat request through turnout to servers it starts on 127.0.0.1
#   make test   install what the tests need, start the real vLLM test server, run every check
PYTHON ?= python3
export NO_MKDOCS_2_WARNING := 1
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CODE := $(wildcard src tests examples scripts benchmarks)

.PHONY: demo test lint typecheck pytest docs examples vllm-start vllm-stop services-start services-stop browser bench mutation clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,huggingface,compare]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

# The vLLM servers (chat, and embeddings: --embed) and Redis + PostgreSQL (scripts/services) are
# stopped afterwards only if this run started them; the run fails when any of them cannot start.
# Headless Chromium (Debian's package) opens the `turnout compare --html` report in the tests.
test: $(STAMP)
	@status=0; running=0; running_embed=0; running_services=0; \
	$(MAKE) --no-print-directory lint typecheck browser || status=$$?; \
	scripts/vllm-test-server status >/dev/null 2>&1 && running=1; \
	scripts/vllm-test-server status --embed >/dev/null 2>&1 && running_embed=1; \
	scripts/services status >/dev/null 2>&1 && running_services=1; \
	if [ $$status -eq 0 ]; then scripts/vllm-test-server start || status=$$?; fi; \
	if [ $$status -eq 0 ]; then scripts/vllm-test-server start --embed || status=$$?; fi; \
	if [ $$status -eq 0 ]; then scripts/services start >/dev/null || status=$$?; fi; \
	if [ $$status -eq 0 ]; then eval "$$(scripts/services env)" && \
	  TURNOUT_REQUIRE_VLLM=1 TURNOUT_REQUIRE_BROWSER=1 TURNOUT_REQUIRE_SERVICES=1 $(MAKE) --no-print-directory pytest || status=$$?; fi; \
	if [ $$running -eq 0 ]; then scripts/vllm-test-server stop >/dev/null 2>&1 || true; fi; \
	if [ $$running_embed -eq 0 ]; then scripts/vllm-test-server stop --embed >/dev/null 2>&1 || true; fi; \
	if [ $$running_services -eq 0 ]; then scripts/services stop >/dev/null 2>&1 || true; fi; \
	if [ $$status -eq 0 ]; then $(MAKE) --no-print-directory docs || status=$$?; fi; \
	exit $$status

lint: $(STAMP)
	$(BIN)/ruff check $(CODE)
	$(BIN)/ruff format --check $(CODE)

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest

docs: $(STAMP)
	$(BIN)/python scripts/gen_config_schema.py --check
	$(BIN)/mkdocs build --strict --quiet --site-dir .cache/site

# Installs Debian's chromium when no Chromium is on PATH (as root, or through sudo).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
		sudo=""; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
		$$sudo apt-get update -qq && $$sudo apt-get install -y -qq chromium; }

vllm-start:
	scripts/vllm-test-server start
	scripts/vllm-test-server start --embed

vllm-stop:
	scripts/vllm-test-server stop
	scripts/vllm-test-server stop --embed

# Redis and PostgreSQL on 127.0.0.1 for the shared-state tests; `scripts/services env` prints their URLs.
services-start:
	scripts/services start

services-stop:
	scripts/services stop

# turnout against raw httpx2, the openai SDK and LiteLLM (each where installed); a few minutes.
# Peers run from /tmp/benchvenvs/<name> when present (see docs/performance.md). BENCH_ARGS=--quick for a smoke test.
# The [state] rows use a localhost Redis from scripts/services (started here, stopped if this run started it).
bench: $(STAMP)
	@status=0; running=0; scripts/services status >/dev/null 2>&1 && running=1; \
	scripts/services start >/dev/null || status=$$?; \
	if [ $$status -eq 0 ]; then eval "$$(scripts/services env)" && \
	  TURNOUT_BENCH_REDIS_URL=$$TURNOUT_TEST_REDIS_URL $(BIN)/python benchmarks/bench.py $(BENCH_ARGS) || status=$$?; fi; \
	if [ $$running -eq 0 ]; then scripts/services stop >/dev/null 2>&1 || true; fi; \
	exit $$status

# Mutation testing of the engine, streaming, policies, budgets and pricing ([tool.mutmut] in
# pyproject.toml; not part of `make test`). MUTMUT_ARGS=--max-children 4 for more cores.
# The route state's [state] paths are tested on a localhost Redis from scripts/services (started
# here, stopped if this run started it); without it their mutants would have no test.
mutation: $(STAMP)
	@status=0; running=0; scripts/services status >/dev/null 2>&1 && running=1; \
	scripts/services start >/dev/null || status=$$?; \
	if [ $$status -eq 0 ]; then rm -rf mutants && eval "$$(scripts/services env)" && \
	  TURNOUT_REQUIRE_SERVICES=1 $(BIN)/mutmut run $(MUTMUT_ARGS) || status=$$?; fi; \
	if [ $$running -eq 0 ]; then scripts/services stop >/dev/null 2>&1 || true; fi; \
	if [ $$status -eq 0 ]; then $(BIN)/python scripts/mutation_report.py || status=$$?; fi; \
	exit $$status

clean:
	rm -rf $(VENV) .cache .mypy_cache .ruff_cache .pytest_cache mutants
