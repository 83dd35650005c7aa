#!/usr/bin/env bash
# Builds the test interpreters (testdata/vms -> testdata/build): switchvm,
# gotovm and annotvm, each with symbols and as a .stripped copy. Works from
# any directory; extra arguments go to make (e.g. clean).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exec make -C "$root/testdata/vms" "$@"
