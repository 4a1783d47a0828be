#!/usr/bin/env bash
# Check the built packages without installing them: lintian on the .deb, rpmlint on the .rpm
# (no errors but the ones listed below, each with its reason), and the contents of both.
# Installation, upgrade and purge are tested under a real systemd by scripts/e2e-systemd.sh.
#
#   scripts/package.sh && scripts/test-package.sh
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v lintian >/dev/null 2>&1 || need+=(lintian)
command -v rpmlint >/dev/null 2>&1 || need+=(rpmlint)
command -v rpm >/dev/null 2>&1 || need+=(rpm)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

deb=$(ls target/debian/pgbackup_*_amd64.deb | tail -n 1)
rpm=$(ls target/rpmbuild/RPMS/x86_64/pgbackup-*.rpm | tail -n 1)
fail=0

echo "== lintian $deb"
lint=$(lintian --tag-display-limit 0 "$deb" 2>&1 | grep -v 'running with root privileges' || true)
echo "$lint"
# initial-upload-closes-no-bugs: the first upload would close an ITP bug in Debian's tracker;
# this package is not in Debian.
if echo "$lint" | grep '^E:'; then echo "lintian reports errors" >&2; fail=1; fi

echo "== rpmlint $rpm"
# packaging/rpm/rpmlint.toml lists the accepted findings with their reasons.
# The signing key (the build's, see package.sh) goes into a throwaway rpm database, which
# rpmlint and rpm -K read through $HOME/.rpmmacros; the host's rpm database is not touched.
keydb=$(mktemp -d); trap 'rm -rf "$keydb"' EXIT
rpm --dbpath "$keydb" --initdb
rpm --dbpath "$keydb" --import target/rpmbuild/RPM-GPG-KEY-pgbackup
printf '%%_dbpath %s\n' "$keydb" > "$keydb/.rpmmacros"
rlint=$(HOME=$keydb rpmlint -c packaging/rpm/rpmlint.toml "$rpm" 2>&1 || true)
echo "$rlint"
if echo "$rlint" | grep ': E: '; then echo "rpmlint reports errors" >&2; fail=1; fi
sig=$(HOME=$keydb rpm -K "$rpm" 2>&1 || true); grep -q 'signatures OK' <<<"$sig" || { echo "rpm signature check: $sig" >&2; fail=1; }
export HOME=$keydb

echo "== contents"
expect=(
  /usr/bin/pgbackup /usr/bin/pgbackup-verify /etc/pgbackup/pgbackup.toml
  /usr/lib/systemd/system/pgbackup.service /usr/lib/systemd/system/pgbackup.timer
  /usr/lib/systemd/system/pgbackup-verify.service /usr/lib/systemd/system/pgbackup-verify.timer
  /usr/lib/systemd/system/pgbackup-redis.service /usr/lib/systemd/system/pgbackup-redis.timer
  /usr/lib/sysusers.d/pgbackup.conf /usr/lib/tmpfiles.d/pgbackup.conf
  /usr/share/man/man1/pgbackup.1 /usr/share/man/man1/pgbackup-verify.1 /usr/share/man/man5/pgbackup.toml.5
  /usr/share/bash-completion/completions/pgbackup /usr/share/fish/vendor_completions.d/pgbackup.fish
  /usr/share/pgbackup/prometheus/pgbackup-rules.yml /usr/share/doc/pgbackup/README.md
)
debfiles=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|; s|\.gz$||')
rpmfiles=$(rpm -qlp "$rpm" | sed 's|\.gz$||')
for f in "${expect[@]}"; do
  grep -qx "$f" <<<"$debfiles" || { echo "missing in .deb: $f" >&2; fail=1; }
  grep -qx "$f" <<<"$rpmfiles" || { echo "missing in .rpm: $f" >&2; fail=1; }
done
conf=$(dpkg-deb -I "$deb" conffiles); grep -qx /etc/pgbackup/pgbackup.toml <<<"$conf" || { echo ".deb: pgbackup.toml is not a conffile" >&2; fail=1; }
conf=$(rpm -qp --configfiles "$rpm"); grep -qx /etc/pgbackup/pgbackup.toml <<<"$conf" || { echo ".rpm: pgbackup.toml is not %config" >&2; fail=1; }
[ $fail = 0 ] && echo "package checks passed: $(basename "$deb"), $(basename "$rpm")"
exit $fail
