#!/usr/bin/env bash
# Build the .deb (cargo-deb) and the .rpm (cargo-generate-rpm) from a release build.
#
#   scripts/package.sh                # -> target/debian/*.deb, target/generate-rpm/*.rpm
#   DEB_REVISION=2 scripts/package.sh # another package revision (used by the upgrade test)
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-deb >/dev/null 2>&1 || cargo install --locked cargo-deb
command -v cargo-generate-rpm >/dev/null 2>&1 || cargo install --locked cargo-generate-rpm

cargo build --release --locked
# The committed man pages and completions must be what this binary generates.
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/man" "$tmp/completions"
target/release/pgbackup generate man "$tmp/man"
target/release/pgbackup generate completions "$tmp/completions"
for f in "$tmp"/man/*; do cmp -s "$f" "man/$(basename "$f")" || { echo "man/$(basename "$f") is stale: run target/release/pgbackup generate man man" >&2; exit 1; }; done
for f in "$tmp"/completions/*; do cmp -s "$f" "packaging/completions/$(basename "$f")" || { echo "packaging/completions/$(basename "$f") is stale" >&2; exit 1; }; done

cargo deb --no-build ${DEB_REVISION:+--deb-revision "$DEB_REVISION"}
cargo generate-rpm ${DEB_REVISION:+--set-metadata "release = \"$DEB_REVISION\""}
ls -l target/debian/*.deb target/generate-rpm/*.rpm
