#!/usr/bin/env bash
# Start or stop a throwaway PostgreSQL cluster on 127.0.0.1 and a free port.
#
#   scripts/pg-ephemeral.sh start DIR [PASSWORD]   # prints PGHOST/PGPORT/PGUSER lines to source
#   scripts/pg-ephemeral.sh stop DIR
#
# As root, the cluster runs as the `postgres` user (initdb refuses root). Local socket
# connections are trusted; TCP connections need the password (scram-sha-256).
set -euo pipefail

cmd=${1:?usage: $0 start|stop DIR [PASSWORD]}
dir=${2:?usage: $0 start|stop DIR [PASSWORD]}
password=${3:-pgbackup-demo}

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bindir" ] || { echo "no PostgreSQL server found under /usr/lib/postgresql; apt-get install postgresql" >&2; exit 1; }

as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
start)
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  pwfile=$(mktemp); echo "$password" > "$pwfile"; chmod 644 "$pwfile"
  as_pg "$bindir/initdb" -D "$dir/data" -U postgres --pwfile="$pwfile" -A scram-sha-256 \
      --auth-local=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  rm -f "$pwfile"
  as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c fsync=off" \
      start >/dev/null \
    || { cat "$dir/server.log" >&2; exit 1; }
  echo "export PGHOST=$dir PGPORT=$port PGUSER=postgres PGBINDIR=$bindir"
  ;;
stop)
  [ -d "$dir/data" ] && as_pg "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
  ;;
*) echo "usage: $0 start|stop DIR [PASSWORD]" >&2; exit 2 ;;
esac
