#!/usr/bin/env bash
# Sets everything up on a fresh Debian 12 machine and runs every test:
# vet and gofmt, the unit and integration tests on the real binaries, and
# each fuzz target for a bounded time, and the benchmark suite at small
# sizes (correctness of every configuration, not speed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
. scripts/env.sh
go mod download
bash scripts/fetch-test-builds.sh
export REDMAGIC_TEST_OTHER_PYTHON="$PWD/testdata/build/python3.11-other/usr/bin/python3.11"
# The annotated CPython 2.7 from ../shared/seed (built once, cached). A
# machine without the seed skips its tests, loudly; a failed build fails.
if [ -f ../shared/seed/cpython27-redmagic3.tar.xz ] || [ -n "${REDMAGIC_SEED:-}" ]; then
  REDMAGIC_TEST_CPYTHON27=$(bash scripts/cpython27.sh)
  export REDMAGIC_TEST_CPYTHON27
else
  echo "test: WARNING: no ../shared/seed: the CPython 2.7 client's tests are skipped" >&2
fi
# The benchmark suite at small sizes first, so that the test runners'
# own summaries close the output.
make bench-quick
make test
