#!/usr/bin/env bash
# A real backup in one command: installs what is missing, builds pgbackup, starts a throwaway
# PostgreSQL with sample data (pgbench tables plus a few odd ones), backs it up, proves the
# backup restores (verify --test-restore: a scratch database and a row count per table),
# restores it into a new database, lists the backups and checks them with the standard tools.
# Set DATABASE_URL to back up your own database instead of the throwaway one (its password may
# be in the URL or in DB_PASSWORD_FILE); the test restore and the restore then stay off your
# server (verify checks the file only).
#
#   scripts/demo.sh            # backups land in .tmp/demo/backups
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

need=()
ls -d /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
command -v python3 >/dev/null 2>&1 || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

work=$root/.tmp/demo
mkdir -p "$work"
# One demo at a time in a checkout (they share its config and backups).
exec 9>"$work/.lock"
if ! flock -n 9; then
  echo "another scripts/demo.sh is running in this checkout; wait for it to finish" >&2
  exit 1
fi

if [ -x "$root/target/release/pgbackup" ]; then
  echo "== building pgbackup (release)"
else
  echo "== building pgbackup (release): the first build compiles every dependency, several minutes on 2 cores; later runs take seconds"
fi
cargo build --release --locked
bin=$root/target/release/pgbackup

# Metrics go into the demo's own directory: only the packaged config points at the system
# node_exporter directory, where a live Prometheus would scrape a throwaway database.
mkdir -p "$work/metrics"
cat > "$work/pgbackup.toml" <<TOML
[storage]
local-dir = "$work/backups"

[metrics]
textfile-dir = "$work/metrics"
TOML

if [ -z "${DATABASE_URL:-}" ]; then
  echo "== starting a throwaway PostgreSQL"
  # A private directory outside the checkout (the postgres user must reach it): two demos on
  # one machine never share a cluster.
  pgtmp=$(mktemp -d "${TMPDIR:-/tmp}/pgbackup-demo-pg.XXXXXX")
  chmod 755 "$pgtmp"
  pgdir=$pgtmp/pg
  eval "$("$root/scripts/pg-ephemeral.sh" start "$pgdir")"
  trap '"$root/scripts/pg-ephemeral.sh" stop "$pgdir"; rm -rf "$pgtmp"' EXIT
  psql -q -c "CREATE DATABASE shop" -d postgres
  "$PGBINDIR/pgbench" -q -i -s 5 shop 2>&1 | tail -n 1
  psql -q -d shop <<'SQL'
CREATE SCHEMA "Sales Dept";
CREATE TABLE "Sales Dept"."Orders ✓" (id serial PRIMARY KEY, customer text, items jsonb, tags text[]);
INSERT INTO "Sales Dept"."Orders ✓" (customer, items, tags)
  SELECT 'Kunde ' || g, jsonb_build_object('sku', g, 'qty', g % 7), ARRAY['vip', 'größe-' || g % 3]
  FROM generate_series(1, 1000) g;
SQL
  printf '%s\n' pgbackup-demo > "$work/password"
  chmod 600 "$work/password"
  cat >> "$work/pgbackup.toml" <<TOML

[[database]]
name = "shop"
url = "postgresql://postgres@127.0.0.1:$PGPORT/shop"
password-file = "$work/password"
TOML
fi

pgb() { "$bin" --config "$work/pgbackup.toml" "$@"; }
echo "== pgbackup backup"
pgb backup --description "demo run"
if [ -n "${DATABASE_URL:-}" ]; then
  echo "== pgbackup verify (checksum, decompression, completeness; no scratch database on your server)"
  pgb verify
else
  echo "== pgbackup verify --test-restore: restored into a scratch database, every table's rows counted"
  pgb verify --test-restore
  echo "== pgbackup restore into a new database, shop_restored"
  pgb restore --db shop --latest --target "postgresql://postgres@127.0.0.1:$PGPORT/shop_restored" --create --yes
  psql -At -d shop_restored -c 'SELECT count(*) || '"' orders restored'"' FROM "Sales Dept"."Orders ✓"'
fi
echo "== pgbackup list"
pgb list
echo "== pgbackup status"
pgb status
echo "== checking with sha256sum -c and gzip -t, the tools anyone has"
for side in "$work"/backups/*/*.sha256; do
  (cd "$(dirname "$side")" && sha256sum -c "$(basename "$side")")
  gzip -t "${side%.sha256}"
done
echo "== done: backups are in $work/backups; the whole effective configuration: $bin --config $work/pgbackup.toml config show"
