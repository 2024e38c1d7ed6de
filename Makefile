# Two commands: `make demo` and `make test`. Both create .venv when missing and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Re-install whenever pyproject.toml changes.
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
# A CPU wheel of torch 2.13.0 lies on disk on the project machines; any other torch request
# would download gigabytes of CUDA builds.
TORCH_PIN ?= torch==2.13.0
DEMO_OUT ?= demo-output

.PHONY: setup system-deps demo test lint bench llama-cpp clean help

help:
	@echo "make demo   set up .venv and run the demo on the embedded defaults (writes $(DEMO_OUT)/)"
	@echo "make test   set up .venv and run the test suite"
	@echo "make lint   ruff check and ruff format --check"
	@echo "make bench  run the benchmark scripts (JSON on stdout)"
	@echo "make llama-cpp  build llama.cpp's server, the optional reference of bench_policies.py"

$(STAMP):
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_PIN)"
	$(BIN)/python -m pip install --quiet -e ".[all,dev]"
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

# Debian packages the tests use: tesseract-ocr measures street-view legibility; chromium and
# chromium-driver run the viewer's end-to-end tests. Installed when missing (as root).
SYSTEM_PACKAGES := tesseract-ocr chromium chromium-driver
system-deps:
	@missing=""; \
	command -v tesseract >/dev/null 2>&1 || missing="$$missing tesseract-ocr"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null 2>&1 || missing="$$missing chromium-driver"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "note: missing$$missing (sudo apt-get install$$missing); the tests that need them skip"; \
	  fi; \
	fi

setup: $(STAMP) system-deps

demo: setup
	$(BIN)/openvirl demo --out $(DEMO_OUT)

test: setup
	$(BIN)/python -m ruff check src tests benchmarks
	$(BIN)/python -m ruff format --check src tests benchmarks
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: setup
	$(BIN)/python -m ruff check src tests benchmarks
	$(BIN)/python -m ruff format --check src tests benchmarks

bench: setup
	@for f in benchmarks/bench_*.py; do echo "== $$f"; $(BIN)/python $$f; done

# Optional: llama.cpp's server, the reference `benchmarks/bench_policies.py` compares with
# (it serves the very GGUF the embedded model ships as). Needs cmake, a C++ compiler and the
# network once (the llama.cpp sources come with the llama-cpp-python sdist); not part of
# `make test` or `make demo`. About 15 minutes on 2 cores.
LLAMA_CPP_PYTHON ?= llama-cpp-python==0.3.36
LLAMA_DIR := .cache/llama.cpp
llama-cpp: setup
	mkdir -p $(LLAMA_DIR)
	$(BIN)/python -m pip download --quiet --no-deps -d $(LLAMA_DIR) "$(LLAMA_CPP_PYTHON)"
	tar xzf $(LLAMA_DIR)/llama_cpp_python-*.tar.gz -C $(LLAMA_DIR)
	cmake -S $$(ls -d $(LLAMA_DIR)/llama_cpp_python-*/vendor/llama.cpp | head -1) -B $(LLAMA_DIR)/build \
	  -G "$$(command -v ninja >/dev/null && echo Ninja || echo 'Unix Makefiles')" \
	  -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
	cmake --build $(LLAMA_DIR)/build -j --target llama-server
	@echo "built $(LLAMA_DIR)/build/bin/llama-server (bench_policies.py finds it there)"

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .ruff_cache
