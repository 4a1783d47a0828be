#!/usr/bin/env bash
# A real backup in one command: installs what is missing, builds pgbackup, starts a throwaway
# PostgreSQL with sample data (pgbench tables plus a few odd ones), backs it up, lists the
# backups and checks them with the standard tools. Set DATABASE_URL to back up your own
# database instead of the throwaway one (its password may be in the URL or in DB_PASSWORD_FILE).
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

echo "== building pgbackup (release)"
cargo build --release --locked -q
bin=$root/target/release/pgbackup

work=$root/.tmp/demo
mkdir -p "$work"

cat > "$work/pgbackup.toml" <<TOML
[storage]
local-dir = "$work/backups"
TOML

if [ -z "${DATABASE_URL:-}" ]; then
  echo "== starting a throwaway PostgreSQL"
  pgdir=${TMPDIR:-/tmp}/pgbackup-demo-pg  # outside the checkout: the postgres user must reach it
  "$root/scripts/pg-ephemeral.sh" stop "$pgdir"
  eval "$("$root/scripts/pg-ephemeral.sh" start "$pgdir")"
  trap '"$root/scripts/pg-ephemeral.sh" stop "$pgdir"' EXIT
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

echo "== pgbackup config show"
"$bin" --config "$work/pgbackup.toml" config show
echo "== pgbackup backup"
"$bin" --config "$work/pgbackup.toml" backup --description "demo run"
echo "== pgbackup list"
"$bin" --config "$work/pgbackup.toml" list
echo "== checking with sha256sum -c and gzip -t"
for side in "$work"/backups/*/*.sha256; do
  (cd "$(dirname "$side")" && sha256sum -c "$(basename "$side")")
  gzip -t "${side%.sha256}"
done
echo "== done: backups are in $work/backups"
