#!/usr/bin/env bash
# Sets up a clone to run and test memsweep (README "Set up and run"; .ci/run calls it too):
# the system packages that are missing, where it can install them (apt-get as root or with
# passwordless sudo), then the pinned Node tools (npm ci) and the package with its test extras
# (pip install -e '.[test]'). Safe to rerun: it installs only what is missing, and a second run
# takes a few seconds (pip's "already satisfied" check is most of it).
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1

say() { printf 'memsweep setup: %s\n' "$*"; }

# Debian package names. The tests need Node.js 20+ (osls, dynalite), Debian's Chromium at
# /usr/bin/chromium (the report's tests drive it with Playwright) and tmux (the terminal
# tests): the set-up fails while one is missing. wrk and nginx are only for the benchmarks
# (`python -m bench`: the load client and the fast endpoint; CI runs them): installed like the
# others, but their absence is reported without failing the set-up.
TEST_NEEDS="nodejs npm chromium tmux"
BENCH_NEEDS="wrk nginx"

node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

# MEMSWEEP_SETUP_ASSUME_MISSING="chromium ..." makes those packages count as missing (for
# tests/test_setup_script.py).
is_missing() {
  case " ${MEMSWEEP_SETUP_ASSUME_MISSING:-} " in *" $1 "*) return 0 ;; esac
  case $1 in
    nodejs) ! command -v node >/dev/null || [ "$(node_major)" -lt 20 ] ;;
    chromium) ! [ -x /usr/bin/chromium ] ;;
    *) ! command -v "$1" >/dev/null ;;
  esac
}

missing_of() {
  local package found=""
  for package in "$@"; do
    if is_missing "$package"; then found="$found $package"; fi
  done
  echo "${found# }"
}

# shellcheck disable=SC2086  # package lists are words
missing=$(missing_of $TEST_NEEDS $BENCH_NEEDS)
cannot=""
if [ -n "$missing" ]; then
  if ! command -v apt-get >/dev/null; then
    cannot="no apt-get here: use your package manager's equivalents"
  elif [ "$(id -u)" -eq 0 ]; then
    as_root=""
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    as_root="sudo"
  else
    cannot="not root and no passwordless sudo"
  fi
  if [ -z "$cannot" ]; then
    say "installing $missing (apt-get)"
    # shellcheck disable=SC2086
    if ! { $as_root apt-get update -qq &&
      $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing; }; then
      cannot="apt-get failed: see its messages above"
    fi
    # shellcheck disable=SC2086
    missing=$(missing_of $TEST_NEEDS $BENCH_NEEDS)
    [ -n "$cannot" ] || cannot="apt-get installed them, yet they are still missing"
  fi
fi

# node_modules is what package-lock.json pins when npm's record of the tree it installed (its
# hidden lockfile) has every locked entry, as locked and on disk, except the optional packages
# for other platforms, and nothing else.
node_modules_current() {
  [ -f node_modules/.package-lock.json ] || return 1
  node -e '
    const fs = require("fs");
    const want = JSON.parse(fs.readFileSync("package-lock.json", "utf8")).packages;
    const have = JSON.parse(fs.readFileSync("node_modules/.package-lock.json", "utf8")).packages;
    const same = (p) => JSON.stringify(want[p]) === JSON.stringify(have[p]) && fs.existsSync(p);
    const locked = (p) => p === "" || (p in have ? same(p) : want[p].optional);
    const current = Object.keys(want).every(locked) && Object.keys(have).every((p) => p in want);
    process.exit(current ? 0 : 1);'
}

if is_missing nodejs || is_missing npm; then
  : # npm ci needs them: reported below
elif node_modules_current; then
  say "node_modules is up to date with package-lock.json (npm ci skipped)"
else
  say "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

python=$(command -v python || command -v python3) || { say "needs Python 3.11+ on PATH"; exit 1; }
say "pip install -e '.[test]'"
"$python" -m pip install -q -e '.[test]'

if [ -z "$missing" ]; then
  say "ready (Node.js $(node --version), /usr/bin/chromium, tmux, wrk, nginx)"
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo "; fi
note=""
if command -v node >/dev/null && [ "$(node_major)" -lt 20 ]; then
  note="; Node.js 20+ is needed, found $(node --version)"
  note="$note: if apt has none, install it from NodeSource or nvm"
fi
# shellcheck disable=SC2086
test_missing=$(missing_of $TEST_NEEDS)
if [ -z "$test_missing" ]; then note="$note; the tests do not need them, python -m bench does"; fi
# One line: what is missing, and the command that installs it.
install="${sudo}apt-get update && ${sudo}apt-get install -y $missing"
say "missing $missing; run: $install ($cannot$note)"
if [ -n "$test_missing" ]; then exit 1; fi
