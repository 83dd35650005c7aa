#!/usr/bin/env bash
# Builds the original redmagic's own client, the annotated CPython 2.7 fork
# in ../shared/seed (see its README), with this project's redmagic.h, into a
# cache outside the repository, and prints the install prefix. The build is
# keyed by the seed archive, the header's code (comments left out) and the
# recipe version below, kept in the prefix's build-key file: an unchanged
# input reuses the cached build (about 7 minutes on 2 cores otherwise).
# The prefix itself never changes (it is compiled in: a copy of the binary
# finds its library through it). Change recipe when the steps change.
#
#   scripts/cpython27.sh            build if needed, print the prefix
#   scripts/cpython27.sh --prefix   print the prefix it would use; no build
#
# Environment: REDMAGIC_SEED (default ../shared/seed relative to the
# repository), REDMAGIC_CACHE (default $XDG_CACHE_HOME/redmagic-patch or
# ~/.cache/redmagic-patch), JOBS (make -j, default 2).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
seed=${REDMAGIC_SEED:-$repo/../shared/seed}
tarball=$seed/cpython27-redmagic3.tar.xz
header=$repo/runtime-stub/include/redmagic.h
cache=${REDMAGIC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/redmagic-patch}

if [ ! -f "$tarball" ]; then
  echo "cpython27: no seed archive at $tarball (set REDMAGIC_SEED)" >&2
  exit 1
fi
recipe=1
prefix=$cache/cpython27
if [ "${1:-}" = --prefix ]; then
  echo "$prefix"
  exit 0
fi
key=$( (cat "$tarball"; gcc -fpreprocessed -dD -E -P "$header" 2>/dev/null; echo "recipe $recipe") | sha256sum | cut -c1-16)
if [ -x "$prefix/bin/python2.7" ] && [ "$(cat "$prefix/build-key" 2>/dev/null)" = "$key" ]; then
  echo "$prefix"
  exit 0
fi

mkdir -p "$cache"
work=$(mktemp -d "$cache/.build-XXXXXX")
trap 'rm -rf "$work"' EXIT
log=$work/build.log
echo "cpython27: building into $prefix (log: $log)" >&2
tar -xJf "$tarball" -C "$work"
src=$work/cpython27-redmagic3
# 1. The project's header where the sources' "../redmagic.h" points.
cp "$header" "$src/redmagic.h"
# 2. One translation unit emits the API's no-op definitions, before any
#    other header (Python.h includes it through object.h).
sed -i '1i #define REDMAGIC_DEFAULTS' "$src/Python/pythonrun.c"
# 3. The author linked his runtime library; the no-op definitions replace it.
sed -i 's/^LIBS=\t*@LIBS@ .*libredmagic\.so\.1\.0\.0$/LIBS=\t\t@LIBS@/' "$src/Makefile.pre.in"
if grep -q libredmagic "$src/Makefile.pre.in"; then
  echo "cpython27: Makefile.pre.in still links libredmagic" >&2
  exit 1
fi
# 4. Configure, build and install into a staging prefix; the final prefix
#    appears only once complete. The prefix is compiled in (sys.prefix),
#    so the staging install goes through DESTDIR.
(
  cd "$src"
  ./configure --prefix="$prefix" --without-ensurepip \
    OPT="-DNDEBUG -g -fwrapv -O2 -Wall -Wstrict-prototypes"
  make -j"${JOBS:-2}"
  make install DESTDIR="$work/stage"
) >"$log" 2>&1 || { tail -n 30 "$log" >&2; trap - EXIT; echo "cpython27: build failed, see $log" >&2; exit 1; }
echo "$key" > "$work/stage$prefix/build-key"
rm -rf "$prefix"
mv "$work/stage$prefix" "$prefix"
echo "$prefix"
