#!/usr/bin/env bash
# Backup speed and memory, printed side by side (a benchmark, not a test):
#   pg_dump > /dev/null            the floor
#   pg_dump | gzip -6 > file       what cron jobs do today
#   pgbackup backup (level 6)      this project
# for a pgbench database of about 500 MB and one of about 2 GB on a throwaway cluster.
# Wall time and peak RSS come from /usr/bin/time -v.
#
#   scripts/bench.sh                 # both sizes
#   BENCH_SCALES="34" scripts/bench.sh   # pgbench scale factors to run (34 ≈ 500 MB, 136 ≈ 2 GB)
#   BENCH_RUNS=3 (median of N runs per method), BENCH_TEXT=0 (skip the text+JSON database),
#   BENCH_RESTORE=0 (skip restore / verify / test-restore timings on the text+JSON backup),
#   BENCH_SHOP=0 (skip the shop with keys and indexes: backup as plain, directory -j 2 and
#   bare pg_dump -Fd -j 2; restore as plain, custom and directory; BENCH_SHOP_ROWS orders,
#   default 1500000), BENCH_WIDE=0 (skip four equal tables, plain against directory -j 2;
#   BENCH_WIDE_ROWS rows each, default 400000), BENCH_PGBACKREST=0 (skip pgBackRest's physical
#   backup of the shop's cluster at gz-6 and zst-3, process-max 2, beside pgbackup's)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
scales=${BENCH_SCALES-34 136}

need=()
command -v zstd >/dev/null 2>&1 || need+=(zstd)
ls -d /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
[ -x /usr/bin/time ] || need+=(time)
command -v python3 >/dev/null 2>&1 || need+=(python3)
if [ "${BENCH_SHOP:-1}" = 1 ] && [ "${BENCH_PGBACKREST:-1}" = 1 ]; then
  command -v pgbackrest >/dev/null 2>&1 || need+=(pgbackrest)
fi
. "$root/scripts/bench-lib.sh"
install_missing ${need[@]+"${need[@]}"}

cargo build --release --locked -q
bin=$root/target/release/pgbackup

work=$(mktemp -d "${TMPDIR:-/tmp}/pgbackup-bench.XXXXXX")
chmod 755 "$work"
pgdir=$work/pg
eval "$("$root/scripts/pg-ephemeral.sh" start "$pgdir")"
trap '"$root/scripts/pg-ephemeral.sh" stop "$pgdir"; rm -rf "$work"' EXIT
export PGHOST PGPORT PGUSER


# bench_one LABEL DB: the three methods on one database
bench_one() {
  local label=$1 db=$2 size raw
  size=$(psql -At -d "$db" -c "SELECT pg_size_pretty(pg_database_size('$db'))")
  raw=$(pg_dump -d "$db" | wc -c)
  # Warm the cache once so that every method reads from memory alike.
  pg_dump -d "$db" >/dev/null
  cat > "$work/bench.toml" <<TOML
[storage]
local-dir = "$work/backups"
[backup]
compression-level = 6
[[database]]
name = "$db"
url = "host=$PGHOST port=$PGPORT user=postgres dbname=$db"
TOML
  cat > "$work/bench-zst.toml" <<TOML
[storage]
local-dir = "$work/backups-zst"
[backup]
compression = "zstd"
compression-level = 3
[[database]]
name = "$db"
url = "host=$PGHOST port=$PGPORT user=postgres dbname=$db"
TOML
  local r_floor r_gzip r_pgb r_zstd r_pgz
  r_floor=$(median sh -c "pg_dump -d $db > /dev/null")
  r_gzip=$(median sh -c "pg_dump -d $db | gzip -6 > $work/gzip.sql.gz")
  r_pgb=$(median "$bin" -q --config "$work/bench.toml" backup --force)
  r_zstd=$(median sh -c "pg_dump -d $db | zstd -q -3 -T0 > $work/zstd.sql.zst")
  r_pgz=$(median "$bin" -q --config "$work/bench-zst.toml" backup --force)
  # Keep one backup of each for the size line.
  ls -t "$work/backups/$db/"*.sql.gz | tail -n +2 | while read -r f; do rm -f "$f" "$f.sha256" "$f.json"; done
  ls -t "$work/backups-zst/$db/"*.sql.zst | tail -n +2 | while read -r f; do rm -f "$f" "$f.sha256" "$f.json"; done
  local t_gzip
  t_gzip=$(echo "$r_gzip" | cut -d' ' -f1)
  for row in "pg_dump>/dev/null $r_floor" "pg_dump|gzip-6 $r_gzip" "pgbackup(gzip-6) $r_pgb" "pg_dump|zstd-3-T0 $r_zstd" "pgbackup(zstd-3) $r_pgz"; do
    set -- $row
    awk -v l="$label" -v sz="$size" -v m="$1" -v t="$2" -v c="$3" -v r="$4" -v own="$5" -v raw="$raw" -v g="$t_gzip" \
      'BEGIN { o = (m ~ /^pgbackup/) ? sprintf("%.1f", own/1024) : "-";
               printf "%-14s %-9s %-18s %8.2f %8.2f %8.1f %10.1f %9s %8.2fx\n", l, sz, m, t, c, raw/1e6/t, r/1024, o, g/t }'
  done
  echo "               dump text $((raw / 1000000)) MB; gzip -6 file $(($(stat -c %s "$work/gzip.sql.gz") / 1000000)) MB; pgbackup gzip file $(($(stat -c %s "$work"/backups/"$db"/*.sql.gz) / 1000000)) MB; zstd -3 file $(($(stat -c %s "$work/zstd.sql.zst") / 1000000)) MB; pgbackup zstd file $(($(stat -c %s "$work"/backups-zst/"$db"/*.sql.zst) / 1000000)) MB"
  rm -rf "$work/backups" "$work/backups-zst" "$work/gzip.sql.gz" "$work/zstd.sql.zst"
}

# bench_restore LABEL DB: restore (vs zcat | psql), verify and test-restore of one backup
bench_restore() {
  local label=$1 db=$2 file size
  "$bin" -q --config "$work/bench.toml" backup --force
  file=$(ls -t "$work/backups/$db/"*.sql.gz | head -n 1)
  size=$(stat -c %s "$file")
  local r_zcat r_restore r_verify r_test
  # Each restore goes into a fresh database (dropped between runs).
  r_zcat=$(median sh -c "psql -q -d postgres -c 'DROP DATABASE IF EXISTS r_zcat' -c 'CREATE DATABASE r_zcat' && zcat '$file' | psql -X -q -v ON_ERROR_STOP=1 -d r_zcat")
  r_restore=$(median sh -c "psql -q -d postgres -c 'DROP DATABASE IF EXISTS r_pgb' && exec '$bin' -q --config '$work/bench.toml' restore --file '$file' --target 'host=$PGHOST port=$PGPORT user=postgres dbname=r_pgb' --create --yes")
  r_verify=$(median "$bin" -q --config "$work/bench.toml" verify "$file")
  r_test=$(median "$bin" -q --config "$work/bench.toml" verify --test-restore "$file")
  local t_zcat
  t_zcat=$(echo "$r_zcat" | cut -d' ' -f1)
  for row in "zcat|psql $r_zcat" "pgbackup-restore $r_restore" "pgbackup-verify $r_verify" "verify--test-restore $r_test"; do
    set -- $row
    awk -v l="$label" -v m="$1" -v t="$2" -v c="$3" -v r="$4" -v own="$5" -v size="$size" -v z="$t_zcat" \
      'BEGIN { o = (m ~ /^(pgbackup|verify)/) ? sprintf("%.1f", own/1024) : "-";
               rel = (m ~ /restore$|psql$/ && m !~ /^verify/) ? sprintf("%+.1f%%", (t/z-1)*100) : "-";
               printf "%-14s %-22s %8.2f %8.2f %12.1f %10.1f %9s %9s\n", l, m, t, c, size/1e6/t, r/1024, o, rel }'
  done
  psql -q -d postgres -c 'DROP DATABASE IF EXISTS r_zcat' -c 'DROP DATABASE IF EXISTS r_pgb'
  rm -rf "$work/backups"
}

# bench_parallel_dump LABEL DB PLAIN_TOML DIRECTORY_TOML: does pg_dump -Fd -j 2 (and pgbackup's
# directory format, streamed while pg_dump runs) beat one pg_dump on DB?
bench_parallel_dump() {
  local label=$1 db=$2 plain_toml=$3 dir_toml=$4
  pg_dump -d "$db" >/dev/null
  local b_floor b_fd b_plain b_dir
  b_floor=$(median sh -c "pg_dump -d $db > /dev/null")
  b_fd=$(median sh -c "rm -rf '$work/par.Fd' && pg_dump -Fd -j 2 -Z0 --no-sync -d $db -f '$work/par.Fd'")
  b_plain=$(median "$bin" -q --config "$plain_toml" backup --force)
  b_dir=$(median "$bin" -q --config "$dir_toml" backup --force)
  rm -rf "$work/par.Fd"
  local t_floor
  t_floor=$(echo "$b_floor" | cut -d' ' -f1)
  printf '\n%-22s %-36s %8s %8s %10s %9s %8s\n' "$label" "backup method" wall_s cpu_s tree_RSS own_RSS vs_bare
  for row in "pg_dump>/dev/null $b_floor" "pg_dump-Fd-j2-Z0(to-a-dir) $b_fd" "pgbackup(plain,zstd-3) $b_plain" "pgbackup(directory,-j2,zstd-3) $b_dir"; do
    set -- $row
    awk -v m="$1" -v t="$2" -v c="$3" -v r="$4" -v own="$5" -v z="$t_floor" \
      'BEGIN { o = (m ~ /^pgbackup/) ? sprintf("%.1f", own/1024) : "-";
               printf "%-22s %-36s %8.2f %8.2f %10.1f %9s %7.2fx\n", "", m, t, c, r/1024, o, t/z }'
  done
}

# format_toml FILE ROOT FORMAT DB: a config backing up DB in FORMAT, zstd-3, two dump jobs, under
# ROOT.
format_toml() {
  cat > "$1" <<TOML
[storage]
local-dir = "$2"
[backup]
format = "$3"
compression = "zstd"
dump-jobs = 2
[[database]]
name = "$4"
url = "host=$PGHOST port=$PGPORT user=postgres dbname=$4"
TOML
}

# bench_wide: four tables of equal size (text and JSON), where pg_dump's jobs have work to share.
bench_wide() {
  local db=bench_wide rows=${BENCH_WIDE_ROWS:-400000} i size
  psql -q -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" 2>/dev/null
  for i in 1 2 3 4; do
    psql -q -d "$db" -c "CREATE TABLE t$i AS SELECT g AS id, now() - g * interval '1 minute' AS at,
      'ordered ' || (g % 17) || ' items: ' || md5(g::text) || ' please deliver' AS note,
      jsonb_build_object('sku', g % 1000, 'qty', g % 7) AS doc FROM generate_series(1, $rows) g"
  done
  size=$(psql -At -d "$db" -c "SELECT pg_size_pretty(pg_database_size('$db'))")
  for fmt in plain directory; do
    format_toml "$work/wide-$fmt.toml" "$work/wide-$fmt" "$fmt" "$db"
  done
  bench_parallel_dump "4 tables ($size)" "$db" "$work/wide-plain.toml" "$work/wide-directory.toml"
  psql -q -d postgres -c "DROP DATABASE $db"
  rm -rf "$work/wide-plain" "$work/wide-directory"
}

# bench_pgbackrest DB: pgBackRest's physical full backup of the whole cluster (process-max 2, at
# gz-6 and zst-3) next to pgbackup's logical backup of DB (gzip-6 and zstd-3, two threads):
# wall time and bytes on disk. The cluster holds DB and the empty system databases.
bench_pgbackrest() {
  local db=$1 conf=$work/pgbackrest.conf repo=$work/pgbr run_as=()
  [ "$(id -u)" = 0 ] && run_as=(runuser -u postgres --)
  mkdir -p "$repo"
  [ "$(id -u)" = 0 ] && chown postgres: "$repo"
  cat > "$conf" <<CONF
[global]
repo1-path=$repo/repo
repo1-retention-full=1
process-max=2
start-fast=y
archive-check=n
log-level-console=error
log-level-file=off
lock-path=$repo/lock
[bench]
pg1-path=$pgdir/data
pg1-socket-path=$PGHOST
pg1-port=$PGPORT
pg1-user=postgres
CONF
  chmod 644 "$conf"
  "${run_as[@]}" pgbackrest --config="$conf" --stanza=bench stanza-create >/dev/null
  local cluster
  cluster=$(psql -At -d postgres -c "SELECT pg_size_pretty(sum(pg_database_size(datname))) FROM pg_database")
  printf '\n%-22s %-36s %8s %8s %10s %9s %8s\n' "cluster ($cluster)" "backup (physical vs logical)" wall_s cpu_s tree_RSS MB_disk ""
  local t l r bytes
  for c in "gz 6" "zst 3"; do
    set -- $c
    t=$1 l=$2
    r=$(median "${run_as[@]}" pgbackrest --config="$conf" --stanza=bench --type=full --compress-type="$t" --compress-level="$l" backup)
    bytes=$(du -sb "$repo/repo/backup/bench/$(readlink "$repo/repo/backup/bench/latest")" | cut -f1)
    set -- $r
    printf '%-22s %-36s %8.2f %8.2f %10.1f %9d\n' "" "pgbackrest(full,$t-$l,process-max=2)" "$1" "$2" "$(($3 / 1024))" "$((bytes / 1000000))"
  done
  for c in "gzip 6" "zstd 3"; do
    set -- $c
    cat > "$work/pgb-$1.toml" <<TOML
[storage]
local-dir = "$work/pgb-$1"
[backup]
compression = "$1"
compression-level = $2
compression-threads = 2
[[database]]
name = "$db"
url = "host=$PGHOST port=$PGPORT user=postgres dbname=$db"
TOML
    r=$(median "$bin" -q --config "$work/pgb-$1.toml" backup --force)
    bytes=$(ls -t "$work/pgb-$1/$db/"*.sql.* | grep -v -e '\.sha256$' -e '\.json$' | head -n 1 | xargs stat -c %s)
    local name="pgbackup($db,$1-$2,2 threads)"
    set -- $r
    printf '%-22s %-36s %8.2f %8.2f %10.1f %9d\n' "" "$name" "$1" "$2" "$(($3 / 1024))" "$((bytes / 1000000))"
  done
  rm -rf "$repo" "$work/pgb-gzip" "$work/pgb-zstd"
}

# bench_shop: restore of a shop (customers, orders with text notes and JSON, keys and
# indexes) as plain SQL through psql and as a custom archive through pg_restore -j 2, both
# against zcat | psql and bare pg_restore -j 2 of a pg_dump -Fc file.
bench_shop() {
  local db=bench_shop rows=${BENCH_SHOP_ROWS:-1500000}
  psql -q -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" 2>/dev/null
  psql -q -d "$db" <<SQL
CREATE TABLE customers AS SELECT g AS id, 'customer ' || g AS name, md5(g::text) || '@example.com' AS email,
  jsonb_build_object('tier', g % 5, 'city', 'city ' || (g % 500)) AS profile FROM generate_series(1, $rows / 10) g;
ALTER TABLE customers ADD PRIMARY KEY (id);
CREATE TABLE orders AS SELECT g AS id, 1 + g % ($rows / 10) AS customer_id, now() - g * interval '1 minute' AS at,
  'ordered ' || (g % 17) || ' items: ' || md5(g::text) || ' please deliver to the back door' AS note,
  jsonb_build_object('sku', g % 1000, 'qty', g % 7, 'tags', jsonb_build_array('a', md5((g % 100)::text))) AS doc
  FROM generate_series(1, $rows) g;
ALTER TABLE orders ADD PRIMARY KEY (id);
ALTER TABLE orders ADD FOREIGN KEY (customer_id) REFERENCES customers (id);
CREATE INDEX ON orders (customer_id);
CREATE INDEX ON orders (at);
CREATE INDEX ON customers (email);
SQL
  local size
  size=$(psql -At -d "$db" -c "SELECT pg_size_pretty(pg_database_size('$db'))")
  for fmt in plain custom directory; do
    format_toml "$work/shop-$fmt.toml" "$work/shop-$fmt" "$fmt" "$db"
    "$bin" -q --config "$work/shop-$fmt.toml" backup --force
  done
  bench_parallel_dump "shop ($size)" "$db" "$work/shop-plain.toml" "$work/shop-directory.toml"
  # Keep one backup of each for the restores.
  for f in plain directory; do
    ls -t "$work/shop-$f/$db/"*.zst | tail -n +2 | while read -r x; do rm -f "$x" "$x.sha256" "$x.json"; done
  done
  local plain custom directory
  plain=$(ls "$work/shop-plain/$db/"*.sql.zst)
  custom=$(ls "$work/shop-custom/$db/"*.dump.zst)
  directory=$(ls "$work/shop-directory/$db/"*.tar.zst)
  pg_dump -Fc -d "$db" -f "$work/shop.Fc"
  local fresh="psql -q -d postgres -c 'DROP DATABASE IF EXISTS r_shop' -c 'CREATE DATABASE r_shop'"
  local drop="psql -q -d postgres -c 'DROP DATABASE IF EXISTS r_shop'"
  local tgt="host=$PGHOST port=$PGPORT user=postgres dbname=r_shop"
  local r_zcat r_pgr r_plain r_custom r_custom1 r_dir
  r_zcat=$(median sh -c "$fresh && zstdcat -q '$plain' | psql -X -q -v ON_ERROR_STOP=1 -d r_shop")
  r_pgr=$(median sh -c "$fresh && pg_restore -j 2 -d r_shop '$work/shop.Fc'")
  r_plain=$(median sh -c "$drop && exec '$bin' -q --config '$work/shop-plain.toml' restore --file '$plain' --target '$tgt' --create --yes")
  r_custom=$(median sh -c "$drop && exec '$bin' -q --config '$work/shop-custom.toml' restore --file '$custom' --target '$tgt' --create --yes --jobs 2")
  r_custom1=$(median sh -c "$drop && exec '$bin' -q --config '$work/shop-custom.toml' restore --file '$custom' --target '$tgt' --create --yes --jobs 1")
  r_dir=$(median sh -c "$drop && exec '$bin' -q --config '$work/shop-directory.toml' restore --file '$directory' --target '$tgt' --create --yes --jobs 2")
  local t_zcat
  t_zcat=$(echo "$r_zcat" | cut -d' ' -f1)
  printf '\n%-22s %-36s %8s %8s %10s %9s %8s\n' "shop ($size)" method wall_s cpu_s tree_RSS own_RSS vs_zcat
  for row in "zstdcat|psql(plain) $r_zcat" "pg_restore-j2(pg_dump-Fc) $r_pgr" "pgbackup-restore(plain,zstd) $r_plain" "pgbackup-restore(custom,zstd,-j2) $r_custom" "pgbackup-restore(custom,zstd,-j1) $r_custom1" "pgbackup-restore(directory,zstd,-j2) $r_dir"; do
    set -- $row
    awk -v m="$1" -v t="$2" -v c="$3" -v r="$4" -v own="$5" -v z="$t_zcat" \
      'BEGIN { o = (m ~ /^pgbackup/) ? sprintf("%.1f", own/1024) : "-";
               printf "%-22s %-36s %8.2f %8.2f %10.1f %9s %7.2fx\n", "", m, t, c, r/1024, o, t/z }'
  done
  echo "                       plain zstd $(($(stat -c %s "$plain") / 1000000)) MB, custom zstd $(($(stat -c %s "$custom") / 1000000)) MB, directory zstd $(($(stat -c %s "$directory") / 1000000)) MB, pg_dump -Fc $(($(stat -c %s "$work/shop.Fc") / 1000000)) MB; the custom restore's temp copy: $(($(zstdcat -q "$custom" | wc -c) / 1000000)) MB"
  psql -q -d postgres -c 'DROP DATABASE IF EXISTS r_shop'
  if [ "${BENCH_PGBACKREST:-1}" = 1 ]; then
    bench_pgbackrest "$db"
  fi
  psql -q -d postgres -c "DROP DATABASE $db"
  rm -rf "$work/shop-plain" "$work/shop-custom" "$work/shop-directory" "$work/shop.Fc"
}

printf '\n%-14s %-9s %-18s %8s %8s %8s %10s %9s %9s\n' data db_size method wall_s cpu_s MB/s tree_RSS own_RSS vs_gzip
for scale in $scales; do
  db=bench_$scale
  psql -q -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" 2>/dev/null
  "$PGBINDIR/pgbench" -q -i -s "$scale" "$db" >/dev/null 2>&1
  bench_one "pgbench-s$scale" "$db"
  psql -q -d postgres -c "DROP DATABASE $db"
done
if [ "${BENCH_TEXT:-1}" = 1 ]; then
  # pgbench rows are mostly blank padding, which any deflate squeezes at memory speed; real
  # application data (text, JSON) is where the compressor's speed shows.
  db=bench_text
  psql -q -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" 2>/dev/null
  psql -q -d "$db" -c "CREATE TABLE docs AS SELECT g AS id, now() - g * interval '1 minute' AS at,
      'customer ' || (g % 9973) || ' ordered ' || (g % 17) || ' items: ' || md5(g::text) AS note,
      jsonb_build_object('sku', g % 1000, 'qty', g % 7, 'tags', jsonb_build_array('a', md5((g % 100)::text))) AS doc
    FROM generate_series(1, ${BENCH_TEXT_ROWS:-2500000}) g"
  bench_one "text+json" "$db"
  if [ "${BENCH_RESTORE:-1}" = 1 ]; then
    printf '\n%-14s %-22s %8s %8s %12s %10s %9s %9s\n' data method wall_s cpu_s gz_MB/s tree_RSS own_RSS vs_zcat
    bench_restore "text+json" "$db"
  fi
  psql -q -d postgres -c "DROP DATABASE $db"
fi
if [ "${BENCH_SHOP:-1}" = 1 ]; then
  bench_shop
fi
if [ "${BENCH_WIDE:-1}" = 1 ]; then
  bench_wide
fi
echo
echo "MB/s = uncompressed dump bytes / wall time; cpu_s = user+system of every process involved (pg_dump included)."
echo "tree_RSS = /usr/bin/time's maximum over the process tree (pg_dump's own RSS included), MiB;"
echo "own_RSS = pgbackup's own peak (VmHWM), MiB. vs_gzip = wall time of pg_dump|gzip-6 / this row's."
echo "Restore table: gz_MB/s = compressed backup bytes / wall time; vs_zcat = restore time relative to zcat|psql"
echo "(pgbackup's restore includes its verification pass over the file before psql starts)."
