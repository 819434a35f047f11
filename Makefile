# DANCE suite -- top-level build.
#
#   make deps        install Debian packages (apt-get, idempotent)
#   make             libdance.a + CLI tools in build/
#   make test        unit + integration tests, closing "N passed, N failed"
#                    (nginx suites against Debian's nginx and nginx 1.31.4,
#                    hostapd against 2.10, 2.11 and main, the upstream ones
#                    built from ../shared/upstream: make nginx-upstream,
#                    make hostapd-upstream)
#   make test-asan   core tests, and the hosts (nginx, hostapd, FreeRADIUS)
#                    with our code, under ASan+UBSan
#   make fuzz        libFuzzer targets, FUZZ_SECONDS each
#   make demo        deps, build, local DNSSEC world, authenticate a device
#   make install     tools to $(PREFIX)/bin, library and header

PREFIX   ?= /usr/local
CC       ?= cc
BUILD    ?= build
OPT      ?= -O2 -g
CFLAGS   ?= $(OPT)
WARN      = -Wall -Wextra -Wno-unused-parameter
CPPFLAGS += -Icommon/include -D_GNU_SOURCE
LIBS      = -lunbound -lpcre2-8 -lssl -lcrypto -lpthread
FUZZ_SECONDS ?= 20
# Upstream release tarballs + SHA256SUMS (offline copies, see their
# README.md), for testing newer hosts: ../shared/upstream of the clone
# (or of a worktree's parent).
UPSTREAM ?= $(firstword $(wildcard $(abspath ../shared/upstream) \
		$(abspath ../../shared/upstream)) ../shared/upstream)
NGINX_TARBALL ?= $(UPSTREAM)/nginx-1.31.4.tar.gz
FREERADIUS_TARBALL ?= $(UPSTREAM)/freeradius-server-3.2.10.tar.gz
# the hostap release make test-asan builds with the sanitizers
HOSTAP_ASAN_TARBALL ?= $(UPSTREAM)/hostap-2.11.tar.gz

LIB_SRC   = $(wildcard common/src/*.c)
LIB_OBJ   = $(LIB_SRC:common/src/%.c=$(BUILD)/obj/%.o)
LIB       = $(BUILD)/libdance.a
TOOL_SRC  = $(wildcard common/tools/dance-*.c)
TOOLS     = $(TOOL_SRC:common/tools/%.c=$(BUILD)/bin/%)
TTOOL_SRC = $(wildcard t/tools/*.c)
TTOOLS    = $(TTOOL_SRC:t/tools/%.c=$(BUILD)/t/%)
UNIT_SRC  = $(wildcard t/unit/test_*.c)
UNITS     = $(UNIT_SRC:t/unit/%.c=$(BUILD)/t/%)
INTEG_SRC = $(wildcard t/integration/test_*.c)
INTEGS    = $(INTEG_SRC:t/integration/%.c=$(BUILD)/t/%)
FUZZ_SRC  = $(wildcard t/fuzz/fuzz_*.c)

.PHONY: all deps test test-unit test-asan fuzz demo install clean check-tests \
	nginx nginx-upstream freeradius hostapd hostapd-upstream bench

all: $(LIB) $(TOOLS) $(TTOOLS)

deps:
	@sh .ci/deps.sh

$(BUILD)/obj/%.o: common/src/%.c common/include/dance.h $(wildcard common/src/*.h)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -fPIC -c -o $@ $<

$(LIB): $(LIB_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

# Every tool links the shared tool helpers (tool_util.c).
TOOL_UTIL = $(BUILD)/obj/tools/tool_util.o

$(TOOL_UTIL): common/tools/tool_util.c common/tools/tool_util.h common/include/dance.h
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -c -o $@ $<

$(BUILD)/bin/%: common/tools/%.c $(wildcard common/tools/*.h) $(TOOL_UTIL) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) $(LDFLAGS) -o $@ $< $(TOOL_UTIL) $(LIB) $(LIBS)

# dance-idm also sends RFC 2136 updates with TSIG, through ldns.
$(BUILD)/bin/dance-idm: LIBS += -lldns

$(BUILD)/t/%: t/tools/%.c $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) $(LDFLAGS) -o $@ $< $(LIB) $(LIBS)

$(BUILD)/t/test_%: t/unit/test_%.c $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -Icommon/src $(LDFLAGS) -o $@ $< $(LIB) $(LIBS) -lcmocka

$(BUILD)/t/test_%: t/integration/test_%.c $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -Icommon/src $(LDFLAGS) -o $@ $< $(LIB) $(LIBS) -lcmocka

check-tests: all $(UNITS) $(INTEGS)

# Every test: unit binaries, integration binaries and t/*.sh scripts
# (which need the three host integrations built), summarised by
# t/run.sh in one closing line.
# (an upstream nginx or hostap that does not build is a failed suite in
# t/run.sh, after the other suites ran)
test: check-tests nginx freeradius hostapd
	-@$(MAKE) --no-print-directory nginx-upstream
	-@$(MAKE) --no-print-directory hostapd-upstream
	@BUILD=$(abspath $(BUILD)) sh t/run.sh

test-unit: check-tests
	@BUILD=$(abspath $(BUILD)) sh t/run.sh unit

# The core's tests with leak checking, then the nginx module and nginx
# itself (upstream release) under the same sanitizers, running the
# nginx test suites (t/asan/hosts.sh).
test-asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
		LDFLAGS="-fsanitize=address,undefined" check-tests
	@ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
		BUILD=$(abspath build-asan) sh t/run.sh core
	@BUILD=$(abspath build-asan) sh t/asan/hosts.sh $(abspath $(NGINX_TARBALL)) \
		$(abspath $(HOSTAP_ASAN_TARBALL)) $(abspath $(FREERADIUS_TARBALL))

# libFuzzer targets link against a sanitized, fuzzer-instrumented lib.
fuzz:
	$(MAKE) BUILD=build-fuzz CC=clang \
		OPT="-O1 -g -fsanitize=fuzzer-no-link,address,undefined" \
		build-fuzz/libdance.a
	@BUILD=$(abspath build-fuzz) sh t/fuzz/run.sh $(FUZZ_SECONDS)

# Host integrations: each has its own build script, driven from here.
nginx: all
	@BUILD=$(abspath $(BUILD)) sh ngx_dance_module/build.sh

# nginx 1.31.4 + the module from $(NGINX_TARBALL), built once into
# $(BUILD)/nginx-1.31.4/; t/run.sh runs the nginx suites against it too.
nginx-upstream: all
	@if [ -f "$(NGINX_TARBALL)" ]; then \
		BUILD=$(abspath $(BUILD)) sh t/tools/build_nginx.sh $(abspath $(NGINX_TARBALL)); \
	else \
		echo "nginx-upstream: $(NGINX_TARBALL) not found (set UPSTREAM= or" \
			"NGINX_TARBALL=): the nginx_*@1.31.4 runs of make test will fail" >&2; \
	fi

# rlm_dance for Debian's FreeRADIUS, and for FREERADIUS_TARBALL (built
# once into $(BUILD)/freeradius-X.Y.Z/) when it is there.
freeradius: all
	@BUILD=$(abspath $(BUILD)) sh freeradius_module/build.sh
	@if [ -f "$(FREERADIUS_TARBALL)" ]; then \
		BUILD=$(abspath $(BUILD)) FR_TARBALL=$(abspath $(FREERADIUS_TARBALL)) sh freeradius_module/build.sh; \
	else \
		echo "freeradius: $(FREERADIUS_TARBALL) not found, rlm_dance not built for it (set UPSTREAM= or FREERADIUS_TARBALL=)"; \
	fi

hostapd: all
	@BUILD=$(abspath $(BUILD)) HOSTAP="$(HOSTAP)" sh hostapd_patch/build.sh

# hostap 2.11 and main from $(UPSTREAM) (each into
# $(BUILD)/hostapd-<version>/, built once); t/run.sh runs t/hostapd.sh
# against them too (t/versions).
HOSTAP_UPSTREAM ?= $(wildcard $(UPSTREAM)/hostap-*.tar.gz)
hostapd-upstream: all
	@[ -n "$(HOSTAP_UPSTREAM)" ] || echo "hostapd-upstream: no" \
		"$(UPSTREAM)/hostap-*.tar.gz (set UPSTREAM= or HOSTAP_UPSTREAM=):" \
		"the hostapd@ runs of make test will fail" >&2
	@for t in $(abspath $(HOSTAP_UPSTREAM)); do \
		BUILD=$(abspath $(BUILD)) HOSTAP=$$t sh hostapd_patch/build.sh || exit 1; \
	done

demo:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory all nginx freeradius hostapd
	@BUILD=$(abspath $(BUILD)) sh t/demo.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include
	install -m 755 $(TOOLS) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(LIB) $(DESTDIR)$(PREFIX)/lib/
	install -m 644 common/include/dance.h $(DESTDIR)$(PREFIX)/include/

clean:
	rm -rf build build-asan build-fuzz

bench: all nginx freeradius hostapd
	@BUILD=$(abspath $(BUILD)) sh bench/run.sh
