#!/usr/bin/env bash
# S3 upload benchmark (figures, not a test): a backup of about 2 GB compressed, streamed into a
# local Garage over https (stunnel in front, a private CA: scripts/garage-ephemeral.sh) by
#   pgbackup, keep-local = false      dump -> gzip -> SHA-256 -> multipart parts, no local copy
#   pgbackup, keep-local = true       the same to a local file, then the upload from that file
#   pg_dump | gzip -6 | aws s3 cp -   what the existing setups do (awscli streams stdin)
# Wall time, throughput (compressed MB/s) and peak RSS. pgbackup's target: peak RSS under
# 64 MiB whatever the dump size.
#
#   scripts/bench-s3.sh                       # garage must be installed (test-s3-garage.sh --install)
#   BENCH_S3_ROWS=14000000 (≈ 3.7 GB of dump text, ≈ 2 GB gzip), BENCH_RUNS=1
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export PATH="$PATH:/opt/garage/bin"
command -v garage >/dev/null 2>&1 || { echo "bench-s3.sh: garage is not installed: scripts/test-s3-garage.sh --install" >&2; exit 69; }
[ -x /usr/bin/time ] || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
scripts/test-venv.sh
cargo build --release --locked -q
bin=$root/target/release/pgbackup

work=$(mktemp -d "${TMPDIR:-/tmp}/pgbackup-bench-s3.XXXXXX")
chmod 755 "$work"
eval "$("$root/scripts/pg-ephemeral.sh" start "$work/pg")"
trap '"$root/scripts/pg-ephemeral.sh" stop "$work/pg"; "$root/scripts/garage-ephemeral.sh" stop "$work/garage"; rm -rf "$work"' EXIT
eval "$("$root/scripts/garage-ephemeral.sh" start "$work/garage")"
export PGHOST PGPORT PGUSER
export AWS_ACCESS_KEY_ID=$PGBACKUP_TEST_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$PGBACKUP_TEST_S3_SECRET_KEY
export AWS_DEFAULT_REGION=$PGBACKUP_TEST_S3_REGION
ca_args=(); [ -n "${PGBACKUP_TEST_S3_CA_FILE:-}" ] && ca_args=(--ca-bundle "$PGBACKUP_TEST_S3_CA_FILE")
aws() { "$root/.venv/bin/aws" --endpoint-url "$PGBACKUP_TEST_S3_ENDPOINT" "${ca_args[@]}" "$@"; }
. "$root/scripts/bench-lib.sh"
BENCH_RUNS=${BENCH_RUNS:-1}

aws s3api create-bucket --bucket bench >/dev/null
printf '%s' "$AWS_ACCESS_KEY_ID" > "$work/ak"; printf '%s' "$AWS_SECRET_ACCESS_KEY" > "$work/sk"
chmod 600 "$work/ak" "$work/sk"

db=bench_s3
rows=${BENCH_S3_ROWS:-14000000}
echo "== generating $rows rows of random-looking text (md5 hex: it compresses to about half)"
psql -q -d postgres -c "CREATE DATABASE $db"
psql -q -d "$db" -c "CREATE TABLE blob AS SELECT g, md5(random()::text) || md5(random()::text) || md5(random()::text)
    || md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text)
    || md5(random()::text) AS v
  FROM generate_series(1, $rows) g"
pg_dump -d "$db" > /dev/null   # warm the cache

config() {
  cat > "$work/bench-$1.toml" <<TOML
[storage]
local-dir = "$work/backups"
[storage.s3]
bucket = "bench"
endpoint = "$PGBACKUP_TEST_S3_ENDPOINT"
region = "$PGBACKUP_TEST_S3_REGION"
prefix = "$1/"
access-key-file = "$work/ak"
secret-key-file = "$work/sk"
${PGBACKUP_TEST_S3_CA_FILE:+ca-file = \"$PGBACKUP_TEST_S3_CA_FILE\"}
keep-local = $2
[backup]
compression-level = 6
[[database]]
name = "$db"
url = "host=$PGHOST port=$PGPORT user=postgres dbname=$db"
TOML
}
config stream false
config local true

r_stream=$(median "$bin" -q --config "$work/bench-stream.toml" backup --force)
size=$(aws s3 ls --recursive s3://bench/stream/ | awk '/\.sql\.gz$/ {print $3; exit}')
r_local=$(median "$bin" -q --config "$work/bench-local.toml" backup --force)
rm -rf "$work/backups"
r_aws=$(median sh -c "pg_dump -d $db | gzip -6 | '$root/.venv/bin/aws' --endpoint-url '$PGBACKUP_TEST_S3_ENDPOINT' ${ca_args[*]} s3 cp - s3://bench/aws/$db.sql.gz")
aws_size=$(aws s3 ls s3://bench/aws/ | awk '{print $3; exit}')

printf '\n%-36s %8s %8s %10s %10s %9s\n' method wall_s cpu_s gz_MB/s tree_RSS own_RSS
for row in "pgbackup-keep-local=false $r_stream $size" "pgbackup-keep-local=true $r_local $size" "pg_dump|gzip-6|aws-s3-cp- $r_aws $aws_size"; do
  set -- $row
  awk -v m="$1" -v t="$2" -v c="$3" -v r="$4" -v own="$5" -v sz="$6" \
    'BEGIN { o = (m ~ /^pgbackup/) ? sprintf("%.1f", own/1024) : "-";
             printf "%-36s %8.2f %8.2f %10.1f %10.1f %9s\n", m, t, c, sz/1e6/t, r/1024, o }'
done
echo
echo "object: pgbackup $((size / 1000000)) MB, awscli $((aws_size / 1000000)) MB; dump text $(pg_dump -d "$db" | wc -c | awk '{printf "%d", $1/1e6}') MB"
echo "dump MB/s: pgbackup keep-local=false $(echo "$r_stream" | awk -v d="$(pg_dump -d "$db" | wc -c)" '{printf "%.1f", d/1e6/$1}')"
echo "gz_MB/s = object bytes / wall time. tree_RSS = /usr/bin/time's maximum over the process tree"
echo "(for the awscli pipeline that is aws's python); own_RSS = pgbackup's own peak (VmHWM); MiB."
echo "Parts: pgbackup 16 MiB (part-size-mib), up to 4 in flight, spooled to disk; awscli 8 MiB, up to 10."
