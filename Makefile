# redmagic-patch build. `bash scripts/demo.sh` and `bash scripts/test.sh`
# are the entry points for a fresh machine; they install what is missing
# and then use the targets below.

GO      ?= go
BIN     := bin/redmagic-patch
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -X main.version=$(VERSION)
FUZZTIME ?= 15s

.PHONY: all build runtime testdata demo test unit vet fuzz clean bench bench-quick bench-cold cpython-broad cpython27 cpython27-tests cpython27-bench

all: build

# The tool embeds the runtime libraries it installs beside patched files:
# libredmagic.so (C, loaded by the patched file) and libredmagic-jit.so
# (Go, loaded by the runtime at the first hot loop).
runtime:
	$(MAKE) -C runtime-stub
	cp runtime-stub/build/libredmagic.so runtime-stub/build/libredmagic-jit.so cmd/redmagic-patch/runtime/

build: runtime
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/redmagic-patch

testdata:
	$(MAKE) -C testdata/vms
	$(MAKE) -C testdata/stress
	$(MAKE) -C testdata/annotcorpus

demo: build testdata
	bash scripts/demo-run.sh

vet:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

unit: build testdata
	$(GO) test -count=1 -timeout 25m ./...

# Each fuzz target runs for a bounded time on top of its seed corpus.
fuzz:
	bash scripts/fuzz.sh $(FUZZTIME)

test: vet unit fuzz

# The benchmark harness (scripts/bench): every suite program under the
# original, patched (runtime off/on) and peer interpreters, interleaved.
# Reports land in out/bench/. BENCHFLAGS passes options, e.g.
# BENCHFLAGS="--instructions" or BENCHFLAGS="--only lua/ --runs 9".
bench: build testdata
	$(GO) run ./scripts/bench --out out/bench $(BENCHFLAGS)

# Start-up, peak RSS and threads of a process that never runs a hot loop,
# original against patched: out/bench/cold.{md,json}.
bench-cold: build
	$(GO) run ./scripts/bench --cold --out out/bench $(BENCHFLAGS)

# Small sizes, one run each: checks every configuration's answers (never speed).
bench-quick: build testdata
	$(GO) run ./scripts/bench --quick --out out/bench-quick $(BENCHFLAGS)

# The broad CPython regression run: about 380 modules of Debian's test
# suite under the original python3.11 and under a patched copy, one after
# the other; any module whose status differs fails the target. Logs and
# per-module results land in out/cpython-broad/. The original runs as a
# fresh copy, written like the patched file: how a file's pages came into
# the page cache moves python3.11's speed by up to 20% (scripts/bench).
cpython-broad: build
	mkdir -p out/cpython-broad/original
	./$(BIN) /usr/bin/python3.11 -o out/cpython-broad/python3.11
	cp /usr/bin/python3.11 out/cpython-broad/original/python3.11
	bash scripts/cpython-broad-tests.sh compare out/cpython-broad/original/python3.11 out/cpython-broad/python3.11 out/cpython-broad

# The original redmagic's own client: the annotated CPython 2.7 of
# ../shared/seed, built once into a cache outside the repository
# (scripts/cpython27.sh prints its prefix). cpython27-tests runs its
# regression modules under it and under a patched copy (default threshold,
# threshold 1, disabled): logs and per-module results in out/cpython27/.
# cpython27-bench times testdata/cpython27 unpatched, JIT off and JIT on.
CPY27 = $$(bash scripts/cpython27.sh)/bin/python2.7
cpython27:
	bash scripts/cpython27.sh

out/cpython27/python2.7: build cpython27
	mkdir -p out/cpython27
	./$(BIN) $(CPY27) -o out/cpython27/python2.7 --profile annotated

cpython27-tests: out/cpython27/python2.7
	bash scripts/cpython27-tests.sh compare $(CPY27) out/cpython27/python2.7 out/cpython27

cpython27-bench: out/cpython27/python2.7
	python3 scripts/cpython27-bench.py $(CPY27) out/cpython27/python2.7 $(BENCHFLAGS)

clean:
	rm -rf bin testdata/build runtime-stub/build cmd/redmagic-patch/runtime/libredmagic*.so
