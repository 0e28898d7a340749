# stagefs - one non-recursive Makefile.
#   make            build ./stagefs
#   make run        install deps, build, mount a demo store under demo/, show it working
#   make test       install deps, build (normal + ASan/UBSan), run unit + integration tests
#   make check      format check + banned functions + unit tests
#   make bench      benchmarks against the native directory and peers
#   make install    PREFIX=/usr/local DESTDIR=
# Knobs: V=1 (show commands), SANITIZE=address,undefined, DEVELOPER=1 (default on).

CC      ?= cc
PREFIX  ?= /usr/local
DEVELOPER ?= 1
VERSION := 0.1.0

PKGS    := fuse3 sqlite3 libcrypto inih libcurl libxml-2.0
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
ifneq ($(SANITIZE),)
BUILD   := build/san
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

.PHONY: all run test check bench install clean deps unit integration format-check banned san

all: stagefs

stagefs: $(BIN)
	$(Q)cp $(BIN) $@.tmp && mv -f $@.tmp $@

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BIN): $(MAIN_OBJ) $(LIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $(MAIN_OBJ) $(LIB) $(LDLIBS)

$(BUILD)/tests/test_%: $(BUILD)/tests/unit/test_%.o $(FAKE_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(FAKE_OBJ) $(LIB) $(LDLIBS) $(CMOCKA_LIBS)

deps:
	$(Q)bash scripts/install-deps

unit: $(UNIT_BIN)
	$(Q)bash tests/run-unit $(UNIT_BIN)

# The sanitizer build lives in build/san and runs the unit tests and the integration tests
san:
	$(Q)$(MAKE) --no-print-directory SANITIZE=address,undefined $(BUILD)/san/stagefs \
	    $(UNIT_SRC:tests/unit/%.c=build/san/tests/%)

test: deps
	$(Q)$(MAKE) --no-print-directory all $(UNIT_BIN)
	$(Q)$(MAKE) --no-print-directory san
	$(Q)bash tests/run-all

check: format-check banned unit

FMT_SRC := $(wildcard common/*.[ch] backend/*.[ch] index/*.[ch] fs/*.[ch] tests/unit/*.c)

format-check:
	$(Q)clang-format --dry-run --Werror $(FMT_SRC) 2>&1 | head -50; \
	    clang-format --dry-run --Werror $(FMT_SRC) >/dev/null 2>&1 \
	    && echo "format: ok" || { echo "format: run clang-format -i"; exit 1; }

banned:
	$(Q)if grep -nE '\b(sprintf|strcpy|strcat|strtok|atoi|gets)\s*\(' \
	    $(wildcard common/*.[ch] backend/*.[ch] index/*.[ch] fs/*.[ch]); then \
	    echo "banned functions used (see STYLE.md)"; exit 1; else echo "banned: ok"; fi

run: deps all
	$(Q)bash scripts/demo

bench: deps all
	$(Q)bash scripts/bench

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/doc/stagefs
	install -m 0755 stagefs $(DESTDIR)$(PREFIX)/bin/stagefs
	install -m 0644 mount.conf.example README.md $(DESTDIR)$(PREFIX)/share/doc/stagefs/

clean:
	rm -rf build stagefs

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
