#!/usr/bin/env bash
# Fetches another Debian build of python3.11 (a different package revision
# than the installed one, so every address differs) and unpacks it under
# testdata/build/python3.11-other/. Tests patch it to show that site
# discovery uses no hard-coded addresses. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=testdata/build/python3.11-other
[ -x "$dest/usr/bin/python3.11" ] && exit 0
installed=$(dpkg-query -W -f='${Version}' python3.11-minimal 2>/dev/null || true)
# The archive serves several revisions; take one that is not installed.
other=$(apt-cache madison python3.11-minimal | awk '{print $3}' | grep -vxF "$installed" | head -n 1)
if [ -z "$other" ]; then
  echo "fetch-test-builds: no other python3.11-minimal revision than $installed is served" >&2
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download -q "python3.11-minimal=$other" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
deb=$(ls "$tmp"/python3.11-minimal_*.deb)
rm -rf "$dest" && mkdir -p "$dest"
dpkg -x "$deb" "$dest"
echo "$other" > "$dest/VERSION"
echo "fetch-test-builds: python3.11-minimal $other in $dest (installed: $installed)"
