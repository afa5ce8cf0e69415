# pollgate build.
#
#   make                  build ./pollgate
#   make SANITIZE=address,undefined   build ./pollgate with sanitizers
#   make test             install missing packages, then unit + integration suites (sanitizer build)
#   make run              embedded PostgreSQL under ./var, demo data, gateway on 127.0.0.1:8080
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
test_objs = $(if $(TEST_OBJ_$(1)),$(TEST_OBJ_$(1)),$(LIB_OBJ))

.SECONDEXPANSION:
$(BUILD)/tests/test_%: tests/unit/test_%.c $$(call test_objs,$$*)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(call test_objs,$*) $(LDFLAGS) $(LDLIBS) $(shell pkg-config --libs cmocka 2>/dev/null)

deps:
	@scripts/deps.sh

# make test: packages first, then the unit tests and the integration suite, all on the
# sanitizer build (ASan + UBSan; a leak or UB report fails the run), then the plain binary.
test: deps
	$(MAKE) --no-print-directory SANITIZE=address,undefined test-unit
	$(MAKE) --no-print-directory SANITIZE=address,undefined $(BUILD_SAN_BIN)
	$(MAKE) --no-print-directory pollgate
	POLLGATE_BIN=$(CURDIR)/build/san/pollgate scripts/test-integration.sh
	POLLGATE_BIN=$(CURDIR)/pollgate scripts/test-integration.sh

BUILD_SAN_BIN := build/san/pollgate

test-unit: $(UNIT_BIN)
	@fail=0; for t in $(UNIT_BIN); do echo "== $$t"; $$t || fail=1; done; exit $$fail

test-integration: pollgate
	scripts/test-integration.sh

# make bench: hold+wake of 10,000 long-polls and the query cost against short-polling, on a throwaway
# PostgreSQL cluster and the release ./pollgate (bench/README.md). Writes build/bench.json.
bench: pollgate build/write_floor
	build/write_floor 9000
	/usr/bin/python3 bench/longpoll_bench.py $(BENCH_ARGS)

build/write_floor: bench/write_floor.c
	@mkdir -p build
	$(CC) -O2 -Wall -Wextra -o $@ $<

run: deps pollgate
	scripts/run.sh

clean:
	rm -rf build pollgate

-include $(LIB_OBJ:.o=.d) $(MAIN_OBJ:.o=.d) $(UNIT_BIN:=.d)
