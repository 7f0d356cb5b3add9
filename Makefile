# Entry points for people and CI (README.md):
#   make test   install what is missing, build, run the whole test suite
#   make asan   the same suite (less the tests labelled slow) built with clang,
#               AddressSanitizer + UndefinedBehaviorSanitizer: the clang -Werror build too
#   make        build only (build/herd)
BUILD ?= build
JOBS ?= $(shell nproc)

.PHONY: all build deps test asan clean

all: build

deps:
	./scripts/install-deps.sh

build:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build $(BUILD) -j$(JOBS)

test: deps build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

ASAN_CC ?= $(shell command -v clang >/dev/null 2>&1 && echo clang || echo cc)

asan: deps
	CC=$(ASAN_CC) cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DHERD_SANITIZE=ON >/dev/null
	cmake --build build-asan -j$(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j$(JOBS) -LE slow

clean:
	rm -rf $(BUILD) build-asan
