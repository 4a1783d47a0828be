#!/usr/bin/env bash
# The S3 test suites (s3, s3_tls and the storage conformance suite) against Garage, a
# production-grade S3-compatible server, as a second server besides moto. Garage runs as a
# single node on 127.0.0.1 (free ports, a temp directory) behind stunnel, so the endpoint is
# https with a private CA (GARAGE_TLS=0: plain http), with a key that may create buckets; the
# tests create their own buckets with awscli.
#
#   scripts/test-s3-garage.sh              # garage must be on PATH or in /opt/garage/bin
#   scripts/test-s3-garage.sh --install    # cargo install garage first (takes 20-30 min)
#   scripts/test-s3-garage.sh s3::keep     # only the tests whose names match
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
scripts/test-venv.sh

work=$(mktemp -d /tmp/pgbackup-garage.XXXXXX)
trap '"$root/scripts/garage-ephemeral.sh" stop "$work"' EXIT
eval "$("$root/scripts/garage-ephemeral.sh" start "$work")"
echo "== garage $(garage --version | awk '{print $2}') at $PGBACKUP_TEST_S3_ENDPOINT"
cd "$root"
# Test name filters may be given; by default every S3 test and the conformance suites.
[ $# -gt 0 ] || set -- s3:: s3_tls:: storage::
cargo test --locked --test integration -- "$@"
