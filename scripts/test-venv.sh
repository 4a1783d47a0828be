#!/usr/bin/env bash
# The repository's own Python venv (.venv, ignored by git) with the S3 test tools: moto (the S3
# server of the tests, signature checking on) and awscli (the independent client). Used by
# test.sh, test-s3-garage.sh and bench-s3.sh; the versions are pinned here only.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -m venv --help >/dev/null 2>&1; then
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi
if [ ! -x .venv/bin/moto_server ] || [ ! -x .venv/bin/aws ]; then
  echo "test-venv.sh: installing moto[server] and awscli into .venv"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check "moto[server]>=5,<6" "awscli>=1.32,<2"
fi
