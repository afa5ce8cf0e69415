# pollgate build.
#
#   make                  build ./pollgate
#   make SANITIZE=address,undefined   build ./pollgate with sanitizers
#   make test             install missing packages, then unit + integration suites (sanitizer build)
#   make run              embedded PostgreSQL under ./var, demo data, gateway on 127.0.0.1:8080
#   make test-browser     web/pollgate.js and the demo page in the system Chromium (also the last step of make test)
#   make test-scale       several gateways behind HAProxy and nginx: failover, rolling restart (tests/scale/)
#   make bench-scale      what 1, 2, 4, 8 gateways cost PostgreSQL with 10,000 clients (bench/scale_cost.py)
#   make fuzz [FUZZ_TIME=60]   libFuzzer targets (clang), FUZZ_TIME seconds each; fuzz-regress replays the corpus
#
# Every library comes through pkg-config. Objects go under build/<variant>/ so the plain and the
# sanitizer builds never mix.

CC       ?= cc
PKGS     := libevent libpq jansson libcrypto
VERSION  := 0.1.0

WARN     := -Wall -Wextra -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes -Wshadow \
            -Wpointer-arith -Wcast-align -Wwrite-strings -Wvla
ifneq ($(CI),)
WARN     += -Werror
endif

SANITIZE ?=
ifeq ($(SANITIZE),)
VARIANT  := release
OPT      := -O2 -g
else
VARIANT  := san
OPT      := -O1 -g -fno-omit-frame-pointer -fsanitize=$(SANITIZE) -fno-sanitize-recover=all
endif

BUILD    := build/$(VARIANT)
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS   ?=
CFLAGS   += -std=c11 -D_GNU_SOURCE -DPOLLGATE_VERSION='"$(VERSION)"' $(OPT) $(WARN) -I. $(PKG_CFLAGS) -MMD -MP
LDFLAGS  += $(OPT)
LDLIBS   += $(PKG_LIBS) -lm

# Every .c of the rooms is part of the gateway; gateway/main.c is the only one with main().
LIB_SRC  := $(sort $(wildcard common/*.c policy/*.c auth/*.c db/*.c gateway/*.c))
LIB_SRC  := $(filter-out gateway/main.c,$(LIB_SRC))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
MAIN_OBJ := $(BUILD)/gateway/main.o

UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps test test-unit test-integration run clean bench

all: pollgate

# The binary name is fixed (fixed-points.md): ./pollgate at the top of the checkout. It is synced by
# content, not by date (a sanitizer build and a plain one take turns in it), and replaced with a rename
# so a running copy is never written into.
.PHONY: pollgate
pollgate: $(BUILD)/pollgate
	@cmp -s $< $@ || { cp $< $@.tmp && mv -f $@.tmp $@ && echo "pollgate <- $<"; }

$(BUILD)/pollgate: $(LIB_OBJ) $(MAIN_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

# A unit test links only the rooms it tests (tests/unit/test_<name>.c -> TEST_OBJ_<name>), so one room
# can be tested while another is mid-change. Unlisted tests link every room.
room_obj = $(patsubst %.c,$(BUILD)/%.o,$(filter $(1),$(LIB_SRC)))
TEST_OBJ_policy  = $(call room_obj,policy/% common/%)
TEST_OBJ_config  = $(call room_obj,gateway/config.c gateway/cidr.c policy/% common/%)
TEST_OBJ_auth    = $(call room_obj,auth/% policy/% common/%)
TEST_OBJ_queries = $(call room_obj,db/queries.c common/%)
TEST_OBJ_http    = $(call room_obj,gateway/http.c common/%)
TEST_OBJ_hmap    = $(call room_obj,common/%)
TEST_OBJ_cidr    = $(call room_obj,gateway/cidr.c)
test_objs = $(if $(TEST_OBJ_$(1)),$(TEST_OBJ_$(1)),$(LIB_OBJ))

.SECONDEXPANSION:
$(BUILD)/tests/test_%: tests/unit/test_%.c $$(call test_objs,$$*)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(call test_objs,$*) $(LDFLAGS) $(LDLIBS) $(shell pkg-config --libs cmocka 2>/dev/null)

deps:
	@scripts/deps.sh

# make test: packages first, then the unit tests, a replay of the fuzz corpus, and the integration suite,
# all on the sanitizer build (ASan + UBSan; a leak or UB report fails the run), then the plain binary.
test: deps
	$(MAKE) --no-print-directory SANITIZE=address,undefined test-unit
	$(MAKE) --no-print-directory SANITIZE=address,undefined $(BUILD_SAN_BIN)
	$(MAKE) --no-print-directory pollgate
	$(MAKE) --no-print-directory fuzz-regress
	POLLGATE_BIN=$(CURDIR)/build/san/pollgate scripts/test-integration.sh
	POLLGATE_BIN=$(CURDIR)/pollgate scripts/test-integration.sh
	POLLGATE_BIN=$(CURDIR)/pollgate tests/browser/run.sh

BUILD_SAN_BIN := build/san/pollgate

test-unit: $(UNIT_BIN)
	@fail=0; for t in $(UNIT_BIN); do echo "== $$t"; $$t || fail=1; done; exit $$fail

test-integration: pollgate
	scripts/test-integration.sh

# make test-browser: npm ci (playwright-core, no browser download), unit tests of web/pollgate.js, then the
# demo page in /usr/bin/chromium against a throwaway cluster, ./pollgate and a static server for web/
# (tests/browser/README.md). Screenshots land in build/browser/.
.PHONY: test-browser
test-browser: deps pollgate
	tests/browser/run.sh

# make bench: hold+wake of 10,000 long-polls and the query cost against short-polling, on a throwaway
# PostgreSQL cluster and the release ./pollgate (bench/README.md). Writes build/bench.json.
bench: pollgate build/write_floor
	build/write_floor 9000
	/usr/bin/python3 bench/longpoll_bench.py $(BENCH_ARGS)

# make test-scale: three gateways on one PostgreSQL behind the shipped HAProxy and nginx configs, with
# thousands of browser-like clients: failover (kill -9), rolling restart, NOTIFY and revocation on every
# instance, ETags across instances (tests/scale/, docs/scale-out.md). The release binary: the load is the
# point, and the sanitizer build runs the same code paths in make test.
.PHONY: test-scale
test-scale: pollgate
	POLLGATE_BIN=$${POLLGATE_BIN:-$(CURDIR)/pollgate} PYTHONDONTWRITEBYTECODE=1 \
		/usr/bin/python3 -m pytest -q -p no:cacheprovider -rfE tests/scale $(SCALE_ARGS)

# make bench-scale: what N gateways cost PostgreSQL (statements/s, connections) with 10,000 clients on 100
# runs changing every second, for N = 1, 2, 4, 8, against short-polling (bench/scale_cost.py). Writes
# build/bench-scale.json.
.PHONY: bench-scale
bench-scale: pollgate
	/usr/bin/python3 bench/scale_cost.py $(BENCH_ARGS)

build/write_floor: bench/write_floor.c
	@mkdir -p build
	$(CC) -O2 -Wall -Wextra -o $@ $<

run: deps pollgate
	scripts/run.sh

clean:
	rm -rf build pollgate

# make fuzz: libFuzzer targets (tests/fuzz/fuzz_<target>.c) built with clang, ASan and UBSan into build/fuzz/.
# Each runs FUZZ_TIME seconds on a working corpus under build/fuzz/ seeded from tests/fuzz/corpus/<target>/
# (the repository is never written); any crash, leak or sanitizer report fails the run and leaves its
# input in build/fuzz/artifacts/. make fuzz-regress replays the committed corpus once (seconds).
# The project objects get the sanitizers and coverage hooks but not libFuzzer's main (fuzzer-no-link);
# a target links only the rooms it exercises (FUZZ_OBJ_<target>), like the unit tests.
FUZZ_CC      ?= clang
FUZZ_TIME    ?= 60
FUZZ_BUILD   := build/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS   = -std=c11 -D_GNU_SOURCE -DPOLLGATE_VERSION='"$(VERSION)"' -g -O1 -fno-omit-frame-pointer \
                $(FUZZ_SAN) $(WARN) -I. $(PKG_CFLAGS) -MMD -MP
FUZZ_SRC     := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_TARGETS := $(FUZZ_SRC:tests/fuzz/fuzz_%.c=%)
FUZZ_BIN     := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)

# Kept after a link (a pattern-built prerequisite would otherwise be deleted as intermediate).
.SECONDARY: $(LIB_SRC:%.c=$(FUZZ_BUILD)/%.o)
fuzz_obj = $(patsubst %.c,$(FUZZ_BUILD)/%.o,$(filter $(1),$(LIB_SRC)))
FUZZ_OBJ_request = $(call fuzz_obj,gateway/http.c gateway/cidr.c auth/auth.c common/%)
FUZZ_OBJ_config  = $(call fuzz_obj,gateway/config.c gateway/cidr.c policy/% common/%)

.PHONY: fuzz fuzz-build fuzz-regress

fuzz-build: $(FUZZ_BIN)

fuzz: $(FUZZ_BIN)
	FUZZ_TIME=$(FUZZ_TIME) scripts/fuzz.sh run $(FUZZ_TARGETS)

fuzz-regress: $(FUZZ_BIN)
	scripts/fuzz.sh regress $(FUZZ_TARGETS)

$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $$(FUZZ_OBJ_$$*)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_OBJ_$*) $(PKG_LIBS) -lm

-include $(LIB_OBJ:.o=.d) $(MAIN_OBJ:.o=.d) $(UNIT_BIN:=.d)
-include $(wildcard $(FUZZ_BUILD)/*.d $(FUZZ_BUILD)/*/*.d)
