#!/usr/bin/env bash
# Redis snapshot speed and memory (a benchmark, not a test), side by side:
#   redis-cli --rdb - | gzip -6 > f     what the shell setups do today
#   redis-cli --rdb - | zstd -3 > f
#   pgbackup backup ([[redis]], gzip-6 and zstd-3)
# on a throwaway redis-server filled with BENCH_REDIS_KEYS string keys of BENCH_REDIS_VALUE bytes of
# base64 text (the defaults make about 1 GB of data). Wall time and peak RSS from
# /usr/bin/time -v; the server's extra memory during a snapshot is its used_memory_peak growth
# and the fork child's copy-on-write (the log line "Fork CoW for RDB").
#
#   scripts/bench-redis.sh
#   BENCH_REDIS_KEYS=2000000 BENCH_REDIS_VALUE=100 BENCH_RUNS=3 scripts/bench-redis.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
command -v zstd >/dev/null 2>&1 || need+=(zstd)
[ -x /usr/bin/time ] || need+=(time)
. "$root/scripts/bench-lib.sh"
install_missing ${need[@]+"${need[@]}"}
cargo build --release --locked -q
bin=$root/target/release/pgbackup
work=$(mktemp -d "${TMPDIR:-/tmp}/pgbackup-bench-redis.XXXXXX")
keys=${BENCH_REDIS_KEYS:-4000000}
value=${BENCH_REDIS_VALUE:-250}
runs=${BENCH_RUNS:-1}
sock=$work/redis.sock
# repl-diskless-sync-delay 0: a default server waits 5 s for more replicas before a diskless
# snapshot starts, which would add 5 s to every row alike.
redis-server --port 0 --unixsocket "$sock" --dir "$work" --save "" --appendonly no --repl-diskless-sync-delay 0 \
  --enable-debug-command local --logfile "$work/redis.log" --daemonize yes --pidfile "$work/redis.pid"
trap 'kill "$(cat "$work/redis.pid")" 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do [ -S "$sock" ] && redis-cli -s "$sock" PING >/dev/null 2>&1 && break; sleep 0.1; done
cli() { redis-cli -s "$sock" "$@"; }
echo "== filling: $keys string keys of $value bytes of base64 text (as compressible as session data)"
python3 - "$keys" "$value" <<'PY' | redis-cli -s "$sock" --pipe >/dev/null
import base64, os, sys
keys, size = int(sys.argv[1]), int(sys.argv[2])
out = sys.stdout.buffer
blob = base64.b64encode(os.urandom(48 << 20))
for i in range(keys):
    k = b"session:%d" % i
    off = (i * size) % (len(blob) - size)
    v = blob[off:off + size]
    out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v))
PY
used=$(cli INFO memory | awk -F: '/^used_memory:/ {print $2}' | tr -d '\r')
echo "   server used_memory: $((used / 1048576)) MiB"

# measure_snapshot LABEL CMD...: wall seconds and peak RSS (MiB) of the whole command (the last of BENCH_RUNS runs)
measure_snapshot() {
  local label=$1; shift
  local best="" rss=""
  for _ in $(seq "$runs"); do
    cli CONFIG RESETSTAT >/dev/null
    local before after
    before=$(cli INFO memory | awk -F: '/^used_memory_peak:/ {print $2}' | tr -d '\r')
    if ! /usr/bin/time -f "%e %M" -o "$work/time" "$@" >"$work/out" 2>&1; then
      echo "$label failed:" >&2; tail -5 "$work/out" >&2; return 1
    fi
    after=$(cli INFO memory | awk -F: '/^used_memory_peak:/ {print $2}' | tr -d '\r')
    read -r wall kb < "$work/time"
    best=$wall; rss=$((kb / 1024))
    grow=$(( (after - before) / 1048576 ))
  done
  local cow
  cow=$(grep -o 'Fork CoW for RDB: current [0-9]* MB, peak [0-9]* MB' "$work/redis.log" | tail -1 | sed 's/.*peak \([0-9]*\) MB/\1/' || true)
  printf '%-44s %8s s %8s MiB %10s MiB %8s MB\n' "$label" "$best" "$rss" "$grow" "${cow:-0}"
}
printf '\n%-44s %10s %12s %14s %11s\n' method wall peak_RSS server_peak+ fork_CoW
measure_snapshot "redis-cli --rdb - | gzip -6" sh -c "redis-cli -s '$sock' --rdb - 2>/dev/null | gzip -6 > '$work/cli.rdb.gz'"
measure_snapshot "redis-cli --rdb - | zstd -3" sh -c "redis-cli -s '$sock' --rdb - 2>/dev/null | zstd -q -3 > '$work/cli.rdb.zst'"
for comp in "gzip 6" "zstd 3"; do
  set -- $comp
  cat > "$work/$1.toml" <<TOML
[storage]
local-dir = "$work/backups-$1"
[backup]
compression = "$1"
compression-level = $2
[[redis]]
name = "bench"
url = "unix://$sock"
TOML
  measure_snapshot "pgbackup backup (redis, $1-$2)" "$bin" -q --config "$work/$1.toml" backup --force
done
echo
echo "sizes: redis-cli|gzip $(($(stat -c %s "$work/cli.rdb.gz") / 1000000)) MB, redis-cli|zstd $(($(stat -c %s "$work/cli.rdb.zst") / 1000000)) MB, pgbackup gzip $(($(stat -c %s "$work"/backups-gzip/bench/*.rdb.gz) / 1000000)) MB, pgbackup zstd $(($(stat -c %s "$work"/backups-zstd/bench/*.rdb.zst) / 1000000)) MB"
echo "peak_RSS is the whole command's largest process (/usr/bin/time -v: for a pipeline, its largest member);"
echo "server_peak+ is used_memory_peak's growth during the snapshot; fork_CoW the fork child's copy-on-write peak (disk-based SYNC)."
