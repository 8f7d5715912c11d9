# rnnserve - build, test and run.
#   make            build build/rnnserve
#   make run        install missing Debian packages, build, serve config/default.json
#   make test       install missing Debian packages, build, run every test (also under ASan+UBSan)
#   make check      run the test suites only (no package install)

CC      ?= cc
PREFIX  ?= /usr/local
PKGS    := libmicrohttpd jansson openblas
CONFIG  ?= config/default.json

BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wpedantic -Iinclude -g \
               $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
OPT     ?= -O2
CFLAGS  ?=
# OpenBLAS is not linked: the engine loads it with dlopen when it needs it (see src/kernels.c).
LDLIBS  := $(shell pkg-config --libs libmicrohttpd jansson 2>/dev/null) -lm -lpthread -ldl
TEST_LDLIBS := $(shell pkg-config --libs check 2>/dev/null) -lcurl

# Library modules, bottom layer first (see docs/ARCHITECTURE.md).
LIB_SRCS := src/floatfmt.c src/metrics.c src/kernels.c src/safetensors.c src/config.c \
            src/model.c src/engine.c src/codec.c src/kserve.c src/cli.c src/server.c src/version.c
APP_SRCS := src/main.c
TESTS    := $(basename $(notdir $(wildcard tests/test_*.c)))

# Two flavours of the same tree: build/ (optimised) and build/asan/ (sanitizers, for tests).
B      := build
SAN    := build/asan
SANFLAGS := -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

.PHONY: all run test check valgrind deps test-deps clean format install fixtures bench \
        check-activations

all: $(B)/rnnserve

$(B)/%.o: src/%.c $(wildcard include/rnnserve/*.h) | $(B)
	$(CC) $(BASE_CFLAGS) $(OPT) $(CFLAGS) -c $< -o $@
$(SAN)/%.o: src/%.c $(wildcard include/rnnserve/*.h) | $(SAN)
	$(CC) $(BASE_CFLAGS) $(SANFLAGS) $(CFLAGS) -c $< -o $@

$(B)/librnnserve.a: $(patsubst src/%.c,$(B)/%.o,$(LIB_SRCS))
	ar rcs $@ $^
$(SAN)/librnnserve.a: $(patsubst src/%.c,$(SAN)/%.o,$(LIB_SRCS))
	ar rcs $@ $^

$(B)/rnnserve: $(patsubst src/%.c,$(B)/%.o,$(APP_SRCS)) $(B)/librnnserve.a
	$(CC) $(OPT) $(CFLAGS) -o $@ $^ $(LDLIBS)
$(SAN)/rnnserve: $(patsubst src/%.c,$(SAN)/%.o,$(APP_SRCS)) $(SAN)/librnnserve.a
	$(CC) $(SANFLAGS) $(CFLAGS) -o $@ $^ $(LDLIBS)

# Each tests/test_<module>.c is its own Check runner.
$(B)/tests/%: tests/%.c tests/testutil.c tests/testutil.h $(B)/librnnserve.a | $(B)/tests
	$(CC) $(BASE_CFLAGS) $(OPT) $(CFLAGS) $(shell pkg-config --cflags check) -o $@ \
	    $< tests/testutil.c $(B)/librnnserve.a $(TEST_LDLIBS) $(LDLIBS)
$(SAN)/tests/%: tests/%.c tests/testutil.c tests/testutil.h $(SAN)/librnnserve.a | $(SAN)/tests
	$(CC) $(BASE_CFLAGS) $(SANFLAGS) $(CFLAGS) $(shell pkg-config --cflags check) -o $@ \
	    $< tests/testutil.c $(SAN)/librnnserve.a $(TEST_LDLIBS) $(LDLIBS)

# Every float32 through the vectorised tanh and sigmoid, on every path this CPU has.
$(B)/activations_exhaustive: tools/activations_exhaustive.c $(B)/kernels.o | $(B)
	$(CC) $(BASE_CFLAGS) $(OPT) $(CFLAGS) -o $@ $< $(B)/kernels.o $(LDLIBS)
check-activations: $(B)/activations_exhaustive
	$(B)/activations_exhaustive

# The benchmark (bench/bench.c drives everything; see README "Performance").
$(B)/bench/bench: bench/bench.c $(B)/librnnserve.a | $(B)/bench
	$(CC) $(BASE_CFLAGS) $(OPT) $(CFLAGS) -o $@ $< $(B)/librnnserve.a $(LDLIBS)
$(B)/bench/mhd_bare: bench/mhd_bare.c | $(B)/bench
	$(CC) $(BASE_CFLAGS) $(OPT) $(CFLAGS) -o $@ $< $(LDLIBS)

$(B) $(SAN) $(B)/tests $(SAN)/tests $(B)/bench:
	mkdir -p $@

deps:
	@sh tools/install-deps.sh

test-deps:
	@sh tools/install-deps.sh test

run: deps
	$(MAKE) all
	$(B)/rnnserve --config $(CONFIG)

# The plain suites, then the same suites and the binary under ASan+UBSan, then shell tests.
check: $(B)/rnnserve $(SAN)/rnnserve $(addprefix $(B)/tests/,$(TESTS)) \
       $(addprefix $(SAN)/tests/,$(TESTS))
	@sh tests/run.sh $(TESTS)

test: test-deps
	$(MAKE) check

# Side-by-side benchmark (about 2-3 minutes): installs wrk and the Python peers if missing, builds,
# prints one table and writes bench/results/latest.json. Not part of make test.
bench:
	@sh tools/install-deps.sh bench
	$(MAKE) $(B)/rnnserve $(B)/bench/bench $(B)/bench/mhd_bare
	$(B)/bench/bench $(BENCH_ARGS)

# Every Check runner under valgrind memcheck (no fork, so leaks in the tests count too).
valgrind: $(addprefix $(B)/tests/,$(TESTS))
	@set -e; for t in $(TESTS); do echo "== valgrind $$t"; \
	    CK_FORK=no valgrind -q --leak-check=full --show-leak-kinds=definite,indirect \
	        --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
	        $(B)/tests/$$t > $(B)/valgrind-$$t.log 2>&1 || { tail -50 $(B)/valgrind-$$t.log; exit 1; }; \
	    grep -E '^[0-9]+%: Checks' $(B)/valgrind-$$t.log; done

# Regenerates tests/fixtures/cases from PyTorch (needs /usr/bin/python3 with torch).
fixtures:
	/usr/bin/python3 tests/fixtures/gen.py

format:
	clang-format -i src/*.c include/rnnserve/*.h tests/*.c tests/*.h

install: $(B)/rnnserve
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(B)/rnnserve $(DESTDIR)$(PREFIX)/bin/rnnserve

clean:
	rm -rf $(B)
