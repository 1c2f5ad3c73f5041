# sandpit — build, test and run.
#
#   make deps    install the Debian packages the project needs (only missing ones)
#   make         build bin/sandpitd, bin/sandpit-monitor, bin/monitor-cli
#   make test    deps, build, unit + integration tests, then again under ASan/UBSan,
#                then make fuzz-short
#   make run     deps, build, run sandpitd with wrangler-like.toml in the foreground
#   make bench   run the benchmarks in bench/
#   make fuzz    build the libFuzzer targets (tests/fuzz/) with clang and run each
#                for FUZZ_SECONDS (default 60); make fuzz-short: 10 s each
#   make images  a Docker engine (scripts/docker-up) and the images: sandpit/base,
#                sandpit/sandbox, sandpit/deployer (dockerfiles/)

CC ?= cc
PKGS := libmicrohttpd libcurl libcjson libarchive sqlite3 libpcre2-8
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# Linked by every program.  libarchive is not linked into any of them:
# lib/tarball.c loads it with dlopen on first use (it drags libxml2, ICU and
# libstdc++ in); only the unit tests link it, to write their fixtures.
# libcurl only where it is used: sandpitd (the Docker backend).
PKG_LIBS = $(shell pkg-config --libs libmicrohttpd libcjson sqlite3 libpcre2-8 2>/dev/null)
CURL_LIBS = $(shell pkg-config --libs libcurl 2>/dev/null)
# libseccomp only where it is used: the monitor (its sandbox processes' filter).
SECCOMP_LIBS = $(shell pkg-config --libs libseccomp 2>/dev/null)
ARCHIVE_LIBS = $(shell pkg-config --libs libarchive 2>/dev/null)
CHECK_CFLAGS = $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS = $(shell pkg-config --libs check 2>/dev/null)

# SANITIZE=1 builds a separate tree under build/san with ASan and UBSan.
ifeq ($(SANITIZE),1)
  VARIANT := san
  OPT := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDSAN := -fsanitize=address,undefined
  BINDIR := build/san/bin
else
  VARIANT := release
  OPT := -O2 -g
  LDSAN :=
  BINDIR := bin
endif

BUILD := build/$(VARIANT)
CFLAGS_ALL := -std=c11 -Wall -Wextra -Werror $(OPT) -D_GNU_SOURCE -Ilib $(PKG_CFLAGS) $(CFLAGS)
LDLIBS_ALL := $(PKG_LIBS) -lpthread -lm $(LDLIBS)

LIB_SRCS := $(wildcard lib/*.c)
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
LIBA := $(BUILD)/libsandpit.a

# lib/ holds only what two or more programs use.  Each program's own modules
# (container/ for the monitor, manager/ for sandpitd, a folder each for the
# big ones) are an archive of their own, compiled with that program's
# folders on the include path: lib/ cannot include them, nor one program
# the other's, and unit tests link them all.
MONITOR_INC := -Icontainer -Icontainer/classify
MANAGER_INC := -Imanager -Imanager/backend
MONITOR_MODS := $(patsubst %.c,$(BUILD)/%.o,$(filter-out container/main.c,$(wildcard container/*.c container/*/*.c)))
MONITOR_A := $(BUILD)/libmonitor.a
MONITOR_OBJS := $(BUILD)/container/main.o $(BUILD)/container/rules_data.o
MANAGER_MODS := $(patsubst %.c,$(BUILD)/%.o,$(filter-out manager/main.c,$(wildcard manager/*.c manager/*/*.c)))
MANAGER_A := $(BUILD)/libmanager.a
MANAGER_OBJS := $(BUILD)/manager/main.o $(BUILD)/manager/openapi_data.o
CLI_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(wildcard monitor-cli/*.c))

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

PROGS := $(BINDIR)/sandpitd $(BINDIR)/sandpit-monitor $(BINDIR)/monitor-cli

.PHONY: all deps test run unit integration check-suites bench images clean san
.DELETE_ON_ERROR:

all: $(PROGS) $(UNIT_BINS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(XINC) -MMD -MP -c $< -o $@

$(BUILD)/container/%.o: XINC := $(MONITOR_INC)
$(BUILD)/manager/%.o: XINC := $(MANAGER_INC)

# The default classification rules are built into the monitor.
$(BUILD)/container/rules_data.o: container/rules_data.S container/rules/default.toml
	@mkdir -p $(dir $@)
	$(CC) -c $< -o $@

$(BUILD)/manager/openapi_data.o: manager/openapi_data.S docs/openapi.json
	@mkdir -p $(dir $@)
	$(CC) -c $< -o $@

$(LIBA): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(MANAGER_A): $(MANAGER_MODS)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(BINDIR)/sandpitd: $(MANAGER_OBJS) $(MANAGER_A) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(LDSAN) -o $@ $(MANAGER_OBJS) $(MANAGER_A) $(LIBA) $(CURL_LIBS) $(LDLIBS_ALL)

$(MONITOR_A): $(MONITOR_MODS)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(BINDIR)/sandpit-monitor: $(MONITOR_OBJS) $(MONITOR_A) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(LDSAN) -o $@ $(MONITOR_OBJS) $(MONITOR_A) $(LIBA) $(SECCOMP_LIBS) $(LDLIBS_ALL)

$(BINDIR)/monitor-cli: $(CLI_OBJS) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(LDSAN) -o $@ $(CLI_OBJS) $(LIBA) $(LDLIBS_ALL)

$(BUILD)/tests/%: tests/unit/%.c $(MONITOR_A) $(MANAGER_A) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(MONITOR_INC) $(MANAGER_INC) $(CHECK_CFLAGS) -MMD -MP -MF $@.d -MT $@ -o $@ $< $(MONITOR_A) \
	  $(MANAGER_A) $(LIBA) $(CHECK_LIBS) $(CURL_LIBS) $(SECCOMP_LIBS) \
	  $(ARCHIVE_LIBS) $(LDLIBS_ALL)

deps:
	@scripts/deps

# Unit tests: each Check binary prints its own summary line.
unit: all
	@scripts/check-cleanup-jumps
	@set -e; for t in $(UNIT_BINS); do \
	  echo "== unit: $$t"; \
	  SANDPIT_ROOT=$(CURDIR) $$t; \
	done

integration: all
	@SANDPIT_BIN=$(CURDIR)/$(BINDIR) SANDPIT_ROOT=$(CURDIR) tests/integration/run

check-suites: unit integration

test: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory docker-test-images
	@$(MAKE) --no-print-directory check-suites
	@echo "== again under AddressSanitizer and UndefinedBehaviorSanitizer"
	@$(MAKE) --no-print-directory SANITIZE=1 all
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(MAKE) --no-print-directory SANITIZE=1 check-suites
	@$(MAKE) --no-print-directory fuzz-short

san:
	@$(MAKE) --no-print-directory SANITIZE=1 all

run: deps
	@$(MAKE) --no-print-directory all
	exec $(BINDIR)/sandpitd --config wrangler-like.toml

bench: deps
	@$(MAKE) --no-print-directory all
	bench/run

clean:
	rm -rf build bin

# ---- Fuzzing: libFuzzer targets, tests/fuzz/fuzz_<name>.c (docs/fuzzing.md) ----
# The project's sources are built again with clang, coverage-instrumented and
# under ASan and UBSan, into build/fuzz/ (archives as above); each target
# links them.  A run works on a copy of tests/fuzz/corpus/<name>/, so the
# repository does not grow; a crash fails it and is kept in build/fuzz/crashes/.
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_BUILD := build/fuzz
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
# The project's warnings but one: clang's -Wmissing-field-initializers also
# flags the positional initialisers of container/classify/blocks.c's grammar
# table, which leave trailing fields zero on purpose (gcc does not warn).
FUZZ_CFLAGS := -std=c11 -Wall -Wextra -Werror -Wno-missing-field-initializers -g -O1 \
  -D_GNU_SOURCE -Ilib $(PKG_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link
FUZZ_NAMES := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS := $(FUZZ_NAMES:%=$(FUZZ_BUILD)/fuzz_%)
FUZZ_LIB_OBJS := $(LIB_SRCS:%.c=$(FUZZ_BUILD)/%.o)
FUZZ_MONITOR_OBJS := $(patsubst %.c,$(FUZZ_BUILD)/%.o,$(filter-out container/main.c,\
  $(wildcard container/*.c container/*/*.c))) $(FUZZ_BUILD)/container/rules_data.o
FUZZ_MANAGER_OBJS := $(patsubst %.c,$(FUZZ_BUILD)/%.o,$(filter-out manager/main.c,\
  $(wildcard manager/*.c manager/*/*.c))) $(FUZZ_BUILD)/manager/openapi_data.o

.PHONY: fuzz fuzz-short fuzz-build

fuzz-build: $(FUZZ_BINS)

$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_XINC) -MMD -MP -c $< -o $@

$(FUZZ_BUILD)/container/%.o: FUZZ_XINC := $(MONITOR_INC)
$(FUZZ_BUILD)/manager/%.o: FUZZ_XINC := $(MANAGER_INC)
$(FUZZ_BUILD)/tests/fuzz/%.o: FUZZ_XINC := $(MONITOR_INC) $(MANAGER_INC)

$(FUZZ_BUILD)/container/rules_data.o: container/rules_data.S container/rules/default.toml
$(FUZZ_BUILD)/manager/openapi_data.o: manager/openapi_data.S docs/openapi.json
$(FUZZ_BUILD)/container/rules_data.o $(FUZZ_BUILD)/manager/openapi_data.o:
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -c $< -o $@

$(FUZZ_BUILD)/libsandpit.a: $(FUZZ_LIB_OBJS)
$(FUZZ_BUILD)/libmonitor.a: $(FUZZ_MONITOR_OBJS)
$(FUZZ_BUILD)/libmanager.a: $(FUZZ_MANAGER_OBJS)
$(FUZZ_BUILD)/libsandpit.a $(FUZZ_BUILD)/libmonitor.a $(FUZZ_BUILD)/libmanager.a:
	rm -f $@
	ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/tests/fuzz/fuzz_%.o $(FUZZ_BUILD)/libmonitor.a \
  $(FUZZ_BUILD)/libmanager.a $(FUZZ_BUILD)/libsandpit.a
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $< $(FUZZ_BUILD)/libmonitor.a \
	  $(FUZZ_BUILD)/libmanager.a $(FUZZ_BUILD)/libsandpit.a $(CURL_LIBS) $(SECCOMP_LIBS) \
	  $(LDLIBS_ALL)

fuzz: deps
	@$(MAKE) --no-print-directory fuzz-build
	@tests/fuzz/run $(FUZZ_SECONDS) $(FUZZ_BINS)

fuzz-short:
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=10

-include $(FUZZ_LIB_OBJS:.o=.d) $(FUZZ_MONITOR_OBJS:.o=.d) $(FUZZ_MANAGER_OBJS:.o=.d) \
  $(FUZZ_NAMES:%=$(FUZZ_BUILD)/tests/fuzz/fuzz_%.d)

# ---- Docker: the engine and the images (dockerfiles/, context = this directory) ----
# The legacy builder, as sandpitd's own builds through the Engine API use it:
# the two share their layer cache.
DOCKER_BUILD = DOCKER_BUILDKIT=0 docker build --force-rm -f dockerfiles/$(1) -t sandpit/$(2):latest . \
  >build/docker-$(2).log 2>&1 || { tail -n 30 build/docker-$(2).log; exit 1; }

images: all
	@scripts/docker-up
	@scripts/build-base-image
	@mkdir -p build
	@echo "== image sandpit/sandbox" && $(call DOCKER_BUILD,SandboxDockerfile,sandbox)
	@echo "== image sandpit/deployer" && $(call DOCKER_BUILD,DeployerDockerfile,deployer)

# Before the test suites: an engine and the base and sandbox images when this
# machine can run an engine.  When it cannot, make test goes on and the
# docker backend's tests say SKIPPED, loudly; under CI=true, where an engine
# is promised, make test stops here instead.
docker-test-images: all
	@mkdir -p build
	@if scripts/docker-up && scripts/build-base-image; then \
	  echo "== image sandpit/sandbox"; $(call DOCKER_BUILD,SandboxDockerfile,sandbox); \
	elif [ "$${CI:-}" = true ]; then \
	  echo "*** FAILED: CI=true and no Docker engine or base image (see above): the docker backend cannot be tested ***" >&2; \
	  exit 1; \
	else \
	  echo "*** no Docker engine here: the docker backend tests will be SKIPPED ***"; \
	fi

.PHONY: docker-test-images

# what each object and test was built from: a changed header rebuilds them
-include $(LIB_OBJS:.o=.d) $(MANAGER_OBJS:.o=.d) $(MANAGER_MODS:.o=.d) $(MONITOR_OBJS:.o=.d) \
  $(MONITOR_MODS:.o=.d) $(CLI_OBJS:.o=.d) $(UNIT_BINS:=.d)
