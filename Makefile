# Everything needs only python3, pip and the package registries.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# llama.cpp's AMX kernels crash (SIGSEGV in ggml_backend_amx_mul_mat) on CPUs that advertise AMX where the
# sandbox does not grant the tile state, and a native build turns them on whatever GGML_AMX_* say: build for
# plain AVX2 instead (what every x86-64 server of the last decade has; other architectures ignore these).
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON

.PHONY: run test test-fast bench llama-server lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[test]'
	touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run  ## start the TUI on the bundled model
	$(BIN)/aios

# The npm MCP reference servers for the mcp_servers tier (skipped when npm is absent); idempotent.
MCP_NPM := $(VENV)/mcp-npm
$(MCP_NPM)/.installed: | $(BIN)/python
	@if command -v npm >/dev/null; then \
	  npm install --silent --no-audit --no-fund --prefix $(MCP_NPM) \
	    @modelcontextprotocol/server-everything@2026.8.31 @modelcontextprotocol/server-filesystem@2026.8.31 && touch $@; \
	else echo "npm not found: the npm MCP reference-server tests will be skipped"; fi

# llama-server too: the engine pool's test kills a native one mid-run (built once; its case skips if the build fails).
test: $(VENV)/.installed-test $(MCP_NPM)/.installed llama-server  ## every test tier, as CI runs them
	$(BIN)/python -m pytest

test-fast: $(VENV)/.installed-test $(MCP_NPM)/.installed  ## skip the slow tier
	$(BIN)/python -m pytest -m "not slow"

# Native llama-server for bench/agentic, built once from the pinned llama-cpp-python sdist into a cache (not the repo).
llama-server: $(VENV)/.installed-test  ## build llama-server for bench/agentic (once; ~/.cache/aios-bench)
	PYTHON=$(BIN)/python bench/build_llama_server.sh || echo "llama-server build failed: bench/agentic and the native case of tests/integration/test_engine_pool_servers.py run without it"

bench: $(VENV)/.installed-test $(MCP_NPM)/.installed llama-server  ## run every benchmark, writing bench/results/*.json
	$(BIN)/python -m bench all

# Runs every checker even when one fails (so one run lists everything), then fails if any did.
lint: $(VENV)/.installed-test  ## ruff, the import-layer contracts (pyproject [tool.importlinter]) and mypy
	@failed=""; \
	$(BIN)/ruff check . || failed="$$failed ruff-check"; \
	$(BIN)/ruff format --check . || failed="$$failed ruff-format"; \
	$(BIN)/lint-imports --no-logo || failed="$$failed lint-imports"; \
	$(BIN)/mypy || failed="$$failed mypy"; \
	if [ -n "$$failed" ]; then echo "make lint failed:$$failed"; exit 1; fi

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
