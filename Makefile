# The two commands: `make run` (set-up, build, data, then the seed's model)
# and `make test` (set-up, build, data, all tests). The rest is CMake.
BUILD ?= build
MLPC = $(BUILD)/mlpc

.PHONY: all setup build data run test bench golden clean

all: build

setup:
	@scripts/setup.sh

build: setup
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j2

data: setup
	@scripts/data.sh

run: build data
	$(MLPC) models/bn_relu.json --run

test: build data
	cd $(BUILD) && ctest --output-on-failure

# mlpc against PyTorch and the sgemm roofline (docs/performance.md); not
# part of `make test`. Installs PyTorch and OpenBLAS when missing.
bench: build data
	@bench/setup.sh
	/usr/bin/python3 bench/bench.py $(BENCH_ARGS)

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

clean:
	rm -rf $(BUILD) out
