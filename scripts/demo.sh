#!/usr/bin/env bash
# Sets everything up on a fresh Debian 12 machine and runs the main job on
# the bundled default: builds the test interpreters and shows the control
# flow recovered from them and from the real interpreters.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
. scripts/env.sh
go mod download
make demo
