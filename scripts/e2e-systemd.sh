#!/usr/bin/env bash
# End to end under a real systemd: boot a throwaway systemd with systemd-nspawn over an overlay
# of this machine's root, install the .deb inside, and check what a user would:
#   - the timers are listed with a next elapse, the services were not started by the install;
#   - `systemctl start pgbackup.service` makes a verified backup (password from LoadCredential=),
#     its STATUS text shows in systemd, its journal lines carry priorities, the metrics file
#     appears; `systemctl start pgbackup-verify.service` succeeds;
#   - `systemctl start pgbackup-redis.service` snapshots a Redis server, and the weekly
#     verification's test restore loads it into a throwaway redis-server inside the sandbox;
#   - a broken config makes the service fail with a journal line naming the key;
#   - `systemd-analyze security` exposure of both services (printed);
#   - upgrade keeps a modified config; purge removes the program and keeps the backups.
# Everything happens inside the container; the overlay is removed afterwards. Loopback only.
#
#   scripts/e2e-systemd.sh     # as root; builds the packages first when they are missing
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

[ "$(id -u)" = 0 ] || { echo "e2e-systemd.sh must run as root (mount, systemd-nspawn)" >&2; exit 1; }
need=()
command -v systemd-nspawn >/dev/null 2>&1 || need+=(systemd-container)
ls -d /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v pg_createcluster >/dev/null 2>&1 || need+=(postgresql-common)
[ -d /var/lib/prometheus/node-exporter ] || need+=(prometheus-node-exporter)
command -v setfacl >/dev/null 2>&1 || need+=(acl)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

deb1=$(ls target/debian/pgbackup_*-1_amd64.deb 2>/dev/null | tail -n 1 || true)
deb2=$(ls target/debian-upgrade/pgbackup_*-2_amd64.deb 2>/dev/null | tail -n 1 || true)
if [ -z "$deb1" ] || [ -z "$deb2" ] || [ target/release/pgbackup -nt "$deb1" ]; then
  command -v cargo-deb >/dev/null 2>&1 || cargo install --locked cargo-deb
  cargo build --release --locked
  # A second revision of the same build, to test an upgrade.
  mkdir -p target/debian-upgrade
  cargo deb --no-build --deb-revision 2 --output target/debian-upgrade/ 2>&1 | grep -v 'Duplicate assets' || true
  cargo deb --no-build 2>&1 | grep -v 'Duplicate assets' || true
  deb1=$(ls target/debian/pgbackup_*-1_amd64.deb | tail -n 1)
  deb2=$(ls target/debian-upgrade/pgbackup_*-2_amd64.deb | tail -n 1)
fi

work=$(mktemp -d /tmp/pgbackup-e2e.XXXXXX)
mkdir -p "$work/upper" "$work/work" "$work/merged"
mount -t overlay overlay -o "lowerdir=/,upperdir=$work/upper,workdir=$work/work" "$work/merged"
nspawn_pid=
cleanup() {
  set +e
  if [ -n "${pid1:-}" ]; then nsenter -t "$pid1" -a systemctl poweroff >/dev/null 2>&1; fi
  if [ -n "$nspawn_pid" ]; then
    for _ in $(seq 1 30); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 1; done
    kill -KILL "$nspawn_pid" 2>/dev/null
    wait "$nspawn_pid" 2>/dev/null
  fi
  umount "$work/merged" 2>/dev/null || umount -l "$work/merged"
  rm -rf "$work"
}
trap cleanup EXIT

# A fresh machine inside: no leftover pgbackup, its own machine id, the packages to install.
rm -f "$work/merged/etc/machine-id"
# Build and CI images often forbid starting services from packages; a real machine does not.
rm -f "$work/merged/usr/sbin/policy-rc.d"
rm -rf "$work/merged/var/lib/pgbackup" "$work/merged/etc/pgbackup"
cp "$deb1" "$work/merged/root/pgbackup-1.deb"
cp "$deb2" "$work/merged/root/pgbackup-2.deb"

systemd-nspawn --quiet --directory="$work/merged" --boot --register=no --keep-unit \
  --console=read-only >"$work/console.log" 2>&1 &
nspawn_pid=$!

# The container's PID 1: a systemd whose NSpid ends in 1, below our nspawn.
pid1=
for _ in $(seq 1 60); do
  for p in $(pgrep -x systemd); do
    ns=$(awk '/^NSpid:/{print $NF}' "/proc/$p/status" 2>/dev/null || true)
    pp=$(awk '/^PPid:/{print $2}' "/proc/$p/status" 2>/dev/null || true)
    if [ "$ns" = 1 ] && { [ "$pp" = "$nspawn_pid" ] || [ "$(awk '/^PPid:/{print $2}' "/proc/$pp/status" 2>/dev/null)" = "$nspawn_pid" ]; }; then
      pid1=$p
    fi
  done
  [ -n "$pid1" ] && break
  sleep 1
done
[ -n "$pid1" ] || { cat "$work/console.log"; echo "e2e: the container's systemd did not start" >&2; exit 1; }
inside() { nsenter -t "$pid1" -a "$@"; }
state=
for _ in $(seq 1 90); do
  state=$(inside systemctl is-system-running 2>/dev/null || true)
  case "$state" in running|degraded) break ;; esac
  sleep 1
done
echo "e2e: container systemd is $state"
case "$state" in running|degraded) ;; *) inside systemctl --failed --no-pager || true; exit 1 ;; esac

fail() { echo "e2e FAILED: $*" >&2; inside journalctl -u pgbackup -u pgbackup-verify --no-pager -n 50 >&2 || true; exit 1; }
ok() { echo "e2e ok: $*"; }

# PostgreSQL inside: the host's server packages, a cluster of the container's own.
ver=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
inside sh -c "pg_lsclusters -h > /tmp/clusters; grep -q '^$ver main' /tmp/clusters || pg_createcluster $ver main >/dev/null"
inside systemctl start "postgresql@$ver-main"
inside runuser -u postgres -- psql -q -c "CREATE DATABASE e2e" \
  -c "CREATE ROLE pgbackup LOGIN CREATEDB PASSWORD 'e2e-Secret-42' IN ROLE pg_read_all_data"
inside runuser -u postgres -- psql -q -d e2e -c "CREATE TABLE orders AS SELECT g AS id, md5(g::text) AS note FROM generate_series(1, 5000) g"
ok "PostgreSQL $ver running in the container"

# Install.
inside env DEBIAN_FRONTEND=noninteractive dpkg -i /root/pgbackup-1.deb >/dev/null
inside id pgbackup >/dev/null || fail "no pgbackup user"
[ "$(inside stat -c '%a %U' /var/lib/pgbackup)" = "700 pgbackup" ] || fail "/var/lib/pgbackup is not 0700 pgbackup"
[ "$(inside stat -c '%a %G' /etc/pgbackup/pgbackup.toml)" = "640 pgbackup" ] || fail "config is not 0640 root:pgbackup"
inside test -L /usr/bin/pgbackup-verify || fail "pgbackup-verify is missing"
inside systemctl is-enabled pgbackup.timer >/dev/null || fail "pgbackup.timer not enabled"
inside systemctl is-enabled pgbackup-verify.timer >/dev/null || fail "pgbackup-verify.timer not enabled"
# Enabled by the operator once a [[redis]] server is configured, never by the installation.
! inside systemctl is-enabled pgbackup-redis.timer >/dev/null 2>&1 || fail "pgbackup-redis.timer enabled by the installation"
[ "$(inside systemctl show -p ActiveState --value pgbackup.service)" = inactive ] || fail "the install started the backup"
timers=$(inside systemctl list-timers --all --no-pager)
echo "$timers" | grep -E 'pgbackup\.timer' | grep -vq 'n/a' || { echo "$timers"; fail "pgbackup.timer has no next elapse"; }
echo "$timers" | grep -E 'pgbackup-verify\.timer' | grep -vq 'n/a' || { echo "$timers"; fail "pgbackup-verify.timer has no next elapse"; }
ok "installed: user, 0700 directory, timers enabled with a next elapse, nothing started"
inside man -w pgbackup pgbackup-verify pgbackup.toml >/dev/null || fail "man pages not found"
inside systemd-analyze verify /usr/lib/systemd/system/pgbackup.service /usr/lib/systemd/system/pgbackup.timer \
  /usr/lib/systemd/system/pgbackup-verify.service /usr/lib/systemd/system/pgbackup-verify.timer \
  /usr/lib/systemd/system/pgbackup-redis.service /usr/lib/systemd/system/pgbackup-redis.timer || fail "systemd-analyze verify"
ok "systemd-analyze verify clean, man pages installed"

# Configure: password through LoadCredential=, TCP with scram as in most installations.
inside sh -c 'umask 077; printf "e2e-Secret-42\n" > /etc/pgbackup/e2e.pass'
inside sh -c 'cat > /etc/pgbackup/pgbackup.toml <<TOML
[storage]
local-dir = "/var/lib/pgbackup"
[retention]
keep-days = 7
keep-min = 2
[metrics]
textfile-dir = "/var/lib/prometheus/node-exporter"
[[database]]
name = "e2e"
url = "postgresql://pgbackup@127.0.0.1:5432/e2e"
password-credential = "e2e.pass"
TOML'
for unit in pgbackup pgbackup-verify; do
  inside mkdir -p "/etc/systemd/system/$unit.service.d"
  inside sh -c "printf '[Service]\nLoadCredential=e2e.pass:/etc/pgbackup/e2e.pass\n' > /etc/systemd/system/$unit.service.d/credentials.conf"
done
inside systemctl daemon-reload

inside timeout 300 systemctl start pgbackup.service || fail "systemctl start pgbackup.service"
[ "$(inside systemctl show -p Result --value pgbackup.service)" = success ] || fail "pgbackup.service result"
status=$(inside systemctl show -p StatusText --value pgbackup.service)
grep -q "backup finished: 1 database ok" <<<"$status" || fail "STATUS text: $status"
ok "pgbackup.service succeeded; systemd shows its STATUS: $status"
inside sh -c 'ls /var/lib/pgbackup/e2e/e2e_*.sql.gz' >/dev/null || fail "no backup file"
inside sh -c 'cd /var/lib/pgbackup/e2e && sha256sum -c --quiet e2e_*.sql.gz.sha256' || fail "sha256sum -c"
inside pgbackup verify --db e2e >/dev/null || fail "pgbackup verify"
ok "a verified backup exists"
journal=$(inside journalctl -u pgbackup.service -o json --no-pager)
grep -q '"PRIORITY":"6".*backup complete\|backup complete.*"PRIORITY":"6"' <<<"$journal" || fail "journal lacks the info line with priority 6"
j=$(inside journalctl -u pgbackup.service --no-pager); grep -q 'e2e-Secret-42' <<<"$j" && fail "the password reached the journal"
ok "journal has pgbackup's lines with priorities, no password"
inside test -s /var/lib/prometheus/node-exporter/pgbackup.prom || fail "no metrics file"
inside grep -q 'pgbackup_last_run_success{database="e2e"} 1' /var/lib/prometheus/node-exporter/pgbackup.prom || fail "metrics content"
ok "metrics file written"

inside timeout 300 systemctl start pgbackup-verify.service || fail "systemctl start pgbackup-verify.service"
j=$(inside journalctl -u pgbackup-verify.service --no-pager); grep -q 'test-restore' <<<"$j" || true
inside grep -q 'pgbackup_last_verify_success{database="e2e"} 1' /var/lib/prometheus/node-exporter/pgbackup.prom || fail "verify metric"
ok "pgbackup-verify.service (test restore) succeeded"
out=$(inside runuser -u pgbackup -- pgbackup check --max-age 1 --no-connect || true); grep -q '^PGBACKUP OK' <<<"$out" || fail "pgbackup check as the pgbackup user: $out"
inside runuser -u pgbackup -- pgbackup status >/dev/null || fail "pgbackup status as the pgbackup user"
ok "check and status work for the pgbackup user"

# Redis: pgbackup-redis.service (hardened; the password from LoadCredential=) snapshots a
# server over loopback TCP, and pgbackup-verify.service test-restores the snapshot into a
# throwaway redis-server started inside its sandbox.
inside sh -c 'umask 077; printf "e2e-Redis-77\n" > /etc/pgbackup/redis.pass
printf "port 6390\nbind 127.0.0.1\nrequirepass e2e-Redis-77\nsave \"\"\nappendonly no\ndaemonize yes\ndir /tmp\nrepl-diskless-sync-delay 0\nlogfile /tmp/redis-e2e.log\n" > /root/redis-e2e.conf'
inside redis-server /root/redis-e2e.conf
for _ in $(seq 1 50); do inside env REDISCLI_AUTH=e2e-Redis-77 redis-cli -p 6390 PING 2>/dev/null | grep -q PONG && break; sleep 0.2; done
inside sh -c 'printf "SET a 1\nHSET h f v\nSELECT 2\nSET b 2\n" | REDISCLI_AUTH=e2e-Redis-77 redis-cli -p 6390 >/dev/null'
inside sh -c 'cat >> /etc/pgbackup/pgbackup.toml <<TOML
[[redis]]
name = "cache"
url = "redis://127.0.0.1:6390"
password-credential = "redis.pass"
TOML'
for unit in pgbackup pgbackup-verify pgbackup-redis; do
  inside mkdir -p "/etc/systemd/system/$unit.service.d"
  inside sh -c "printf '[Service]\nLoadCredential=e2e.pass:/etc/pgbackup/e2e.pass\nLoadCredential=redis.pass:/etc/pgbackup/redis.pass\n' > /etc/systemd/system/$unit.service.d/credentials.conf"
done
inside systemctl daemon-reload
inside timeout 300 systemctl start pgbackup-redis.service || { inside journalctl -u pgbackup-redis.service --no-pager | tail -n 20; fail "systemctl start pgbackup-redis.service"; }
inside sh -c 'cd /var/lib/pgbackup/cache && ls cache_*.rdb.gz >/dev/null && sha256sum -c --quiet cache_*.rdb.gz.sha256' || fail "no verified Redis snapshot"
inside sh -c 'ls /var/lib/pgbackup/e2e/ | grep -c "\.sql\.gz$"' | grep -qx 1 || fail "pgbackup-redis.service dumped PostgreSQL too"
keys=$(inside sh -c 'python3 -c "import json,sys; print(sum(t[\"rows\"] for t in json.load(open(sys.argv[1]))[\"tables\"]))" /var/lib/pgbackup/cache/cache_*.rdb.gz.json')
[ "$keys" = 3 ] || fail "the snapshot's manifest counts $keys keys, not 3"
j=$(inside journalctl -u pgbackup-redis.service --no-pager); grep -q 'e2e-Redis-77' <<<"$j" && fail "the Redis password reached the journal"
ok "pgbackup-redis.service took a verified snapshot (3 keys), PostgreSQL left alone, no password in the journal"
inside timeout 300 systemctl start pgbackup-verify.service || { inside journalctl -u pgbackup-verify.service --no-pager | tail -n 20; fail "pgbackup-verify.service with a Redis snapshot"; }
# The verification history in the snapshot's manifest holds the test restore's result.
inside sh -c 'grep -q "loaded by a throwaway redis-server" /var/lib/pgbackup/cache/cache_*.rdb.gz.json' \
  || { inside sh -c 'cat /var/lib/pgbackup/cache/cache_*.rdb.gz.json'; fail "no Redis test restore in the snapshot's verification history"; }
inside grep -q 'pgbackup_last_verify_success{database="cache"} 1' /var/lib/prometheus/node-exporter/pgbackup.prom || fail "Redis verify metric"
ok "pgbackup-verify.service test-restored the Redis snapshot in its sandbox"
inside sh -c 'kill $(pidof redis-server) 2>/dev/null' || true

for unit in pgbackup.service pgbackup-verify.service pgbackup-redis.service; do
  exposure=$(inside systemd-analyze security --no-pager "$unit" | tail -n 1)
  echo "e2e: $exposure"
done

# A broken config: the service fails and the journal names the key.
inside cp /etc/pgbackup/pgbackup.toml /root/good.toml
inside sh -c 'printf "\n[backup]\ncompresion-level = 5\n" >> /etc/pgbackup/pgbackup.toml'
if inside systemctl start pgbackup.service 2>/dev/null; then fail "a broken config did not fail the service"; fi
[ "$(inside systemctl show -p ExecMainStatus --value pgbackup.service)" = 78 ] || fail "exit status is not 78"
j=$(inside journalctl -u pgbackup.service --no-pager); grep -q 'compresion-level' <<<"$j" || fail "journal does not name the key"
ok "broken config: service failed with 78, journal names compresion-level"
inside cp /root/good.toml /etc/pgbackup/pgbackup.toml

# Upgrade keeps the modified config; purge keeps the backups.
inside sh -c 'printf "# local change\n" >> /etc/pgbackup/pgbackup.toml'
inside env DEBIAN_FRONTEND=noninteractive dpkg -i --force-confold /root/pgbackup-2.deb >/dev/null
inside grep -q '# local change' /etc/pgbackup/pgbackup.toml || fail "the upgrade overwrote the config"
inside systemctl is-enabled pgbackup.timer >/dev/null || fail "timer not enabled after upgrade"
[ "$(inside dpkg-query -W -f='${Version}' pgbackup)" != "" ] || fail "not installed after upgrade"
ok "upgrade to $(inside dpkg-query -W -f='${Version}' pgbackup) kept the local config"
inside env DEBIAN_FRONTEND=noninteractive dpkg --purge pgbackup >/dev/null 2>&1
inside test ! -e /usr/bin/pgbackup || fail "purge left /usr/bin/pgbackup"
inside test ! -e /etc/pgbackup/pgbackup.toml || fail "purge left the config"
inside sh -c 'ls /var/lib/pgbackup/e2e/e2e_*.sql.gz' >/dev/null || fail "purge deleted the backups"
ok "purge removed the program and config, kept the backups"
echo "e2e: all checks passed"
