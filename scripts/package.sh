#!/usr/bin/env bash
# Build the .deb (cargo-deb, metadata in Cargo.toml) and the .rpm (rpmbuild, packaging/rpm/
# pgbackup.spec) from one release build.
#
#   scripts/package.sh                # -> target/debian/*.deb, target/rpmbuild/RPMS/x86_64/*.rpm
#   PGBACKUP_RPM_GPG_NAME="Release Key <...>" scripts/package.sh   # sign the .rpm with that key
# Without a key the .rpm is signed with an ephemeral key made for this build, which tests the
# signing step; releases sign with the project's key.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v rpmbuild >/dev/null 2>&1 || need+=(rpm)
command -v gpg >/dev/null 2>&1 || need+=(gnupg)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
command -v cargo-deb >/dev/null 2>&1 || cargo install --locked cargo-deb

cargo build --release --locked
# The committed man pages and completions must be what this binary generates.
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/man" "$tmp/completions"
target/release/pgbackup generate man "$tmp/man"
target/release/pgbackup generate completions "$tmp/completions"
for f in "$tmp"/man/*; do cmp -s "$f" "man/$(basename "$f")" || { echo "man/$(basename "$f") is stale: run target/release/pgbackup generate man man" >&2; exit 1; }; done
for f in "$tmp"/completions/*; do cmp -s "$f" "packaging/completions/$(basename "$f")" || { echo "packaging/completions/$(basename "$f") is stale" >&2; exit 1; }; done

cargo deb --no-build 2>&1 | grep -v 'Duplicate assets' || true

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
rm -rf target/rpmbuild
rpmbuild -bb --quiet --define "_sourcedir $PWD" --define "_topdir $PWD/target/rpmbuild" \
  --define "pkg_version $version" packaging/rpm/pgbackup.spec 2>&1 | grep -v '^$' || true
rpm=$(ls target/rpmbuild/RPMS/x86_64/pgbackup-"$version"-*.rpm)
key=${PGBACKUP_RPM_GPG_NAME:-}
if [ -z "$key" ]; then
  export GNUPGHOME="$tmp/gnupg"; mkdir -m 700 "$GNUPGHOME"
  key="pgbackup ephemeral build key <build@localhost>"
  gpg --batch --quiet --passphrase '' --quick-gen-key "$key" rsa3072 sign 1d
fi
rpmsign --addsign --define "_gpg_name $key" --define "__gpg $(command -v gpg)" "$rpm" >/dev/null 2>&1 \
  || { echo "rpmsign failed" >&2; exit 1; }
gpg --batch --armor --export "$key" > target/rpmbuild/RPM-GPG-KEY-pgbackup
ls -l target/debian/*.deb "$rpm" target/rpmbuild/RPM-GPG-KEY-pgbackup
