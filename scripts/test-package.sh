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
rpm=$(ls target/generate-rpm/pgbackup-*.rpm | tail -n 1)
fail=0

echo "== lintian $deb"
lint=$(lintian --tag-display-limit 0 "$deb" 2>&1 | grep -v 'running with root privileges' || true)
echo "$lint"
# initial-upload-closes-no-bugs: the first upload would close an ITP bug in Debian's tracker;
# this package is not in Debian.
if echo "$lint" | grep '^E:'; then echo "lintian reports errors" >&2; fail=1; fi

echo "== rpmlint $rpm"
rlint=$(rpmlint "$rpm" 2>&1 || true)
echo "$rlint"
# Errors cargo-generate-rpm cannot avoid, and why they are accepted:
#   no-signature           packages are signed by the release pipeline with the project's key
#   no-packager-tag, no-group-tag, no-changelogname-tag, no-buildhost-tag
#                          cargo-generate-rpm writes no such tags (Group is obsolete in Fedora)
#   bad-manual-page-folder rpmlint reads pgbackup.toml.5 as section "toml"; the page is
#                          pgbackup.toml(5), section 5, as its name says
allowed='no-signature|no-packager-tag|no-group-tag|no-changelogname-tag|no-buildhost-tag|bad-manual-page-folder'
if echo "$rlint" | grep ': E: ' | grep -Ev ": E: ($allowed)( |$)"; then
  echo "rpmlint reports errors beyond the accepted ones" >&2; fail=1
fi

echo "== contents"
expect=(
  /usr/bin/pgbackup /usr/bin/pgbackup-verify /etc/pgbackup/pgbackup.toml
  /usr/lib/systemd/system/pgbackup.service /usr/lib/systemd/system/pgbackup.timer
  /usr/lib/systemd/system/pgbackup-verify.service /usr/lib/systemd/system/pgbackup-verify.timer
  /usr/lib/sysusers.d/pgbackup.conf /usr/lib/tmpfiles.d/pgbackup.conf
  /usr/share/man/man1/pgbackup.1 /usr/share/man/man1/pgbackup-verify.1 /usr/share/man/man5/pgbackup.toml.5
  /usr/share/bash-completion/completions/pgbackup /usr/share/fish/vendor_completions.d/pgbackup.fish
  /usr/share/pgbackup/prometheus/pgbackup-rules.yml /usr/share/doc/pgbackup/README.md
)
debfiles=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|; s|\.gz$||')
rpmfiles=$(rpm -qlp "$rpm")
for f in "${expect[@]}"; do
  echo "$debfiles" | grep -qx "$f" || { echo "missing in .deb: $f" >&2; fail=1; }
  echo "$rpmfiles" | grep -qx "$f" || { echo "missing in .rpm: $f" >&2; fail=1; }
done
dpkg-deb -I "$deb" conffiles | grep -qx /etc/pgbackup/pgbackup.toml || { echo ".deb: pgbackup.toml is not a conffile" >&2; fail=1; }
rpm -qp --configfiles "$rpm" | grep -qx /etc/pgbackup/pgbackup.toml || { echo ".rpm: pgbackup.toml is not %config" >&2; fail=1; }
[ $fail = 0 ] && echo "package checks passed: $(basename "$deb"), $(basename "$rpm")"
exit $fail
