#!/usr/bin/env bash
# The torture suite (a script, not part of scripts/test.sh; .ci/run runs `--quick`): faults
# thrown at pgbackup while it works, each followed by the invariants, and a table of every fault
# with the exit code seen and what was lost (it must be nothing).
#
#   scripts/torture.sh            # the full run: 40 random kill -9 points, every ENOSPC point, ...
#   scripts/torture.sh --quick    # the CI-sized subset (a few minutes)
#   TORTURE_KILLS=100 scripts/torture.sh
#
# Faults:
#   kill -9 of pgbackup at random points during backup, verify --test-restore, prune and
#     restore, and of pg_dump during a backup;
#   ENOSPC on a small tmpfs backup root at page-exact sizes around the data, sidecar, manifest
#     and state writes, and on a full textfile directory (metrics);
#   server failures: stop -m immediate mid-dump, a terminated backend, a lock wait timeout,
#     dump-timeout-secs on a dump stuck behind a lock, permission denied, a "pg_dump" that prints garbage and exits 0, one
#     that truncates its dump and exits 0, a wrapper that forks and keeps the pipe open;
#   clock skew: backups named in the future, then retention, respawn protection and check.
# Invariants after each: every visible backup passes sha256sum -c and gzip -t, no data file
# without its sidecar is visible, `pgbackup verify --all` passes, the next backup succeeds and
# removes the debris, and no password is left in the backup tree, the temp directories or
# /dev/shm.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
quick=0
[ "${1:-}" = "--quick" ] && quick=1
kills=${TORTURE_KILLS:-$([ $quick = 1 ] && echo 8 || echo 40)}
[ "$(id -u)" = 0 ] || { echo "torture.sh: run as root (it mounts tmpfs file systems)" >&2; exit 2; }

cargo build --locked -q
bin=$root/target/debug/pgbackup
work=$(mktemp -d /tmp/pgbackup-torture.XXXXXX)
chmod 755 "$work"
password="torture-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
cleanup() {
  set +e
  for m in "$work/small" "$work/tiny-textfile"; do mountpoint -q "$m" && umount "$m"; done
  "$root/scripts/pg-ephemeral.sh" stop "$work/pg" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
eval "$("$root/scripts/pg-ephemeral.sh" start "$work/pg" "$password")"
export PGHOST PGPORT PGUSER
psql() { "$PGBINDIR/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
psql -d postgres -c "CREATE DATABASE torture"
"$PGBINDIR/pgbench" -q -i -s "$([ $quick = 1 ] && echo 3 || echo 10)" torture >/dev/null 2>&1
printf '%s\n' "$password" > "$work/pw"; chmod 600 "$work/pw"
mkdir -p "$work/textfile"

# config NAME [extra TOML]: a config file with the backup root $work/NAME.
config() {
  local name=$1; shift
  cat > "$work/$name.toml" <<TOML
[storage]
local-dir = "$work/$name"
[backup]
pg-dump-path = "${PGDUMP:-$PGBINDIR/pg_dump}"
psql-path = "$PGBINDIR/psql"
dump-timeout-secs = ${DUMP_TIMEOUT:-600}
[retention]
keep-days = 0
keep-min = 3
${RET_EXTRA:-}
[metrics]
textfile-dir = "${TEXTFILE:-$work/textfile}"
[[database]]
name = "torture"
url = "postgresql://postgres@127.0.0.1:$PGPORT/torture"
password-file = "$work/pw"
${DB_EXTRA:-}
$*
TOML
  echo "$work/$name.toml"
}
pgb() { "$bin" -q --config "$@"; }

rows=()
failures=0
# record FAULT EXIT LOST
record() {
  rows+=("$1|$2|$3")
  [ "$3" = "nothing" ] || failures=$((failures + 1))
}

# lost ROOT: what the invariants find wrong in ROOT ("nothing" when all hold).
lost() {
  local r=$1 problems=()
  local d f
  for d in "$r"/*/; do
    [ -d "$d" ] || continue
    for f in "$d"*.sql.gz; do
      [ -e "$f" ] || continue
      if [ ! -e "$f.sha256" ]; then problems+=("visible data without sidecar: ${f##*/}"); continue; fi
      (cd "$d" && sha256sum -c --quiet "${f##*/}.sha256" >/dev/null 2>&1) || problems+=("checksum: ${f##*/}")
      gzip -t "$f" 2>/dev/null || problems+=("gzip: ${f##*/}")
    done
  done
  local leaks
  leaks=$(grep -rlF -- "$password" "$r" "${TMPDIR:-/tmp}" /dev/shm 2>/dev/null \
    | grep -v -e "^$work/pw$" -e "^$work/pg/" -e "^$work/.*\.toml$" || true)
  [ -z "$leaks" ] || problems+=("password left in: $(echo "$leaks" | tr '\n' ' ')")
  if [ ${#problems[@]} -eq 0 ]; then echo nothing; else printf '%s; ' "${problems[@]}"; fi
}

# after CONFIG ROOT: the next run is green and removes the debris; returns the lost() verdict.
after() {
  local cfg=$1 r=$2 v
  v=$(lost "$r")
  if ! pgb "$cfg" verify --all >/dev/null 2>&1; then v="${v/nothing/}verify --all failed; "; fi
  if ! pgb "$cfg" backup --force >/dev/null 2>"$work/next.err"; then
    v="${v/nothing/}next backup failed: $(head -c 300 "$work/next.err"); "
  fi
  local listing; listing=$(ls -a "$r"/*/ 2>/dev/null || true)
  if grep -q '^\.pgbackup-tmp' <<<"$listing"; then v="${v/nothing/}debris left; "; fi
  echo "${v:-nothing}"
}

now_ms() { date +%s%3N; }

echo "== baseline"
cfg=$(config main)
pgb "$cfg" backup >/dev/null
t0=$(now_ms); pgb "$cfg" backup --force >/dev/null; t_backup=$(( $(now_ms) - t0 ))
t0=$(now_ms); pgb "$cfg" verify --test-restore >/dev/null; t_verify=$(( $(now_ms) - t0 ))
echo "backup ${t_backup} ms, verify --test-restore ${t_verify} ms"

echo "== kill -9 at $kills random points"
for i in $(seq 1 "$kills"); do
  case $((RANDOM % 5)) in
    0|1) what="backup --force"; span=$t_backup ;;
    2) what="verify --test-restore"; span=$t_verify ;;
    3) what="prune"; span=300 ;;
    4) what="restore --latest --db torture --target postgresql://postgres@127.0.0.1:$PGPORT/restored_$i --create --yes --no-safety-backup"; span=$t_verify ;;
  esac
  at=$(( RANDOM % (span + 1) ))
  # shellcheck disable=SC2086
  pgb "$cfg" $what >/dev/null 2>&1 &
  pid=$!
  sleep "$(awk -v ms="$at" 'BEGIN { printf "%.3f", ms / 1000 }')"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null && code=0 || code=$?
  pkill -9 -f "$PGBINDIR/pg_dump" 2>/dev/null || true
  sleep 0.2
  record "kill -9 during ${what%% *} at ${at} ms" "$code" "$(after "$cfg" "$work/main")"
done
echo "== kill -9 of pg_dump during a backup"
pgb "$cfg" backup --force >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 100); do pgrep -f "$PGBINDIR/pg_dump" >/dev/null && break; sleep 0.05; done
pkill -9 -f "$PGBINDIR/pg_dump" || true
wait "$pid" && code=0 || code=$?
record "kill -9 of pg_dump" "$code" "$(after "$cfg" "$work/main")"

echo "== ENOSPC on a small backup root"
size=$(stat -c %s "$(ls "$work"/main/torture/*.sql.gz | tail -n1)")
mkdir -p "$work/small"
steps=$([ $quick = 1 ] && echo "-8 0 1 2 8" || seq -12 1 12)
for k in $steps; do
  # Page-exact sizes around one backup: short in the data, at the sidecar, manifest, state.
  bytes=$(( (size / 4096 + 2 + k) * 4096 ))
  [ "$bytes" -gt 8192 ] || continue
  mountpoint -q "$work/small" && umount "$work/small"
  mount -t tmpfs -o "size=$bytes,mode=700" tmpfs "$work/small"
  scfg=$(config small)
  pgb "$scfg" backup >/dev/null 2>&1 && code=0 || code=$?
  v=$(lost "$work/small")
  if [ "$code" = 0 ] && ! pgb "$scfg" verify --all >/dev/null 2>&1; then v="${v/nothing/}exit 0 but verify fails; "; fi
  if [ "$code" != 0 ] && [ "$code" != 73 ]; then v="${v/nothing/}exit $code, not 73; "; fi
  # The metrics must say what the exit code says.
  if [ "$code" = 73 ] && grep -q '^pgbackup_run_success 1' "$work/textfile/pgbackup.prom"; then
    v="${v/nothing/}metrics say success; "
  fi
  record "ENOSPC, root of $((bytes / 4096)) pages (dump is $((size / 4096 + 1)))" "$code" "${v:-nothing}"
done
umount "$work/small"
echo "== ENOSPC in the textfile directory"
mkdir -p "$work/tiny-textfile"
mount -t tmpfs -o size=4096 tmpfs "$work/tiny-textfile"
head -c 4096 /dev/zero > "$work/tiny-textfile/filler" 2>/dev/null || true
tcfg=$(TEXTFILE=$work/tiny-textfile config main)
pgb "$tcfg" backup --force >/dev/null 2>&1 && code=0 || code=$?
record "ENOSPC writing metrics" "$code" "$(lost "$work/main")"
umount "$work/tiny-textfile"

echo "== server failures"
# fault NAME EXPECT CONFIG [command...]: run a backup under CONFIG; EXPECT is the exit code.
fault() {
  local name=$1 expect=$2 c=$3 code v
  pgb "$c" backup --force >/dev/null 2>"$work/fault.err" && code=0 || code=$?
  v=$(lost "$work/main")
  [ "$code" = "$expect" ] || v="${v/nothing/}expected exit $expect: $(head -c 300 "$work/fault.err"); "
  record "$name" "$code" "${v:-nothing}"
}
# Stop the server in the middle of a dump, then start it again.
pgb "$cfg" backup --force >/dev/null 2>"$work/fault.err" &
pid=$!
for _ in $(seq 1 100); do pgrep -f "$PGBINDIR/pg_dump" >/dev/null && break; sleep 0.05; done
runuser -u postgres -- "$PGBINDIR/pg_ctl" -D "$work/pg/data" -m immediate stop >/dev/null 2>&1 || true
wait "$pid" && code=0 || code=$?
runuser -u postgres -- "$PGBINDIR/pg_ctl" -D "$work/pg/data" -l "$work/pg/server.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -c port=$PGPORT -c unix_socket_directories=$PGHOST -c fsync=off" start >/dev/null
v=$(after "$cfg" "$work/main"); [ "$code" != 0 ] || v="${v/nothing/}exit 0; "
record "server stopped -m immediate mid-dump" "$code" "${v:-nothing}"
# A terminated backend.
pgb "$cfg" backup --force >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  n=$(psql -d postgres -At -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_dump'"); [ "$n" != 0 ] && break; sleep 0.05
done
psql -d postgres -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pg_dump'" >/dev/null
wait "$pid" && code=0 || code=$?
v=$(after "$cfg" "$work/main"); [ "$code" != 0 ] || v="${v/nothing/}exit 0; "
record "backend terminated mid-dump" "$code" "${v:-nothing}"
# A lock that pg_dump waits for, with a lock wait timeout.
psql -d torture -c "BEGIN; LOCK pgbench_accounts IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(20); COMMIT" >/dev/null 2>&1 &
locker=$!
sleep 1
fault "lock wait timeout" 1 "$(DB_EXTRA='pg-dump-args = ["--lock-wait-timeout=1000"]' config main)"
kill "$locker" 2>/dev/null || true; wait "$locker" 2>/dev/null || true
psql -d postgres -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(20)%' AND pid <> pg_backend_pid()" >/dev/null
# pgbackup's own time limit on a dump stuck behind a lock.
psql -d torture -c "BEGIN; LOCK pgbench_branches IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(20); COMMIT" >/dev/null 2>&1 &
locker=$!
sleep 1
fault "dump-timeout-secs on a dump stuck behind a lock" 1 "$(DUMP_TIMEOUT=2 config main)"
kill "$locker" 2>/dev/null || true; wait "$locker" 2>/dev/null || true
psql -d postgres -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(20)%' AND pid <> pg_backend_pid()" >/dev/null
# Permission denied: a role that may not read the tables.
psql -d postgres -c "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'nobody_reader') THEN CREATE ROLE nobody_reader LOGIN PASSWORD '$password'; END IF; END \$\$" >/dev/null
sed "s#postgresql://postgres@#postgresql://nobody_reader@#" "$cfg" > "$work/perm.toml"
fault "permission denied" 1 "$work/perm.toml"
# "pg_dump"s that lie: garbage with exit 0, a truncated dump with exit 0, a forking wrapper.
cat > "$work/garbage_pg_dump" <<SH
#!/bin/sh
case "\$1" in --version) exec "$PGBINDIR/pg_dump" --version;; esac
head -c 100000 /dev/urandom; exit 0
SH
cat > "$work/truncated_pg_dump" <<SH
#!/bin/sh
case "\$1" in --version) exec "$PGBINDIR/pg_dump" --version;; esac
"$PGBINDIR/pg_dump" "\$@" | head -c 200000; exit 0
SH
cat > "$work/forking_pg_dump" <<SH
#!/bin/sh
case "\$1" in --version) exec "$PGBINDIR/pg_dump" --version;; esac
# A child that keeps the pipe open long after the time limit.
sh -c 'sleep 300' &
"$PGBINDIR/pg_dump" "\$@"
wait
SH
chmod 755 "$work"/*_pg_dump
fault "pg_dump prints garbage, exits 0" 1 "$(PGDUMP=$work/garbage_pg_dump config main)"
fault "pg_dump truncates, exits 0" 1 "$(PGDUMP=$work/truncated_pg_dump config main)"
t0=$(now_ms)
fault "wrapper forks, holds the pipe" 1 "$(PGDUMP=$work/forking_pg_dump DUMP_TIMEOUT=3 config main)"
t=$(( $(now_ms) - t0 ))
[ "$t" -lt 30000 ] || { rows[${#rows[@]}-1]="wrapper forks, holds the pipe|?|ran ${t} ms: the time limit did not hold"; failures=$((failures + 1)); }
pkill -f 'sleep 300' 2>/dev/null || true

echo "== clock skew"
d=$work/main/torture
real=$(ls "$d"/*.sql.gz | wc -l)
for y in 2098 2099; do
  src=$(ls "$d"/*.sql.gz | tail -n1); name=$(basename "$src"); fut="torture_${y}0101_000000.sql.gz"
  cp "$src" "$d/$fut"; sed "s/$name/$fut/" "$src.sha256" > "$d/$fut.sha256"
done
scfg=$(RET_EXTRA='keep-daily = 1' config main)
sed -i 's/^keep-min = 3/keep-min = 2/' "$scfg"
pgb "$scfg" prune >/dev/null 2>&1 && code=0 || code=$?
left=$(ls "$d"/*.sql.gz | grep -vc '_209' || true)
v=nothing; [ "$left" -ge 2 ] || v="retention left $left real backups; "
record "2 backups named in the future, keep-daily 1, keep-min 2 ($real real)" "$code" "$v"
out=$(pgb "$scfg" check --no-connect 2>&1) && code=0 || code=$?
v=nothing; { [ "$code" -ge 1 ] && grep -q "dated in the future" <<<"$out"; } || v="check said $code: $out; "
record "check with future-dated backups" "$code" "$v"
sed -i 's/^\[backup\]/[backup]\nrespawn-protection-hours = 1/' "$scfg"
out=$(pgb "$scfg" backup 2>&1) && code=0 || code=$?
v=nothing; grep -q skipped <<<"$out" && v="respawn protection skipped the run; "
record "respawn protection with future-dated backups" "$code" "$v"

echo
printf '%-70s %5s  %s\n' FAULT EXIT LOST
for r in "${rows[@]}"; do
  IFS='|' read -r f c l <<<"$r"
  printf '%-70s %5s  %s\n' "$f" "$c" "$l"
done
echo
echo "${#rows[@]} faults, $failures with something lost or wrong"
[ "$failures" = 0 ]
