#!/usr/bin/env bash
# The broad CPython regression run: every module of Debian's python3.11
# test suite (libpython3.11-testsuite) except those listed in EXCLUDE
# below, under `python -m test -j2 --timeout 600`.
#
#   cpython-broad-tests.sh list PYTHON                 the selected module names
#   cpython-broad-tests.sh run PYTHON OUTDIR [LABEL]   one interpreter; writes
#       OUTDIR/LABEL.log (regrtest's output) and OUTDIR/LABEL.results
#       ("test_x status" per module, sorted)
#   cpython-broad-tests.sh compare ORIGINAL PATCHED OUTDIR
#       both, one after the other; exits 1 when any module's status differs
#
# Statuses: passed, failed, env-changed, skipped, resource-denied, crashed,
# timeout, no-tests, or other:<regrtest's words>. The run itself fails
# (exit 2) when regrtest does not print its final "Tests result:" line.
# REDMAGIC_* variables in the environment reach the patched interpreter and
# its regrtest workers: REDMAGIC_THRESHOLD=50 makes far more loops trace.
set -euo pipefail

# Modules left out, and why. Everything else that --list-tests names runs.
EXCLUDE=(
  # Network. These need the 'network' resource (hosts beyond this
  # machine) and are skipped without it; listed so that a -u all cannot
  # reach out:
  test_smtpnet test_urllib2net test_urllibnet test_xmlrpc_net test_socketserver
  # and these are client/server tests on the loopback with wall-clock
  # timeouts (test_socket alone outruns the 600 s timeout here):
  test_socket test_ssl test_timeout test_nntplib test_imaplib test_poplib
  test_ftplib test_asyncore test_asynchat test_smtpd test_smtplib
  test_telnetlib test_httpservers test_docxmlrpc test_urllib2_localnet
  test_xmlrpc
  # Multiprocessing-heavy: minutes each and timing-sensitive; fork and a
  # fork Pool are covered by testdata/python (TestPythonPrograms).
  test_multiprocessing_fork test_multiprocessing_forkserver
  test_multiprocessing_spawn test_multiprocessing_main_handling
  test_concurrent_futures
  # asyncio: a package of about 40 modules with event-loop threads and
  # wall-clock timeouts.
  test_asyncio
  # Fail under the original python3.11 on this machine: stdout is not a
  # terminal (test_cmd_line), the stdlib is read-only and byte-compiled by
  # Debian (test_compileall), no C++ compiler setup or bundled wheels
  # (test_cppext, test_ensurepip), no Tk (test_idle).
  test_cmd_line test_compileall test_cppext test_ensurepip test_idle
  # Copies the interpreter binary alone into each venv: a patched binary
  # finds its runtime library beside itself ($ORIGIN), so the copy cannot
  # start (exit 127). Not a JIT matter; the other venv users pass.
  test_venv
  # Other platforms only (Windows, BSD, Solaris): always skipped on Linux.
  test_winreg test_winsound test_winconsoleio test_msilib test_launcher
  test_startfile test_kqueue test_devpoll
)

usage() {
  # The comment block at the top of this file.
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
  exit 2
}

# select_tests PYTHON: --list-tests minus EXCLUDE, one per line.
select_tests() {
  local py all
  py=$(readlink -f "$1")
  all=$(cd / && "$py" -m test --list-tests) || {
    echo "cpython-broad-tests: $py -m test --list-tests failed" >&2
    exit 2
  }
  printf '%s\n' "$all" | grep -E '^test_' | grep -vxF -f <(printf '%s\n' "${EXCLUDE[@]}")
}

# parse_results LOG: "test_x status" for each module regrtest reported.
# Progress lines look like
#   0:01:25 load avg: 2.26 [182/426/5] test_idle failed (uncaught exception)
#   0:03:09 load avg: 2.92 [283/426] test_re passed (32.5 sec) -- running: ...
parse_results() {
  awk '
    /^[0-9]+:[0-9][0-9]:[0-9][0-9] load avg: [0-9.]+ \[ *[0-9]+\/[0-9]+(\/[0-9]+)?\] test_/ {
      sub(/^.*\] /, "")
      name = $1
      st = substr($0, length(name) + 2)
      sub(/ -- running:.*$/, "", st)
      if (st ~ /^passed/) s = "passed"
      else if (st ~ /^skipped \(resource denied\)/) s = "resource-denied"
      else if (st ~ /^skipped/) s = "skipped"
      else if (st ~ /^failed \(env changed\)/) s = "env-changed"
      else if (st ~ /timed out|timeout/) s = "timeout"
      else if (st ~ /^failed/) s = "failed"
      else if (st ~ /^crashed/) s = "crashed"
      else if (st ~ /^run no tests|^ran no tests/) s = "no-tests"
      else { s = st; gsub(/ /, "_", s); s = "other:" s }
      print name, s
    }' "$1" | sort -u
}

# run_one PYTHON OUTDIR LABEL
run_one() {
  local py=$1 out=$2 label=$3 work start end
  mkdir -p "$out"
  py=$(readlink -f "$py")
  local tests list
  list=$(select_tests "$py")
  mapfile -t tests <<<"$list"
  work=$(mktemp -d)
  echo "cpython-broad-tests: $label: ${#tests[@]} modules under $py" >&2
  start=$(date +%s)
  # regrtest's exit status says whether tests failed; the comparison
  # decides what matters, so it is not an error here.
  (cd "$work" && "$py" -m test -j2 --timeout 600 "${tests[@]}") >"$out/$label.log" 2>&1 || true
  end=$(date +%s)
  rm -rf "$work"
  if ! grep -q '^Tests result:' "$out/$label.log"; then
    echo "cpython-broad-tests: $label: regrtest did not finish, see $out/$label.log" >&2
    exit 2
  fi
  parse_results "$out/$label.log" >"$out/$label.results"
  local n
  n=$(wc -l <"$out/$label.results")
  if [ "$n" -ne "${#tests[@]}" ]; then
    echo "cpython-broad-tests: $label: $n results for ${#tests[@]} modules, see $out/$label.log" >&2
    exit 2
  fi
  echo "$((end - start))" >"$out/$label.seconds"
  printf 'cpython-broad-tests: %s: %d s, %s; %s\n' "$label" "$((end - start))" \
    "$(awk '{print $2}' "$out/$label.results" | sort | uniq -c | awk '{printf "%s%s %s", sep, $1, $2; sep=", "}')" \
    "$(grep '^Tests result:' "$out/$label.log" | tail -1)" >&2
}

cmd=${1:-}
case "$cmd" in
  list)
    [ $# -eq 2 ] || usage
    select_tests "$2"
    ;;
  run)
    [ $# -ge 3 ] && [ $# -le 4 ] || usage
    run_one "$2" "$3" "${4:-$(basename "$2")}"
    ;;
  compare)
    [ $# -eq 4 ] || usage
    orig=$2 patched=$3 out=$4
    want=$(select_tests "$orig")
    got=$(select_tests "$patched")
    if [ "$want" != "$got" ]; then
      echo "cpython-broad-tests: the two interpreters list different tests" >&2
      exit 2
    fi
    run_one "$orig" "$out" original
    run_one "$patched" "$out" patched
    if diff -u "$out/original.results" "$out/patched.results" >"$out/diff.txt"; then
      echo "cpython-broad-tests: same results for all $(wc -l <"$out/original.results") modules" >&2
    else
      echo "cpython-broad-tests: results differ (original -, patched +):" >&2
      grep -E '^[-+]test_' "$out/diff.txt" >&2
      exit 1
    fi
    ;;
  *)
    usage
    ;;
esac
