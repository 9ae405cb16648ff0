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

.PHONY: deps build test test-cpp test-python demo install clean fuzz test-asan

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
	rm -f python/medfair/_core*.so  # the in-tree module must not shadow the wheel's own build
	$(VENV)/bin/pip install -q --no-build-isolation .

# Runs the main job from the in-tree build, so it needs no second compile.
demo: build
	PYTHONPATH=python $(PYTHON) -m medfair demo --out demo

# libFuzzer targets of the torch-free layers (clang only). Each runs for
# FUZZ_SECONDS on a scratch copy of tests/fuzz/corpus/<name>, so new corpus
# entries never land in the repository; crash inputs go to $(FUZZ_DIR)/artifacts.
FUZZ_DIR ?= build/fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := $(basename $(notdir $(wildcard tests/fuzz/fuzz_*.cpp)))

fuzz:
	CC=clang CXX=clang++ cmake -S . -B $(FUZZ_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DMEDFAIR_WITH_TORCH=OFF -DMEDFAIR_BUILD_FUZZERS=ON -DMEDFAIR_BUILD_PYTHON=OFF \
	  -DMEDFAIR_BUILD_TESTS=OFF -DMEDFAIR_BUILD_BENCH=OFF -DMEDFAIR_INSTALL=OFF
	cmake --build $(FUZZ_DIR) -j $(JOBS) --target medfair_fuzzers
	@mkdir -p $(FUZZ_DIR)/artifacts
	@set -e; for target in $(FUZZ_TARGETS); do \
	  name=$${target#fuzz_}; work=$$(mktemp -d); \
	  cp -r tests/fuzz/corpus/$$name/. $$work/; \
	  echo "== $$target: $(FUZZ_SECONDS) s on a copy of tests/fuzz/corpus/$$name"; \
	  status=0; $(FUZZ_DIR)/tests/fuzz/$$target -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
	    -print_final_stats=1 -artifact_prefix=$(FUZZ_DIR)/artifacts/$$target- $$work \
	    > $(FUZZ_DIR)/$$target.log 2>&1 || status=$$?; \
	  rm -rf $$work; grep -E '^stat::number_of_executed_units|^Done' $(FUZZ_DIR)/$$target.log || true; \
	  if [ $$status -ne 0 ]; then tail -40 $(FUZZ_DIR)/$$target.log; exit $$status; fi; \
	done

# The Catch2 suites of the torch-free layers under AddressSanitizer and
# UndefinedBehaviorSanitizer. The torch layers are left out because the
# libtorch wheel is not built with sanitizers.
ASAN_DIR ?= build/asan

test-asan:
	cmake -S . -B $(ASAN_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DMEDFAIR_WITH_TORCH=OFF \
	  -DMEDFAIR_SANITIZE=address,undefined -DMEDFAIR_BUILD_PYTHON=OFF -DMEDFAIR_BUILD_BENCH=OFF -DMEDFAIR_INSTALL=OFF
	cmake --build $(ASAN_DIR) -j $(JOBS)
	eval "$$($(PYTHON) scripts/asset_paths.py)" && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --test-dir $(ASAN_DIR) --output-on-failure

clean:
	rm -rf build
