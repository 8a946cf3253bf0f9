# avfs: every target installs what it needs (venv, package, Debian packages) on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stamp-install
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# libseccomp2: the sandbox's seccomp filter (avfs_git/proxy/seccomp.py); without it no confined command runs
DEBS := git fuse3 rsync openssh-server bubblewrap libseccomp2 btrfs-progs perl-base
# tools the tests drive, installed from Debian only when the command is missing (a node
# installed another way must not be replaced): command:package
TOOLS := gcc:gcc make:make npm:npm tar:tar
PYTEST_ARGS ?=
# test processes: the suite mostly waits (mounts, git, fsync, daemons' answers): two a CPU,
# at most 4 (each test mounts, and each process holds its own module fixtures); on two
# cores four took 0.56-0.79x the time of two (docs/testing.md). One file's tests stay in one
# process (--dist loadfile). TEST_JOBS=0: one process.
TEST_JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); n=$$((n * 2)); [ $$n -gt 4 ] && n=4; echo $$n)
# the run's temporary files (pytest's --basetemp): a directory of this checkout's own, the
# last run's removed before pytest starts (tests/basetemp.py), emptied as --basetemp is:
# pytest's default (/tmp/pytest-of-USER, shared) removes all but three earlier runs (~6 GB
# each) as the session ends, minutes counted in the run's own time (docs/testing.md); the
# name no longer than pytest's own (/tmp/pytest-of-root/pytest-N): paths in it have limits
TEST_TMP ?= $(or $(TMPDIR),/tmp)/avfs-test-$(shell id -u)-$(shell printf '%s' '$(CURDIR)' | cksum | cut -d' ' -f1)

.PHONY: install sysdeps compile test lint typecheck check bench demo clean

sysdeps:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	for t in $(TOOLS); do command -v $${t%%:*} >/dev/null 2>&1 || missing="$$missing $${t#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

$(STAMP): pyproject.toml | sysdeps
	@$(PY) -c 'import venv' 2>/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-venv; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]' --config-settings editable_mode=compat
	touch $(STAMP)

# Byte-compile again (install does it too): with PYTHONDONTWRITEBYTECODE set (as on some
# machines) every `avfs` start would recompile the modules edited since (~40 ms).
compile: install
	@$(BIN)/python -m compileall -q avfs_git
	@$(BIN)/python -m avfs_git.core.records

# The console script: pip's, replaced by avfs's launcher: a native program where a C compiler
# is there (a call the resident server answers starts no Python; avfs_git/cli/launcher.c),
# handing every other call to Python with -S (no site-packages scan and .pth files on the
# calls that do not need them; avfs_git/cli/launcher.py), and the
# bytecode compiled (with PYTHONDONTWRITEBYTECODE set, as on some machines, every call
# would otherwise recompile what it imports), and so the methods of avfs's dataclasses
# (avfs_git/core/records.py: ~0.7 ms of CPU a class in every process otherwise).
install: sysdeps $(STAMP)
	@$(BIN)/python -m avfs_git.cli.launcher $(BIN)/avfs
	@$(BIN)/python -m compileall -q avfs_git
	@$(BIN)/python -m avfs_git.core.records

# pytest exit code 5 means "no tests ran": that is a failure here, never a pass.
test: install
	@$(BIN)/python -m tests.basetemp '$(TEST_TMP)'
	@$(BIN)/python -m pytest -n $(TEST_JOBS) --dist loadfile --basetemp '$(TEST_TMP)' $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest ran no tests" >&2; exit 1; fi; exit $$rc

lint: install
	$(BIN)/ruff check avfs_git tests bench
	$(BIN)/ruff format --check avfs_git tests bench

typecheck: install
	$(BIN)/mypy

check: lint typecheck test

bench: compile
	$(BIN)/python -m bench $(BENCH_ARGS)

demo: compile
	AVFS_BIN=$(abspath $(BIN))/avfs bash docs/demo.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache bench/.work
