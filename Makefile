# Entry points for people and CI (README.md):
#   make test   install what is missing, build, run the whole test suite
#   make asan   the same suite built with AddressSanitizer + UndefinedBehaviorSanitizer
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

asan: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DHERD_SANITIZE=ON >/dev/null
	cmake --build build-asan -j$(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j$(JOBS) -LE slow

clean:
	rm -rf $(BUILD) build-asan
