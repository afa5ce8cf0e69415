# pollgate build.
#
#   make                  build ./pollgate
#   make SANITIZE=address,undefined   build ./pollgate with sanitizers
#   make test             install missing packages, then unit + integration suites (sanitizer build), the
#                         browser suite, and the man, version, install, npm package and make run checks
#   make run              embedded PostgreSQL under ./var, demo data, gateway on 127.0.0.1:8080
#                         (HTTP_PORT=, WEB_PORT=, PG_PORT= to move it; installs only what running needs)
#   make test-browser     web/pollgate.js and the demo page in the system Chromium (also the last step of make test)
#   make bench-triggers   what the hint triggers cost the application's writes (pgbench; build/bench-triggers.json)
#   make bench-hints      wake latency, hint_source = logical against notify in one run (build/bench-hints.json)
#   make test-scale       several gateways behind HAProxy and nginx: failover, rolling restart (tests/scale/)
#   make bench-scale      what 1, 2, 4, 8 gateways cost PostgreSQL with 10,000 clients (bench/scale_cost.py)
#   make fuzz [FUZZ_TIME=60]   libFuzzer targets (clang), FUZZ_TIME seconds each; fuzz-regress replays the corpus
#   make install [PREFIX=/usr/local] [sysconfdir=/etc] [DESTDIR=]   the binary, config, SQL, client, man, unit
#   make uninstall        the same files (a config that was edited stays)
#   make man              build/man/pollgate.8 and pollgate.conf.5 (the key list comes from gateway/config.c)
#   make test-package     the Debian package: build, lintian, install, run, purge (scripts/test-package.sh)
#   make bench-peers [BENCH_PEERS_ROWS=10000x100:burst,...]   pollgate and nginx+nchan on one workload
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

# tests/unit mirrors the tree: tests/unit/<room>/test_<module>.c tests <room>/<module>.c.
UNIT_SRC := $(sort $(wildcard tests/unit/*/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps test test-unit test-integration run test-run clean bench

all: pollgate man

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
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

# A unit test links only the rooms it tests (tests/unit/<room>/test_<name>.c -> TEST_OBJ_<name>), so one room
# can be tested while another is mid-change. Unlisted tests link every room.
room_obj = $(patsubst %.c,$(BUILD)/%.o,$(filter $(1),$(LIB_SRC)))
TEST_OBJ_policy  = $(call room_obj,policy/% common/%)
TEST_OBJ_policy_body  = $(call room_obj,policy/% common/%)
TEST_OBJ_policy_parse = $(call room_obj,policy/% common/%)
TEST_OBJ_config  = $(call room_obj,gateway/config.c gateway/conf-% gateway/cidr.c auth/jwt.c policy/% common/%)
TEST_OBJ_config_files = $(call room_obj,gateway/config.c gateway/conf-% gateway/cidr.c auth/jwt.c policy/% common/%)
TEST_OBJ_conf_engine = $(call room_obj,gateway/conf-% gateway/cidr.c policy/% common/%)
TEST_OBJ_conf_types  = $(call room_obj,gateway/conf-% gateway/cidr.c policy/% common/%)
TEST_OBJ_auth    = $(call room_obj,auth/% policy/% common/%)
TEST_OBJ_jwt     = $(call room_obj,auth/jwt.c)
TEST_OBJ_access  = $(call room_obj,db/access.c db/queries.c common/%)
TEST_OBJ_queries = $(call room_obj,db/queries.c common/%)
TEST_OBJ_hints   = $(call room_obj,db/hints.c common/%)
TEST_OBJ_pgoutput = $(call room_obj,db/pgoutput.c)
TEST_OBJ_conn    = $(call room_obj,db/conn.c common/%)
TEST_OBJ_pool    = $(call room_obj,db/pool.c db/conn.c common/%)
TEST_OBJ_listen  = $(call room_obj,db/listen.c db/conn.c db/hints.c common/%)
TEST_OBJ_logical = $(call room_obj,db/logical.c db/logical-hints.c db/logical-visible.c db/conn.c db/pgoutput.c \
                   db/hints.c common/%)
# The hints and the visibility check without db/logical.c: the test stands in for db_lg_down/db_lg_mono_ms.
TEST_OBJ_logical_hints = $(call room_obj,db/logical-hints.c db/pgoutput.c db/hints.c common/%)
TEST_OBJ_logical_visible = $(call room_obj,db/logical-visible.c db/logical-hints.c db/conn.c db/pgoutput.c \
                   db/hints.c common/%)
TEST_OBJ_http    = $(call room_obj,gateway/http.c common/%)
TEST_OBJ_render  = $(call room_obj,gateway/render.c gateway/http.c common/%)
TEST_OBJ_hmap    = $(call room_obj,common/%)
TEST_OBJ_hex     = $(call room_obj,policy/% common/%)
TEST_OBJ_log     = $(call room_obj,common/%)
TEST_OBJ_hold    = $(call room_obj,gateway/hold.c common/hist.c)
TEST_OBJ_hist    = $(call room_obj,common/hist.c)
TEST_OBJ_rows    = $(call room_obj,gateway/rows.c)
TEST_OBJ_cidr    = $(call room_obj,gateway/cidr.c)
TEST_OBJ_shared  = $(call room_obj,gateway/shared.c common/%)
TEST_OBJ_cache   = $(call room_obj,auth/cache.c auth/auth.c common/%)
TEST_OBJ_digest  = $(call room_obj,common/digest.c)
TEST_OBJ_duration = $(call room_obj,policy/duration.c)
TEST_OBJ_conf_redact = $(call room_obj,gateway/conf-redact.c)
TEST_OBJ_conf_policy = $(call room_obj,gateway/conf-engine.c gateway/conf-policy.c policy/% common/%)
# /metrics over figures the test supplies: it defines the registry's and the db rooms' getters itself.
TEST_OBJ_metrics = $(call room_obj,gateway/metrics.c gateway/shared.c gateway/hold.c gateway/http.c gateway/watch.c \
                   db/hints.c auth/cache.c policy/% common/%)
# The supervisor forks real workers; it folds a dead worker's figures through metrics.c, whose getters reach
# every room, so it links them all.
TEST_OBJ_supervisor = $(LIB_OBJ)
# The front over real HTTP, with the registry on its fake seam (no registry-io.c) and no database.
TEST_OBJ_server = $(filter-out $(BUILD)/gateway/registry-io.o $(BUILD)/gateway/supervisor.o,$(LIB_OBJ))
# The registry without its production seam (registry-io.c: the pool and evhttp): a fake reader and reply.
TEST_OBJ_registry = $(call room_obj,gateway/registry.c gateway/reread.c gateway/decide.c gateway/answer.c \
                    gateway/waiter.c gateway/watch.c gateway/hold.c gateway/rows.c \
                    gateway/shared.c gateway/cidr.c gateway/http.c gateway/config.c gateway/conf-% \
                    db/access.c db/queries.c auth/% policy/% common/%)
test_objs = $(if $(TEST_OBJ_$(1)),$(TEST_OBJ_$(1)),$(LIB_OBJ))

.SECONDEXPANSION:
unit_name = $(patsubst test_%,%,$(notdir $(1)))
$(BUILD)/tests/%: tests/unit/%.c $$(call test_objs,$$(call unit_name,$$*))
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(call test_objs,$(call unit_name,$*)) $(LDFLAGS) $(LDLIBS) \
		$(shell pkg-config --libs cmocka 2>/dev/null)

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
	$(MAKE) --no-print-directory test-man test-versions test-install test-web test-run

BUILD_SAN_BIN := build/san/pollgate

# One throwaway cluster for the whole run (scripts/with-pg.sh): the db/ tests that need a live server
# read its conninfo from POLLGATE_TEST_DSN (skipped without it by hand, failed without it under CI=true).
test-unit: $(UNIT_BIN)
	@scripts/with-pg.sh sh -c 'fail=0; for t in "$$@"; do echo "== $$t"; $$t || fail=1; done; exit $$fail' \
		test-unit $(UNIT_BIN)

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

# make bench-triggers: pgbench updating one random operation_runs row per transaction at 1, 8 and 32 clients,
# with the hint triggers (notify), with hint_source = logical (a ./pollgate streaming the changes, no trigger)
# and with neither (none), on a throwaway cluster with default durability (bench/triggers_bench.py).
# BENCH_TRIGGERS_SECONDS (default 10 per point), BENCH_TRIGGERS_CLIENTS, BENCH_TRIGGERS_SOURCES,
# BENCH_TRIGGERS_SYNC (on|off: synchronous_commit of the writers) tune it.
# Writes build/bench-triggers.json.
.PHONY: bench-triggers
bench-triggers: deps pollgate
	/usr/bin/python3 bench/triggers_bench.py $(BENCH_TRIGGERS_ARGS)

# make bench-hints: wake latency of hint_source = logical against notify, two gateways on one throwaway
# cluster at once, the same commits (bench/hint_latency.py). BENCH_HINTS_ARGS passes options.
# Writes build/bench-hints.json.
.PHONY: bench-hints
bench-hints: deps pollgate
	/usr/bin/python3 bench/hint_latency.py $(BENCH_HINTS_ARGS)

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

# make bench-peers: nginx + nchan (installed through scripts/deps.sh bench when run as root) and the
# release ./pollgate side by side, same workloads, same load generator (build/peers_load); the table is
# printed and written to build/bench-peers.json (bench/README.md). BENCH_PEERS_ROWS=NxR:paced|burst,...
# (or all) selects rows, BENCH_PEERS_REPEAT=2 runs each twice, BENCH_PEERS_ARGS passes other options.
.PHONY: bench-peers
bench-peers:
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory pollgate build/peers_load build/write_floor
	/usr/bin/python3 bench/peers.py $(BENCH_PEERS_ARGS)

build/peers_load: bench/peers_load.c
	@mkdir -p build
	$(CC) -O2 -Wall -Wextra -Wshadow -o $@ $<

# make run installs only what running needs (scripts/deps.sh run: no browser, proxies or test tools).
# Ports: HTTP_PORT=8080 WEB_PORT=8081 PG_PORT=54329 make run (environment or make variables; both reach
# the script's environment).
run:
	@scripts/deps.sh run
	@$(MAKE) --no-print-directory pollgate
	scripts/run.sh

# scripts/run.sh started three times (through make run) on scratch ports and a scratch directory, stopped
# by Ctrl-C (SIGINT to its group), SIGTERM to the script, SIGTERM to its group: nothing it started survives.
test-run: pollgate
	/usr/bin/python3 -m pytest -q -p no:cacheprovider -rfE tests/run

clean:
	rm -rf build pollgate

# ---- install (GNU-style directory variables; DESTDIR for staging, as the Debian package does) ----
#
# sysconfdir is /etc whatever PREFIX is: the daemon's config lives where operators and the unit's
# ConfigurationDirectory= look (fixed-points.md: /etc/pollgate/pollgate.conf); override with sysconfdir=.
# The binary goes to sbin (a system daemon, pollgate(8)). The path of the config is compiled into
# gateway/main.o (POLLGATE_SYSCONFDIR): read when no -c is given.
PREFIX         ?= /usr/local
sbindir        ?= $(PREFIX)/sbin
datadir        ?= $(PREFIX)/share
mandir         ?= $(datadir)/man
docdir         ?= $(datadir)/doc/pollgate
sysconfdir     ?= /etc
systemdunitdir ?= $(PREFIX)/lib/systemd/system
pkgdatadir     := $(datadir)/pollgate
confdir        := $(sysconfdir)/pollgate
INSTALL        ?= install

# The paths a build bakes in (the default config in main.o, the paths in the man pages); rewritten only
# when they change, so a different sysconfdir rebuilds what depends on it and nothing else.
PATHS_STAMP := $(BUILD)/install-paths
.PHONY: FORCE
$(PATHS_STAMP): FORCE
	@mkdir -p $(dir $@)
	@printf '%s\n' '$(sysconfdir)' '$(sbindir)' '$(datadir)' '$(docdir)' | cmp -s - $@ || \
		printf '%s\n' '$(sysconfdir)' '$(sbindir)' '$(datadir)' '$(docdir)' >$@
$(MAIN_OBJ): $(PATHS_STAMP)
$(MAIN_OBJ): CFLAGS += -DPOLLGATE_SYSCONFDIR='"$(sysconfdir)"'

# Man pages: man/*.in with the KEYS of pollgate.conf(5) generated from the key table itself
# (build/<variant>/conf-reference prints it; man/mkman.sh writes the mdoc). Generated, not committed, so
# they cannot drift from the table; building them needs only the compiler and awk.
MAN_PAGES := build/man/pollgate.8 build/man/pollgate.conf.5
CONFREF   := $(BUILD)/conf-reference
.PHONY: man
man: $(MAN_PAGES)

$(CONFREF): $(BUILD)/man/conf-reference.o $(TEST_OBJ_config)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/conf-reference.tsv: $(CONFREF)
	$(CONFREF) >$@.tmp && mv -f $@.tmp $@

build/man/%: man/%.in man/mkman.sh $(BUILD)/conf-reference.tsv $(PATHS_STAMP)
	@mkdir -p $(dir $@)
	SYSCONFDIR='$(sysconfdir)' DATADIR='$(datadir)' DOCDIR='$(docdir)' SBINDIR='$(sbindir)' VERSION='$(VERSION)' \
		man/mkman.sh $(BUILD)/conf-reference.tsv $< $@

# The unit in conf/ names the default paths (/usr/local/sbin, /etc/pollgate); the installed one names
# the paths of this install.
build/pollgate.service: conf/pollgate.service $(PATHS_STAMP)
	@mkdir -p $(dir $@)
	sed -e 's|/usr/local/sbin/|$(sbindir)/|g' -e 's|/etc/pollgate/|$(confdir)/|g' $< >$@.tmp && mv -f $@.tmp $@

SQL_FILES := db/schema.sql db/grant.sql db/demo.sql
MIGRATIONS = $(sort $(wildcard db/migrations/*.sql))
WEB_FILES := web/pollgate.js web/pollgate.d.ts web/package.json web/README.md
DOC_FILES  = $(sort $(wildcard docs/*.md))
EXAMPLES  := conf/pollgate.conf conf/nginx.conf conf/haproxy.cfg

.PHONY: install uninstall
install: pollgate man build/pollgate.service
	$(INSTALL) -d $(DESTDIR)$(sbindir) $(DESTDIR)$(pkgdatadir)/migrations $(DESTDIR)$(pkgdatadir)/web \
		$(DESTDIR)$(mandir)/man8 $(DESTDIR)$(mandir)/man5 $(DESTDIR)$(docdir)/docs $(DESTDIR)$(docdir)/examples \
		$(DESTDIR)$(systemdunitdir)
	$(INSTALL) -m 0755 pollgate $(DESTDIR)$(sbindir)/pollgate
	$(INSTALL) -m 0644 $(SQL_FILES) $(DESTDIR)$(pkgdatadir)/
	$(INSTALL) -m 0644 $(MIGRATIONS) $(DESTDIR)$(pkgdatadir)/migrations/
	$(INSTALL) -m 0644 $(WEB_FILES) $(DESTDIR)$(pkgdatadir)/web/
	$(INSTALL) -m 0644 build/man/pollgate.8 $(DESTDIR)$(mandir)/man8/
	$(INSTALL) -m 0644 build/man/pollgate.conf.5 $(DESTDIR)$(mandir)/man5/
	@# docs/ keeps its name, so the README's links into it still resolve.
	$(INSTALL) -m 0644 README.md $(DESTDIR)$(docdir)/
	$(INSTALL) -m 0644 $(DOC_FILES) $(DESTDIR)$(docdir)/docs/
	$(INSTALL) -m 0644 $(EXAMPLES) $(DESTDIR)$(docdir)/examples/
	$(INSTALL) -m 0644 build/pollgate.service $(DESTDIR)$(systemdunitdir)/pollgate.service
	@# The config: never overwritten; readable by root and the pollgate group only (it may hold a password).
	@[ -d $(DESTDIR)$(confdir) ] || $(INSTALL) -d -m 0750 $(DESTDIR)$(confdir)
	@if [ -e $(DESTDIR)$(confdir)/pollgate.conf ]; then \
		echo "install: kept the existing $(DESTDIR)$(confdir)/pollgate.conf"; \
	else \
		echo "$(INSTALL) -m 0640 conf/pollgate.conf $(DESTDIR)$(confdir)/pollgate.conf"; \
		$(INSTALL) -m 0640 conf/pollgate.conf $(DESTDIR)$(confdir)/pollgate.conf; \
	fi
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" -eq 0 ]; then \
		if getent group pollgate >/dev/null; then \
			chgrp pollgate $(confdir) $(confdir)/pollgate.conf; \
		else \
			echo "install: no pollgate user yet; the unit runs as one:"; \
			echo "  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin pollgate"; \
			echo "  chgrp pollgate $(confdir) $(confdir)/pollgate.conf"; \
		fi; \
	fi

# Removes what install wrote. The config goes only when it is still the shipped one: an edited config is
# the operator's and stays (as dpkg does with a conffile on remove).
uninstall:
	rm -f $(DESTDIR)$(sbindir)/pollgate $(DESTDIR)$(systemdunitdir)/pollgate.service \
		$(DESTDIR)$(mandir)/man8/pollgate.8 $(DESTDIR)$(mandir)/man5/pollgate.conf.5
	rm -rf $(DESTDIR)$(pkgdatadir) $(DESTDIR)$(docdir)
	@if [ -f $(DESTDIR)$(confdir)/pollgate.conf ]; then \
		if cmp -s conf/pollgate.conf $(DESTDIR)$(confdir)/pollgate.conf; then \
			echo "rm -f $(DESTDIR)$(confdir)/pollgate.conf"; rm -f $(DESTDIR)$(confdir)/pollgate.conf; \
		else \
			echo "uninstall: kept $(DESTDIR)$(confdir)/pollgate.conf (edited since install)"; \
		fi; \
	fi
	-@rmdir $(DESTDIR)$(confdir) 2>/dev/null || true

# ---- packaging and release checks ----

# make install/uninstall into scratch trees (scripts/test-install.sh).
test-install: pollgate man
	scripts/test-install.sh

# The Debian package, built out of tree, linted, installed on this machine, run and purged (root).
.PHONY: test-package test-web test-versions test-man test-install
test-package:
	scripts/test-package.sh

# web/ as an npm package: npm pack, installed offline into a scratch project, imported with node.
test-web:
	scripts/test-web-package.sh

# Makefile VERSION, debian/changelog and web/package.json name the same version.
test-versions:
	scripts/test-versions.sh $(VERSION)

# The man pages: every key of the table documented once, nothing else, and mandoc -T lint clean.
test-man: man pollgate
	scripts/test-man.sh $(BUILD)/conf-reference.tsv

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
FUZZ_OBJ_config  = $(call fuzz_obj,gateway/config.c gateway/conf-% gateway/cidr.c auth/jwt.c policy/% common/%)
FUZZ_OBJ_jwt     = $(call fuzz_obj,auth/jwt.c)
FUZZ_OBJ_log     = $(call fuzz_obj,common/%)
FUZZ_OBJ_pgoutput = $(call fuzz_obj,db/pgoutput.c)

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
