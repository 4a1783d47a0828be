#!/usr/bin/env bash
# Fuzzing with cargo-fuzz (libFuzzer) of the parsers that meet untrusted input: the config file
# and its validation, the manifest, the sidecar, backup names, the dump observer (COPY rows,
# trailer), the custom-archive reader (pg_dump -Fc as it streams by), the directory-format tar
# reader (pg_dump -Fd), the Redis snapshot (RDB) reader, the RESP reply and command readers and the restore's
# privilege filter. The corpus (fuzz/corpus/<target>) is committed;
# a crash found is a regression test: copy its input into fuzz/regressions/<target>/, which
# every run (and CI) replays.
#
#   scripts/fuzz.sh                 # every target for FUZZ_SECONDS (default 600) each, 2 at a time
#   scripts/fuzz.sh --ci            # CI: replay corpus and regressions, then 15 s per target
#   scripts/fuzz.sh privilege_filter   # one target
#
# cargo-fuzz needs nightly features; on the stable toolchain RUSTC_BOOTSTRAP=1 enables them.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
ci=0
if [ "${1:-}" = "--ci" ]; then ci=1; shift; fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config manifest sidecar backup_name dump_observer archive_observer directory_observer rdb_observer redis_reply privilege_filter)
secs=${FUZZ_SECONDS:-600}
[ $ci = 1 ] && secs=${FUZZ_SECONDS:-15}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --version "^0.13" -q
export RUSTC_BOOTSTRAP=1
cd fuzz
cargo fuzz build -O
mkdir -p "$root/fuzz/logs"
run() {
  local t=$1
  mkdir -p "corpus/$t" "regressions/$t"
  # Replay the regressions first: a crash fixed once must stay fixed.
  if [ -n "$(ls -A "regressions/$t" 2>/dev/null)" ]; then
    cargo fuzz run -O "$t" "regressions/$t" -- -runs=0 >"$root/fuzz/logs/$t.replay.log" 2>&1 \
      || { echo "fuzz: $t: a regression input fails again:"; tail -n 30 "$root/fuzz/logs/$t.replay.log"; return 1; }
  fi
  cargo fuzz run -O "$t" "corpus/$t" -- -max_total_time="$secs" -max_len=65536 -timeout=10 \
    >"$root/fuzz/logs/$t.log" 2>&1 || { echo "fuzz: $t found a crash:"; tail -n 40 "$root/fuzz/logs/$t.log"; return 1; }
  local execs
  execs=$(grep -oE '^#[0-9]+' "$root/fuzz/logs/$t.log" | tail -n1 | tr -d '#')
  printf 'fuzz: %-18s %12s executions in %s s, corpus %s inputs, no crash\n' \
    "$t" "${execs:-?}" "$secs" "$(ls "corpus/$t" | wc -l)"
}
status=0
pids=()
for t in "${targets[@]}"; do
  run "$t" &
  pids+=($!)
  # Two at a time (the build machine has two cores).
  if [ ${#pids[@]} -ge 2 ]; then wait "${pids[0]}" || status=1; pids=("${pids[@]:1}"); fi
done
for p in "${pids[@]}"; do wait "$p" || status=1; done
exit $status
