# medfair developer commands. `make demo` and `make test` work on a fresh
# Debian 12 machine: both install what is missing first.

VENV ?= .venv
PYTHON := $(VENV)/bin/python
BUILD_DIR ?= build/release
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

# Real inputs for the tests: the shared clinical data beside the checkout and
# the model files that the pip packages install.
export MEDFAIR_SHARED_DATA ?= $(abspath ../shared/data)

.PHONY: deps build test test-cpp test-python demo install clean

deps:
	@bash scripts/install_deps.sh

$(BUILD_DIR)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release \
	  -DPython3_EXECUTABLE=$(abspath $(PYTHON)) $(CMAKE_FLAGS)

build: deps $(BUILD_DIR)/CMakeCache.txt
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	$(MAKE) --no-print-directory test-cpp test-python

test-cpp:
	eval "$$($(PYTHON) scripts/asset_paths.py)" && ctest --test-dir $(BUILD_DIR) --output-on-failure

test-python:
	eval "$$($(PYTHON) scripts/asset_paths.py)" && PYTHONPATH=python $(PYTHON) -m pytest -q tests/python

# Installs the medfair package (extension, CLI) into $(VENV); this builds the
# extension once more, in build/wheel.
install: deps
	$(VENV)/bin/pip install -q --no-build-isolation .

# Runs the main job from the in-tree build, so it needs no second compile.
demo: build
	PYTHONPATH=python $(PYTHON) -m medfair demo --out demo

clean:
	rm -rf build
