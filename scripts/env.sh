# Sourced by the project's scripts: puts the Go toolchain on PATH.
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH="/usr/local/go/bin:$PATH"
fi
if ! command -v go >/dev/null 2>&1; then
  echo "redmagic-patch needs Go >= 1.26 (expected at /usr/local/go/bin/go)" >&2
  exit 1
fi
export PATH="$(go env GOPATH)/bin:$PATH"
