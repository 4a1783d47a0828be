#!/usr/bin/env bash
# The S3 test suites (tests/integration/s3.rs and the storage conformance suite) against
# Garage, a production-grade S3-compatible server, as a second server besides moto. Garage runs
# as a single node on 127.0.0.1 (free ports, a temp directory), with a key that may create
# buckets; the tests create their own buckets with awscli.
#
#   scripts/test-s3-garage.sh              # garage must be on PATH or in /opt/garage/bin
#   scripts/test-s3-garage.sh --install    # cargo install garage first (takes 20-30 min)
#
# Not part of scripts/test.sh / CI: building Garage takes longer than the whole CI budget.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export PATH="$PATH:/opt/garage/bin"

if [ "${1:-}" = "--install" ]; then
  command -v garage >/dev/null 2>&1 || cargo install garage --locked --root /opt/garage
  shift
fi
if ! command -v garage >/dev/null 2>&1; then
  echo "test-s3-garage.sh: garage is not installed; run with --install (cargo install garage, 20-30 min)" >&2
  exit 69
fi
if [ ! -x .venv/bin/aws ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check "moto[server]>=5,<6" "awscli>=1.32,<2"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work=$(mktemp -d /tmp/pgbackup-garage.XXXXXX)
s3_port=$(free_port); rpc_port=$(free_port); admin_port=$(free_port)
cat > "$work/garage.toml" <<TOML
metadata_dir = "$work/meta"
data_dir = "$work/data"
db_engine = "sqlite"
replication_factor = 1
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
g() { garage -c "$work/garage.toml" "$@"; }

garage -c "$work/garage.toml" server > "$work/garage.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 60); do
  g status >/dev/null 2>&1 && break
  sleep 0.5
done
node=$(g status 2>/dev/null | grep -oE '^[0-9a-f]{16}' | head -n1)
[ -n "$node" ] || { echo "garage did not start:"; cat "$work/garage.log"; exit 1; }
g layout assign -z dc1 -c 1G "$node" >/dev/null
g layout apply --version 1 >/dev/null
keyinfo=$(g key create pgbackup-test)
key_id=$(echo "$keyinfo" | awk -F': *' 'tolower($1) ~ /key id/ {print $2; exit}')
secret=$(echo "$keyinfo" | awk -F': *' 'tolower($1) ~ /secret key/ {print $2; exit}')
[ -n "$key_id" ] && [ -n "$secret" ] || { echo "cannot read the key from: $keyinfo" | sed 's/Secret key:.*/Secret key: ***/'; exit 1; }
g key allow --create-bucket pgbackup-test >/dev/null
for _ in $(seq 1 60); do
  curl -s -o /dev/null "http://127.0.0.1:$s3_port/" && break
  sleep 0.5
done
echo "== garage $(garage --version | awk '{print $2}') on 127.0.0.1:$s3_port"

export PGBACKUP_TEST_S3_ENDPOINT="http://127.0.0.1:$s3_port"
export PGBACKUP_TEST_S3_ACCESS_KEY="$key_id"
export PGBACKUP_TEST_S3_SECRET_KEY="$secret"
export PGBACKUP_TEST_S3_REGION=garage
cd "$root"
cargo test --locked --test integration -- s3:: storage:: "$@"
