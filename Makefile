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

.PHONY: setup system-deps demo test lint bench clean help

help:
	@echo "make demo   set up .venv and run the demo on the embedded defaults (writes $(DEMO_OUT)/)"
	@echo "make test   set up .venv and run the test suite"
	@echo "make lint   ruff check and ruff format --check"
	@echo "make bench  run the benchmark scripts (JSON on stdout)"

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

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .ruff_cache
