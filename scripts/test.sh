#!/usr/bin/env bash
# Everything the tests need, then the tests: on a fresh Debian 12 machine this installs the
# missing packages (PostgreSQL server and client, gzip, promtool from `prometheus`,
# `prometheus-node-exporter`), then runs fmt, clippy and the whole test suite against real
# PostgreSQL clusters and a real node_exporter that the tests start themselves on 127.0.0.1.
#
#   scripts/test.sh            # as root (or with sudo available for apt-get)
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
ls -d /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
command -v pg_dump >/dev/null 2>&1 || need+=(postgresql-client)
command -v zcat >/dev/null 2>&1 || need+=(gzip)
command -v zstd >/dev/null 2>&1 || need+=(zstd)
# The age CLI (and ssh-keygen) decrypt what pgbackup encrypts, in the encryption tests.
command -v age >/dev/null 2>&1 || need+=(age)
command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
command -v sha256sum >/dev/null 2>&1 || need+=(coreutils)
command -v setsid >/dev/null 2>&1 || need+=(util-linux)
command -v pkill >/dev/null 2>&1 || need+=(procps)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v script >/dev/null 2>&1 || need+=(bsdutils)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-node-exporter >/dev/null 2>&1 || need+=(prometheus-node-exporter)
command -v mandoc >/dev/null 2>&1 || need+=(mandoc)
# Redis snapshots (#16): real redis-server 7 instances on private sockets, redis-cli to load
# them, redis-check-rdb as the independent reader of what pgbackup fetched.
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
if [ ${#need[@]} -gt 0 ]; then
  echo "test.sh: installing ${need[*]}"
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# A real S3-compatible server for the tests: moto (signature checking on) and awscli as the
# independent client, in a venv of the repository's own (.venv, ignored by git).
scripts/test-venv.sh

# Two builds: clippy checks (metadata only) and the test build (machine code) cannot share
# their compiled crates, only the dependencies' build scripts (the C of ring and zstd), which
# clippy runs first. Cold on 2 cores: about 75 s, then about 65 s; warm: seconds.
phase() { echo "== $1 (${SECONDS}s so far)"; }
phase "cargo fmt --check"
cargo fmt --all -- --check
phase "cargo clippy (cold: about 75 s on 2 cores)"
cargo clippy --all-targets --locked -- -D warnings
phase "cargo test (cold build: about 65 s on 2 cores; the suite: about 7 min)"
cargo test --locked --all-targets -- "$@"
echo "== tests passed in ${SECONDS}s"
