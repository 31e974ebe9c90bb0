# Thin wrapper over CMake: the README's commands.
#
#   make test        install deps, build (Release, -Werror), run every test
#   make bench       install deps, build (Release), run the benchmark suite
#   make check-tsan  the test suite under ThreadSanitizer (build-tsan/)
#   make check-asan  the test suite under AddressSanitizer + UBSan (build-asan/)
#   make compare     weft beside Tokio and Go (benches/compare.sh), weft-redis
#                    beside redis-server (benches/redis_compare.sh)
#   make fuzz        libFuzzer on weft-redis's RESP parser for FUZZ_SECONDS (60)
#   make format      clang-format every C file

BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
CTEST_FLAGS ?= --output-on-failure
FUZZ_SECONDS ?= 60

.PHONY: all deps build test bench check-tsan check-asan compare fuzz format clean

all: build

deps:
	./scripts/deps.sh

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DWEFT_WERROR=ON $(CMAKE_FLAGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

test: build
	cd $(BUILD) && ctest $(CTEST_FLAGS)

bench: build
	@mkdir -p results
	$(BUILD)/benches/weft-bench suite --workers 2 --out results/bench-$$(date -u +%Y%m%dT%H%M%SZ).jsonl

check-tsan: deps
	cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWEFT_WERROR=ON -DWEFT_SANITIZE=thread
	cmake --build build-tsan -j$(JOBS)
	cd build-tsan && ctest $(CTEST_FLAGS)

check-asan: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWEFT_WERROR=ON -DWEFT_SANITIZE=address,undefined
	cmake --build build-asan -j$(JOBS)
	cd build-asan && ctest $(CTEST_FLAGS)

compare: build
	./benches/compare.sh

# New inputs go to build-fuzz/corpus; tests/fuzz/corpus/resp is only read.
fuzz:
	./scripts/deps.sh clang libclang-rt-14-dev
	cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DWEFT_SANITIZE=address,undefined -DWEFT_FUZZ=ON -DWEFT_BUILD_BENCHES=OFF
	cmake --build build-fuzz -j$(JOBS) --target fuzz_resp
	mkdir -p build-fuzz/corpus
	build-fuzz/tests/fuzz_resp -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	  build-fuzz/corpus tests/fuzz/corpus/resp

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) build-tsan build-asan build-fuzz
