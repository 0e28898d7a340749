# stagefs - one non-recursive Makefile.
#   make            build ./stagefs
#   make run        install deps, build, mount a demo store under demo/, show it working
#   make test       install deps, build (normal + ASan/UBSan), make check, unit + integration tests
#   make check      format check + banned functions + unit tests
#   make bench      benchmarks against the native directory and peers
#   make fuzz       the libFuzzer harnesses (clang), FUZZ_SECONDS (60) each
#   make stress     the model-based stress test, larger (STRESS_PROCS x STRESS_OPS), both backends
#   make install    PREFIX=/usr/local DESTDIR=
# Knobs: V=1 (show commands), SANITIZE=address,undefined, DEVELOPER=1 (default on).

CC      ?= cc
PREFIX  ?= /usr/local
DEVELOPER ?= 1
VERSION := 0.1.0

# pkg-config module:Debian package, for every library the build links
PKG_DEBS := fuse3:libfuse3-dev sqlite3:libsqlite3-dev libcrypto:libssl-dev inih:libinih-dev zlib:zlib1g-dev \
            libcurl:libcurl4-openssl-dev libxml-2.0:libxml2-dev
PKGS    := $(foreach p,$(PKG_DEBS),$(firstword $(subst :, ,$(p))))
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)

CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -I. $(PKG_CFLAGS) -pthread \
           -DSFS_VERSION='"$(VERSION)"' -Wall -Wextra -MMD -MP
ifeq ($(DEVELOPER),1)
CFLAGS  += -Werror -Wmissing-prototypes -Wstrict-prototypes -Wno-unused-parameter
endif
LDLIBS  += $(PKG_LIBS) -pthread -lm

BUILD   := build
# FUZZ=1: clang with libFuzzer's coverage and ASan/UBSan, into build/fuzz
ifeq ($(FUZZ),1)
CC      := clang
BUILD   := build/fuzz
CFLAGS  += -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer \
           -fno-sanitize-recover=all
LDFLAGS += -fsanitize=fuzzer,address,undefined
else ifneq ($(SANITIZE),)
BUILD   := build/$(if $(filter thread,$(SANITIZE)),tsan,san)
CFLAGS  += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SANITIZE)
endif

ifneq ($(V),1)
Q := @
endif

LIB_SRC  := $(wildcard common/*.c backend/*.c index/*.c) $(filter-out fs/main.c,$(wildcard fs/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
LIB      := $(BUILD)/libstagefs.a
MAIN_OBJ := $(BUILD)/fs/main.o
BIN      := $(BUILD)/stagefs
UNIT_SRC := $(wildcard tests/unit/test_*.c)
FAKE_SRC := $(wildcard tests/fakes/*.c)
FAKE_OBJ := $(FAKE_SRC:%.c=$(BUILD)/%.o)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/tests/%)
FUZZ_SECONDS ?= 60

.PHONY: all run test check bench install clean deps deps-check unit integration format-check \
        banned san tsan fuzz fuzz-build stress

all: stagefs

stagefs: $(BIN)
	$(Q)cp $(BIN) $@.tmp && mv -f $@.tmp $@

# Before compiling anything: are the libraries there?  (The variables above were
# read when make started, so `make run`/`test`/`bench` install first and build in
# a second make; a plain `make` with packages missing says which, instead of
# failing in the compiler.)
deps-check:
	@missing=""; \
	command -v $(CC) >/dev/null 2>&1 || missing="$$missing build-essential"; \
	if ! command -v pkg-config >/dev/null 2>&1; then missing="$$missing pkg-config"; fi; \
	for pd in $(PKG_DEBS); do \
	    command -v pkg-config >/dev/null 2>&1 && pkg-config --exists $${pd%%:*} 2>/dev/null || \
	        missing="$$missing $${pd#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	    echo "stagefs: cannot build: missing Debian packages:$$missing" >&2; \
	    echo "  install them with 'make deps' (or: sudo apt-get install$$missing)," >&2; \
	    echo "  or run 'make run' / 'make test', which install what is missing first" >&2; \
	    exit 1; \
	fi

$(LIB_OBJ) $(MAIN_OBJ) $(FAKE_OBJ) $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/unit/%.o) \
    $(FUZZ_SRC:%.c=$(BUILD)/%.o): | deps-check

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BIN): $(MAIN_OBJ) $(LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $(MAIN_OBJ) $(LIB) $(LDLIBS)

# the daemon with the fault-injecting backend linked in (tests/fakes/faulty_backend.c)
$(BUILD)/tests/stagefs-faulty: $(MAIN_OBJ) $(FAKE_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $(MAIN_OBJ) $(FAKE_OBJ) $(LIB) $(LDLIBS)

$(BUILD)/tests/test_%: $(BUILD)/tests/unit/test_%.o $(FAKE_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(FAKE_OBJ) $(LIB) $(LDLIBS) $(CMOCKA_LIBS)

# a libFuzzer harness (FUZZ=1 only: libFuzzer brings main)
$(BUILD)/tests/fuzz_%: $(BUILD)/tests/fuzz/fuzz_%.o $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

# the dispatcher's test replaces libfuse's request and reply calls
LL_WRAPS := fuse_req_userdata fuse_req_ctx fuse_reply_err fuse_reply_entry fuse_reply_create \
            fuse_reply_open fuse_reply_attr fuse_reply_xattr fuse_reply_buf
$(BUILD)/tests/test_lowlevel: LDFLAGS += $(foreach f,$(LL_WRAPS),-Wl,--wrap=$(f))

deps:
	$(Q)bash scripts/install-deps test

unit: $(UNIT_BIN)
	$(Q)bash tests/run-unit $(UNIT_BIN)

# The sanitizer build lives in build/san and runs the unit tests and the integration tests
san:
	$(Q)$(MAKE) --no-print-directory SANITIZE=address,undefined $(BUILD)/san/stagefs \
	    $(BUILD)/san/tests/stagefs-faulty $(UNIT_SRC:tests/unit/%.c=build/san/tests/%)

# install first, then build in a new make that sees the installed libraries
# the thread sanitizer build of the tests that race threads on purpose
TSAN_UNITS := test_lowlevel test_hasher
tsan:
	$(Q)$(MAKE) --no-print-directory SANITIZE=thread $(TSAN_UNITS:%=build/tsan/tests/%)

fuzz-build:
	$(Q)$(MAKE) --no-print-directory FUZZ=1 $(FUZZ_BIN)

# each harness for FUZZ_SECONDS on its seeds and regressions (tests/run-fuzz)
fuzz: fuzz-build
	$(Q)bash tests/run-fuzz $(FUZZ_SECONDS)

# tests/integration/t0670-model-stress.sh, larger than in make test, on both backends
STRESS_PROCS ?= 4
STRESS_OPS ?= 3000
stress: all
	$(Q)for b in file s3; do STAGEFS_BACKEND=$$b STRESS_PROCS=$(STRESS_PROCS) \
	    STRESS_OPS=$(STRESS_OPS) STAGEFS_TEST_TIMEOUT=3600 \
	    bash tests/run-integration tests/integration/t0670-model-stress.sh || exit 1; done

test: deps
	$(Q)$(MAKE) --no-print-directory all $(UNIT_BIN) $(BUILD)/tests/stagefs-faulty
	$(Q)$(MAKE) --no-print-directory san tsan fuzz-build
	$(Q)bash tests/run-all

check: format-check banned unit

FMT_SRC := $(wildcard common/*.[ch] backend/*.[ch] index/*.[ch] fs/*.[ch] tests/unit/*.[ch] \
             tests/fakes/*.c tests/fuzz/*.c)

format-check:
	$(Q)clang-format --dry-run --Werror $(FMT_SRC) 2>&1 | head -50; \
	    clang-format --dry-run --Werror $(FMT_SRC) >/dev/null 2>&1 \
	    && echo "format: ok" || { echo "format: run clang-format -i"; exit 1; }

banned:
	$(Q)if grep -nE '\b(sprintf|strcpy|strcat|strtok|atoi|gets)\s*\(' \
	    $(wildcard common/*.[ch] backend/*.[ch] index/*.[ch] fs/*.[ch]); then \
	    echo "banned functions used (see STYLE.md)"; exit 1; else echo "banned: ok"; fi

run:
	$(Q)bash scripts/install-deps run
	$(Q)$(MAKE) --no-print-directory all
	$(Q)bash scripts/demo

bench:
	$(Q)bash scripts/install-deps bench
	$(Q)$(MAKE) --no-print-directory all
	$(Q)bash scripts/bench

# the Python helper goes where Debian's python3 looks: /usr/lib/python3/dist-packages for
# PREFIX=/usr, else PREFIX/lib/python3.X/dist-packages (/usr/local's is on its path)
PYDIR ?= $(if $(filter /usr,$(PREFIX)),/usr/lib/python3/dist-packages,$(PREFIX)/lib/$(shell \
	/usr/bin/python3 -c 'import sys; print("python3.%d" % sys.version_info[1])' 2>/dev/null)/dist-packages)
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/doc/stagefs $(DESTDIR)$(PYDIR) \
	    $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 0755 stagefs $(DESTDIR)$(PREFIX)/bin/stagefs
	install -m 0644 stagefs.1 $(DESTDIR)$(PREFIX)/share/man/man1/stagefs.1
	install -m 0644 mount.conf.example README.md $(DESTDIR)$(PREFIX)/share/doc/stagefs/
	install -m 0644 scripts/stagefs.py $(DESTDIR)$(PYDIR)/stagefs.py

clean:
	rm -rf build stagefs

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
