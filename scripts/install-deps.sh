#!/usr/bin/env bash
# Installs every system package the project needs on Debian 12. Idempotent:
# packages already present are left alone, and apt-get update runs first.
set -euo pipefail

packages=(
  build-essential   # gcc -O2 builds the testdata interpreters
  clang             # builds part of the annotated corpus (testdata/annotcorpus): interpreters as clang compiles them
  binutils          # objdump/as/readelf: reference oracles in tests
  make
  graphviz          # renders `cfg --format dot` in the demo and validates DOT in tests
  lua5.4            # a real interpreter to patch
  python3.11        # a real interpreter to patch
  libpython3.11-testsuite  # the CPython regression tests run under the patched python3.11
  python3.11-dbg    # python3.11d and detached DWARF with .symtab for CFG recall tests
  valgrind          # instruction counts for the benchmark harness
  luajit            # peer interpreter the benchmark harness compares Lua against
)

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: must run as root (apt-get)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
echo "install-deps: system packages ready"
