# The two commands: `make run` (set-up, a build of mlpc alone, data, then
# the seed's model) and `make test` (set-up, build of everything, data, all
# tests). `make check` runs all tests again under the sanitizers; `make fuzz`
# runs the fuzz harnesses; `make screenshot` takes the README's picture of a
# study's report.html again. The rest is CMake.
BUILD ?= build
MLPC = $(BUILD)/mlpc
# Tests run side by side, one per core (ctest -j; tests/CMakeLists.txt
# splits the long ones into parts).
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all setup configure build build-mlpc data run test check fuzz bench golden screenshot \
	clean

all: build

setup:
	@scripts/setup.sh

configure: setup
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null

# Everything: mlpc, the tests and the fuzz replay harnesses.
build: configure
	@cmake --build $(BUILD) -j2

# mlpc alone, for `make run`.
build-mlpc: configure
	@cmake --build $(BUILD) -j2 --target mlpc

data: setup
	@scripts/data.sh

run: build-mlpc data
	$(MLPC) models/bn_relu.json --run

test: build data
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

# The whole suite again, built with AddressSanitizer, UndefinedBehavior-
# Sanitizer and LeakSanitizer; the gcc backend builds the generated code
# with them too, at -O1 (a sanitized convolution unit takes four times as
# long at -O3; the bits are the same). Any report fails the test that
# caused it.
ASAN_BUILD ?= build-asan
SANITIZE = -fsanitize=address,undefined -fno-sanitize-recover=all
check: setup data
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_C_FLAGS="$(SANITIZE) -fno-omit-frame-pointer" >/dev/null
	@cmake --build $(ASAN_BUILD) -j2
	cd $(ASAN_BUILD) && MLPC_GCC_EXTRA_FLAGS="$(SANITIZE) -O1" \
	  UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j$(JOBS)

# Each fuzz harness for FUZZ_SECONDS (default 60) with libFuzzer (clang).
fuzz:
	@scripts/fuzz.sh

# mlpc against PyTorch and the sgemm roofline (docs/performance.md); not
# part of `make test`. Installs PyTorch and OpenBLAS when missing.
bench: build data
	@bench/setup.sh
	/usr/bin/python3 bench/bench.py $(BENCH_ARGS)
	/usr/bin/python3 bench/bench_cnn.py $(BENCH_CNN_ARGS)

# Regenerates tests/golden/ on purpose, after a deliberate codegen change:
# one NAME.c per models/NAME.json and tests/models/NAME.json (studies,
# which have a "vary" key, are not models).
golden: build
	@mkdir -p tests/golden
	@for m in models/*.json tests/models/*.json; do \
	  [ -e "$$m" ] || continue; \
	  grep -q '"vary"' "$$m" && continue; \
	  n=$$(basename $$m .json); \
	  $(MLPC) $$m --emit-model tests/golden/$$n.c || exit 1; \
	done; echo "golden: regenerated tests/golden/"

# Takes docs/report.png, the README's screenshot of the homework's
# report.html, again (chromium, headless).
screenshot: build-mlpc data
	@scripts/screenshot.sh

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz out
