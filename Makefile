# Two commands on a fresh machine: `make demo` and `make test`. Everything they need is installed here.
VENV   ?= .venv
PY     := $(VENV)/bin/python
DSE    := $(VENV)/bin/dse
STAMP  := $(VENV)/.stamp-install
DEMO_LM ?= local:qwen2.5-coder-0.5b
SELECT_TOOL := autopilot/blueprint/SelectTool.v1

.PHONY: install system-deps test lint demo bench clean

# llama.cpp is built for a portable x86-64 baseline (AVX2/FMA/F16C), not for the build machine:
# a native build picks up AMX kernels that crash on first decode on some CPUs here.
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet typing_extensions numpy jinja2 diskcache
	$(PY) -c 'import llama_cpp' 2>/dev/null || CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" \
		$(PY) -m pip install --quiet --no-cache-dir llama-cpp-python==0.3.36
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP)

system-deps:
	bash scripts/system-deps.sh

lint: install
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/ruff format --check src tests bench examples
	$(VENV)/bin/mypy

test: install system-deps lint
	$(DSE) models install smollm2-135m
	$(VENV)/bin/pytest -q

# The main job: the overnight loop on the embedded default (SQLite in ./.dse + the local model).
# A night that ends refused, rolled back or keeping control (exit 3, 4, 5) is a finished demo.
demo: install
	$(DSE) models install qwen2.5-coder-0.5b
	$(DSE) init
	$(DSE) --lm $(DEMO_LM) overnight --signature $(SELECT_TOOL) \
		--dataset "$$($(PY) -c 'from dse.autopilot import dataset_path; print(dataset_path())')" \
		|| [ $$? -ge 3 -a $$? -le 5 ]

# DSPy, the peer we measure against, lives in its own virtualenv so its pins never touch ours.
.venv-dspy/.stamp:
	python3 -m venv .venv-dspy
	.venv-dspy/bin/python -m pip install --quiet dspy==3.4.1
	touch $@

bench: install .venv-dspy/.stamp
	$(PY) bench/predict_overhead.py
	$(PY) -m bench.eval_throughput
	$(PY) -m bench.canary_decisions
	$(PY) -m bench.dashboard_scale --large
	$(DSE) models install qwen2.5-coder-0.5b
	$(PY) -m bench.judge_separation

clean:
	rm -rf $(VENV) .dse .mypy_cache .ruff_cache .pytest_cache
