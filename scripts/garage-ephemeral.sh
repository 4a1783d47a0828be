#!/usr/bin/env bash
# Start or stop a throwaway single-node Garage (S3-compatible server) on 127.0.0.1 and free
# ports, with a key that may create buckets. Garage speaks plain http; as in production, TLS is
# done in front of it: stunnel on another port with a certificate of a throwaway private CA
# (tests/fixtures/tls.py), so the endpoint is https and PGBACKUP_TEST_S3_CA_FILE names the CA.
#
#   scripts/garage-ephemeral.sh start DIR   # prints PGBACKUP_TEST_S3_* lines to eval
#   scripts/garage-ephemeral.sh stop DIR
#   GARAGE_TLS=0 ...                        # plain http, no stunnel
#
# garage must be on PATH or in /opt/garage/bin (scripts/test-s3-garage.sh --install).
# Blocks are stored uncompressed: pgbackup's objects are gzip already.
set -euo pipefail
export PATH="$PATH:/opt/garage/bin"
cmd=${1:?usage: $0 start|stop DIR}
dir=${2:?usage: $0 start|stop DIR}

case "$cmd" in
start)
  command -v garage >/dev/null 2>&1 || { echo "garage is not installed: scripts/test-s3-garage.sh --install" >&2; exit 69; }
  mkdir -p "$dir"
  free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
  s3_port=$(free_port); rpc_port=$(free_port); admin_port=$(free_port)
  cat > "$dir/garage.toml" <<TOML
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = 1
compression_level = "none"
rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3_port"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$admin_port"
TOML
  g() { garage -c "$dir/garage.toml" "$@"; }
  setsid garage -c "$dir/garage.toml" server > "$dir/garage.log" 2>&1 < /dev/null &
  echo $! > "$dir/garage.pid"
  node=
  for _ in $(seq 1 60); do
    node=$(g status 2>/dev/null | grep -oE '^[0-9a-f]{16}' | head -n1 || true)
    [ -n "$node" ] && break
    sleep 0.5
  done
  [ -n "$node" ] || { echo "garage did not start:" >&2; cat "$dir/garage.log" >&2; exit 1; }
  g layout assign -z dc1 -c 1G "$node" >/dev/null
  g layout apply --version 1 >/dev/null
  keyinfo=$(g key create pgbackup-test)
  key_id=$(echo "$keyinfo" | awk -F': *' 'tolower($1) ~ /key id/ {print $2; exit}')
  secret=$(echo "$keyinfo" | awk -F': *' 'tolower($1) ~ /secret key/ {print $2; exit}')
  [ -n "$key_id" ] && [ -n "$secret" ] || { echo "cannot read the new key from garage's output" >&2; exit 1; }
  g key allow --create-bucket pgbackup-test >/dev/null
  # A key with no permission on any bucket: writes are denied.
  denied=$(g key create pgbackup-denied)
  denied_id=$(echo "$denied" | awk -F': *' 'tolower($1) ~ /key id/ {print $2; exit}')
  denied_secret=$(echo "$denied" | awk -F': *' 'tolower($1) ~ /secret key/ {print $2; exit}')
  for _ in $(seq 1 60); do
    curl -s -o /dev/null "http://127.0.0.1:$s3_port/" && break
    sleep 0.5
  done
  if [ "${GARAGE_TLS:-1}" = 1 ]; then
    command -v stunnel4 >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends stunnel4 >/dev/null; } >&2
    mkdir -p "$dir/tls"
    "$(dirname "$0")/../.venv/bin/python3" "$(dirname "$0")/../tests/fixtures/tls.py" gen "$dir/tls"
    tls_port=$(free_port)
    cat > "$dir/stunnel.conf" <<CONF
foreground = no
pid = $dir/stunnel.pid
output = $dir/stunnel.log
[s3]
accept = 127.0.0.1:$tls_port
connect = 127.0.0.1:$s3_port
cert = $dir/tls/server.pem
key = $dir/tls/server.key
CONF
    stunnel4 "$dir/stunnel.conf" >&2
    for _ in $(seq 1 60); do
      curl -s -o /dev/null --cacert "$dir/tls/ca.pem" "https://127.0.0.1:$tls_port/" && break
      sleep 0.5
    done
    echo "export PGBACKUP_TEST_S3_ENDPOINT=https://127.0.0.1:$tls_port"
    echo "export PGBACKUP_TEST_S3_CA_FILE=$dir/tls/ca.pem"
  else
    echo "export PGBACKUP_TEST_S3_ENDPOINT=http://127.0.0.1:$s3_port"
  fi
  echo "export PGBACKUP_TEST_S3_ACCESS_KEY=$key_id"
  echo "export PGBACKUP_TEST_S3_SECRET_KEY=$secret"
  echo "export PGBACKUP_TEST_S3_REGION=garage"
  echo "export PGBACKUP_TEST_S3_DENIED_ACCESS_KEY=$denied_id"
  echo "export PGBACKUP_TEST_S3_DENIED_SECRET_KEY=$denied_secret"
  ;;
stop)
  [ -f "$dir/stunnel.pid" ] && kill "$(cat "$dir/stunnel.pid")" 2>/dev/null || true
  if [ -f "$dir/garage.pid" ]; then
    kill "$(cat "$dir/garage.pid")" 2>/dev/null || true
    sleep 0.5
  fi
  rm -rf "$dir"
  ;;
*)
  echo "usage: $0 start|stop DIR" >&2
  exit 2
  ;;
esac
