# rnnserve - build, test and run.
#   make            build build/rnnserve
#   make run        install missing Debian packages, build, serve config/default.json
#   make test       install missing Debian packages, build, run every test (also under ASan+UBSan)
#   make check      run the test suites only (no package install)
#   make unit       build and run the Check runners only (what the Docker image's builder runs)
#   make install    install the binary, the default and example models, the docs (PREFIX, DESTDIR)
#   make docker-check  build the Docker image (docker, else podman) and check the running container
#   make test-browser  install Chromium and playwright-core if missing, test the playground page

CC      ?= cc
PREFIX  ?= /usr/local
PKGS    := libmicrohttpd jansson openblas zlib
CONFIG  ?= config/default.json

BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wpedantic -Iinclude -g \
               $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
OPT     ?= -O2
CFLAGS  ?=
# OpenBLAS is not linked: the engine loads it with dlopen when it needs it (see src/kernels.c).
LDLIBS  := $(shell pkg-config --libs libmicrohttpd jansson zlib 2>/dev/null) -lm -lpthread -ldl
TEST_LDLIBS := $(shell pkg-config --libs check 2>/dev/null) -lcurl

# Library modules, bottom layer first (see docs/ARCHITECTURE.md).
LIB_SRCS := src/buf.c src/utf8.c src/czhuff.c src/compress.c src/file.c src/sysres.c src/floatfmt.c src/jsonnum.c src/jsonscan.c src/metrics.c src/kernels.c src/safetensors.c src/config.c \
            src/cells.c src/model.c src/embed.c src/engine.c src/head.c src/generate.c src/sessions.c src/sched.c src/wire.c src/wire_v1.c src/wire_v2.c src/wire_v2bin.c src/wire_generate.c src/forward.c src/cli.c \
            src/modelset.c src/compute.c src/auth.c src/accept.c src/routes.c src/session_routes.c src/session_generate.c src/reloader.c src/http.c src/generate_routes.c src/server.c \
            src/version.c
# The app layer: process wiring above the library.
APP_SRCS := src/main.c src/serve.c
TESTS    := $(basename $(notdir $(wildcard tests/test_*.c)))

# Two flavours of the same tree: build/ (optimised) and build/asan/ (sanitizers, for tests).
B      := build
SAN    := build/asan
SANFLAGS := -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

.PHONY: all run test check valgrind deps test-deps clean format install fixtures \
        browser-deps test-browser browser-models playground-screenshot \
        unit uninstall docker-check fuzz soak \
        bench check-activations

all: $(B)/rnnserve

$(B)/%.o: src/%.c $(wildcard include/rnnserve/*.h src/*.h src/*.def) | $(B)
	$(CC) $(BASE_CFLAGS) $(OPT) $(CFLAGS) -c $< -o $@
$(SAN)/%.o: src/%.c $(wildcard include/rnnserve/*.h src/*.h src/*.def) | $(SAN)
	$(CC) $(BASE_CFLAGS) $(SANFLAGS) $(CFLAGS) -c $< -o $@

$(B)/librnnserve.a: $(patsubst src/%.c,$(B)/%.o,$(LIB_SRCS)) $(B)/playground_html.o \
                    $(B)/openapi_json.o
	ar rcs $@ $^
$(SAN)/librnnserve.a: $(patsubst src/%.c,$(SAN)/%.o,$(LIB_SRCS)) $(SAN)/playground_html.o \
                      $(SAN)/openapi_json.o
	ar rcs $@ $^

# The playground page (GET /), compiled in as bytes so there is nothing to install beside the binary.
$(B)/playground_html.c: web/playground.html tools/embed.sh | $(B)
	sh tools/embed.sh playground_html web/playground.html > $@.tmp && mv $@.tmp $@
$(B)/playground_html.o: $(B)/playground_html.c
	$(CC) $(BASE_CFLAGS) $(OPT) $(CFLAGS) -c $< -o $@
$(SAN)/playground_html.o: $(B)/playground_html.c | $(SAN)
	$(CC) $(BASE_CFLAGS) $(SANFLAGS) $(CFLAGS) -c $< -o $@
# GET /openapi.json serves docs/openapi.json, compiled in the same way.
$(B)/openapi_json.c: docs/openapi.json tools/embed.sh | $(B)
	sh tools/embed.sh openapi_json docs/openapi.json > $@.tmp && mv $@.tmp $@
$(B)/openapi_json.o: $(B)/openapi_json.c
	$(CC) $(BASE_CFLAGS) $(OPT) $(CFLAGS) -c $< -o $@
$(SAN)/openapi_json.o: $(B)/openapi_json.c | $(SAN)
	$(CC) $(BASE_CFLAGS) $(SANFLAGS) $(CFLAGS) -c $< -o $@

$(B)/rnnserve: $(patsubst src/%.c,$(B)/%.o,$(APP_SRCS)) $(B)/librnnserve.a
	$(CC) $(OPT) $(CFLAGS) -o $@ $^ $(LDLIBS)
$(SAN)/rnnserve: $(patsubst src/%.c,$(SAN)/%.o,$(APP_SRCS)) $(SAN)/librnnserve.a
	$(CC) $(SANFLAGS) $(CFLAGS) -o $@ $^ $(LDLIBS)

# Each tests/test_<module>.c is its own Check runner.
# Each is built with the shared helpers: testutil (files, time, failures) and httpc (the HTTP client).
TEST_HELPERS := tests/testutil.c tests/httpc.c
$(B)/tests/%: tests/%.c $(TEST_HELPERS) tests/testutil.h tests/httpc.h $(B)/librnnserve.a | $(B)/tests
	$(CC) $(BASE_CFLAGS) $(OPT) $(CFLAGS) $(shell pkg-config --cflags check) -o $@ \
	    $< $(TEST_HELPERS) $(B)/librnnserve.a $(TEST_LDLIBS) $(LDLIBS)
$(SAN)/tests/%: tests/%.c $(TEST_HELPERS) tests/testutil.h tests/httpc.h $(SAN)/librnnserve.a | $(SAN)/tests
	$(CC) $(BASE_CFLAGS) $(SANFLAGS) $(CFLAGS) $(shell pkg-config --cflags check) -o $@ \
	    $< $(TEST_HELPERS) $(SAN)/librnnserve.a $(TEST_LDLIBS) $(LDLIBS)

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

# Every Check runner under valgrind memcheck (no fork, so leaks in the tests count too), but the
# test cases tagged "timing", which need a client faster than valgrind makes it. Two runners at a
# time (valgrind runs a process's threads one at a time, so each keeps one core): the slowest
# ones first, so that the two lanes end together (~4 min instead of ~8 on two cores).
VG_SLOW := test_generate test_sched_http test_kernels test_reload test_server test_metrics \
           test_floatfmt test_faults test_binary test_badinput test_codec test_session_http
VG_ORDER := $(filter $(VG_SLOW),$(TESTS)) $(filter-out $(VG_SLOW),$(TESTS))
valgrind: $(addprefix $(B)/tests/,$(TESTS))
	@$(MAKE) --no-print-directory -j2 -Otarget $(addprefix valgrind-,$(VG_ORDER))
valgrind-%: $(B)/tests/%
	@CK_FORK=no CK_EXCLUDE_TAGS=timing valgrind -q --leak-check=full --show-leak-kinds=definite,indirect \
	    --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
	    $(B)/tests/$* > $(B)/valgrind-$*.log 2>&1 || { tail -50 $(B)/valgrind-$*.log; \
	    echo "valgrind: FAIL: $*"; exit 1; }
	@echo "== valgrind $*: $$(grep -E '^[0-9]+%: Checks' $(B)/valgrind-$*.log)"

# libFuzzer targets, tests/fuzz/fuzz_<target>.c (docs/RELIABILITY.md): a third flavour of the
# library, built by clang with coverage for the fuzzer and ASan+UBSan. `make fuzz` runs each for
# FUZZ_SECONDS; new inputs go to build/fuzz/work/<target>, crashes to build/fuzz/crashes/.
# build/tests/test_fuzz replays tests/fuzz/corpus and tests/fuzz/regress in `make test`.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FZ           := build/fuzz
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZFLAGS    := -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
$(FZ)/%.o: src/%.c $(wildcard include/rnnserve/*.h src/*.h src/*.def) | $(FZ)
	$(FUZZ_CC) $(BASE_CFLAGS) $(FUZZFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
# Sources generated into build/ (keep FUZZ_GEN in step with $(B)/librnnserve.a's objects).
FUZZ_GEN     := playground_html openapi_json
$(addprefix $(FZ)/,$(addsuffix .o,$(FUZZ_GEN))): $(FZ)/%.o: $(B)/%.c | $(FZ)
	$(FUZZ_CC) $(BASE_CFLAGS) $(FUZZFLAGS) -c $< -o $@
$(FZ)/librnnserve.a: $(patsubst src/%.c,$(FZ)/%.o,$(LIB_SRCS)) \
                     $(addprefix $(FZ)/,$(addsuffix .o,$(FUZZ_GEN)))
	ar rcs $@ $^
$(FZ)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FZ)/librnnserve.a
	$(FUZZ_CC) $(BASE_CFLAGS) $(FUZZFLAGS) -fsanitize=fuzzer -o $@ $< $(FZ)/librnnserve.a $(LDLIBS)
$(FZ):
	mkdir -p $@
fuzz:
	@sh tools/install-deps.sh fuzz
	$(MAKE) $(addprefix $(FZ)/fuzz_,$(FUZZ_TARGETS))
	@sh tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)
# The replay runner #includes every target; the catalogue and fault suites start the binary.
$(B)/tests/test_fuzz $(SAN)/tests/test_fuzz: $(wildcard tests/fuzz/*.c tests/fuzz/*.h)
# test_binary replays fuzz_binary's seeds with the target's own checks.
$(B)/tests/test_binary $(SAN)/tests/test_binary: tests/fuzz/fuzz_binary.c tests/fuzz/fuzz.h
$(B)/tests/test_badinput $(B)/tests/test_faults: | $(B)/rnnserve
$(SAN)/tests/test_badinput $(SAN)/tests/test_faults: | $(SAN)/rnnserve

# Load soak with wrk: valid ragged and bad requests, RSS sampled (SOAK_SECONDS, default 60).
soak: $(B)/rnnserve
	@sh tools/install-deps.sh soak
	@sh tests/soak.sh

# The playground in headless Chromium: Debian's chromium (apt, as root or through sudo) driven by
# playwright-core (npm ci in tests/browser). Screenshots land in build/browser/;
# `make playground-screenshot` also copies the page's picture to docs/playground.png.
BROWSER := tests/browser
browser-deps:
	@sh tools/install-deps.sh browser
	@$(MAKE) --no-print-directory $(BROWSER)/node_modules/.installed
$(BROWSER)/node_modules/.installed: $(BROWSER)/package.json $(BROWSER)/package-lock.json
	cd $(BROWSER) && npm ci --no-audit --no-fund
	touch $@
test-browser: browser-deps $(B)/rnnserve
	node --test $(BROWSER)/playground.test.mjs
# The trained models the browser test serves are committed; this retrains them (torch, CPU, ~30 s).
browser-models: $(B)/rnnserve
	/usr/bin/python3 $(BROWSER)/models/train.py
playground-screenshot: test-browser
	cp $(B)/browser/playground.png docs/playground.png

# Regenerates tests/fixtures/cases from PyTorch (needs /usr/bin/python3 with torch).
fixtures:
	/usr/bin/python3 tests/fixtures/gen.py

format:
	clang-format -i src/*.c include/rnnserve/*.h tests/*.c tests/*.h

# PREFIX/bin/rnnserve; PREFIX/share/rnnserve/: default.json (the "sine" model) and
# examples/sine-next/, each config beside its weights; PREFIX/share/doc/rnnserve/: the docs.
SHARE   := $(DESTDIR)$(PREFIX)/share/rnnserve
DOC     := $(DESTDIR)$(PREFIX)/share/doc/rnnserve
EXAMPLE := examples/sine-next
install: $(B)/rnnserve
	install -d $(DESTDIR)$(PREFIX)/bin $(SHARE)/$(EXAMPLE) $(DOC)
	install -m 755 $(B)/rnnserve $(DESTDIR)$(PREFIX)/bin/rnnserve
	install -m 644 config/default.json config/sine.safetensors $(SHARE)/
	install -m 644 $(EXAMPLE)/config.json $(EXAMPLE)/model.safetensors $(EXAMPLE)/request.json \
	    $(SHARE)/$(EXAMPLE)/
	install -m 644 README.md docs/API.md $(DOC)/

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/rnnserve
	rm -rf $(SHARE) $(DOC)

# The Check runners, unsanitized, without the shell tests (the Docker builder stage runs this);
# each runner is its own target, so `make -j2 -Otarget unit` runs two at a time.
unit: $(addprefix unit-,$(TESTS))
unit-%: $(B)/tests/%
	@$(B)/tests/$* || { echo "unit: FAIL: $*"; exit 1; }

# Builds the image from Dockerfile (docker when a daemon answers, else podman through
# ../shared/tools/docker/build-and-run.sh) and checks the running container (needs root).
docker-check:
	@bash tools/docker_check.sh

clean:
	rm -rf $(B)
