#!/usr/bin/env bash
# The Debian package, built and exercised the way an operator uses it: `cargo deb` builds
# target/debian/backup-exporter_<version>-1_<arch>.deb, which is installed on this machine
# (the exporter runs, the shipped configuration passes --check-config.skip-secrets as the
# service user, the unit is in /lib/systemd/system and neither enabled nor started),
# installed again (the upgrade path of the maintainer scripts), then removed and purged.
# Called at the end of scripts/test-all.sh; needs root and dpkg/apt-get (a Debian-like
# machine) and skips otherwise. Leaves the machine as it found it: the package purged, the
# system user it created deleted, no policy-rc.d of its own. Safe to run again after a
# failure (a leftover package from an aborted run is purged first).
#
# Fast on purpose (a few seconds once cargo-deb is installed; installing cargo-deb takes
# about 1.5 minutes on two cores): the package is assembled from the debug binary that
# `cargo test` has just built (`cargo deb --no-build`, the binary hard-linked where the
# `deb-ci` profile would put it) instead of a release build with fat LTO, which takes
# several minutes here. What is tested is the packaging (assets, conffile, unit, maintainer
# scripts); a release package is `cargo deb` (docs/deploy.md#debian-package).
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DEB_VERSION=3.8.0
PKG=backup-exporter
UNIT=/lib/systemd/system/backup-exporter.service
CONFIG=/etc/backup-exporter/backup-exporter.yaml
started=$(date +%s)

if [ "$(id -u)" -ne 0 ] || ! command -v dpkg >/dev/null || ! command -v apt-get >/dev/null; then
  echo "test-deb: skipped (needs root, dpkg and apt-get)"
  exit 0
fi

fail() {
  echo "test-deb: FAILED: $*" >&2
  exit 1
}

# dpkg's status of the package: "install ok installed", "deinstall ok config-files", or ""
# when dpkg does not know it (or knows it as not installed).
status() {
  local s
  s=$(dpkg-query -W -f '${Status}' "$PKG" 2>/dev/null) || s=
  case "$s" in *not-installed) s= ;; esac
  echo "$s"
}

# Left over by an aborted run: start from a machine without the package.
leftover=no
if [ -n "$(status)" ]; then
  leftover=yes
  echo "test-deb: purging a $PKG package left by an earlier run"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 purge -y -qq "$PKG" >/dev/null
fi

# The system user goes at the end unless it was there before (and not made by a leftover
# package of an earlier run).
user_existed=no
getent passwd "$PKG" >/dev/null && [ "$leftover" = no ] && user_existed=yes
own_policy=no
cleanup() {
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 purge -y -qq "$PKG" >/dev/null 2>&1 || true
  if [ "$user_existed" = no ] && getent passwd "$PKG" >/dev/null; then
    userdel "$PKG" || true
  fi
  if [ "$user_existed" = no ] && getent group "$PKG" >/dev/null; then
    groupdel "$PKG" || true
  fi
  if [ "$own_policy" = yes ]; then
    rm -f /usr/sbin/policy-rc.d
  fi
  rm -rf target/deb-ci target/"$PKG"  # the binary link; cargo-deb's staging directory
}
trap cleanup EXIT

# No service starts while the package is installed, even on a machine where systemd runs.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  own_policy=yes
fi

if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $CARGO_DEB_VERSION" ]; then
  echo "test-deb: installing cargo-deb $CARGO_DEB_VERSION"
  cargo install --locked --quiet cargo-deb --version "$CARGO_DEB_VERSION"
fi

# The packaged unit is the repository's unit but for its header, ExecStart= and
# Documentation=: hardening added to one must reach the other.
strip_unit() { grep -v -e '^#' -e '^ExecStart=' -e '^Documentation=' "$1"; }
diff -u <(strip_unit deploy/systemd/backup-exporter.service) \
  <(strip_unit deploy/debian/backup-exporter.service) ||
  fail "deploy/debian/backup-exporter.service drifted from deploy/systemd/backup-exporter.service"

# The exporter package only (`-p`): the workspace's simulator crate is not shipped.
cargo build --locked --quiet -p "$PKG" --bin backup-exporter
rm -rf target/deb-ci target/debian/"$PKG"_*.deb
mkdir -p target/deb-ci
ln -f target/debug/backup-exporter target/deb-ci/backup-exporter
cargo deb -p "$PKG" --locked --profile deb-ci --no-build --fast --quiet >/dev/null
deb=$(ls target/debian/"$PKG"_*.deb)
version=$(dpkg-deb -f "$deb" Version)
echo "test-deb: built $deb"

DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "./$deb" >/dev/null
[ "$(status)" = "install ok installed" ] || fail "$PKG is not installed"

# The binary, its version, and the shipped configuration: valid without the production
# secrets, readable by the service user, and refused without the flag (no token file here).
[ "$(command -v backup-exporter)" = /usr/bin/backup-exporter ] || fail "backup-exporter is not /usr/bin/backup-exporter"
out=$(backup-exporter --version)
[[ "$out" == "backup-exporter"*"${version%-*}"* ]] || fail "--version says: $out"
getent passwd "$PKG" >/dev/null || fail "no $PKG system user"
[ "$(stat -c %a /etc/backup-exporter/credentials)" = 700 ] || fail "/etc/backup-exporter/credentials is not 0700"
[[ "$(dpkg-query -W -f '${Conffiles}' "$PKG")" == *" $CONFIG "* ]] || fail "$CONFIG is not a conffile"
runuser -u "$PKG" -- backup-exporter --check-config --check-config.skip-secrets --config "$CONFIG" >/dev/null ||
  fail "$CONFIG fails --check-config.skip-secrets"
code=0
backup-exporter --check-config --config "$CONFIG" >/dev/null || code=$?
[ "$code" = 2 ] || fail "--check-config without the token file exited $code, not 2"

# The unit, where systemd looks for it, pointing at the packaged paths; not enabled.
[ -f "$UNIT" ] || fail "$UNIT is missing"
grep -q '^ExecStart=/usr/bin/backup-exporter ' "$UNIT" || fail "$UNIT: ExecStart is not /usr/bin/backup-exporter"
grep -q "^    --config $CONFIG " "$UNIT" || fail "$UNIT does not read $CONFIG"
while read -r doc; do
  [ -f "${doc#Documentation=file://}" ] || fail "$UNIT: $doc is not installed"
done < <(grep '^Documentation=' "$UNIT")
[ ! -e /etc/systemd/system/multi-user.target.wants/backup-exporter.service ] || fail "the unit was enabled"
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify "$UNIT" || fail "systemd-analyze verify $UNIT"
fi
for doc in README.md docs/deploy.md docs/runbook.md copyright examples/backup-exporter.yaml \
  examples/prometheus/rules/backup-exporter.rules.yml; do
  [ -f "/usr/share/doc/$PKG/$doc" ] || fail "/usr/share/doc/$PKG/$doc is missing"
done

# Installed again: the maintainer scripts' upgrade path (the user exists already).
DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install --reinstall -y -qq "./$deb" >/dev/null || fail "reinstalling $deb"

# Removed: the binary and unit go, the configuration stays; purged: it goes too.
DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 remove -y -qq "$PKG" >/dev/null
[ ! -e /usr/bin/backup-exporter ] || fail "/usr/bin/backup-exporter is still there after remove"
[ ! -e "$UNIT" ] || fail "$UNIT is still there after remove"
[ -f "$CONFIG" ] || fail "remove deleted the configuration"
DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 purge -y -qq "$PKG" >/dev/null
[ ! -e /etc/backup-exporter ] || fail "/etc/backup-exporter is still there after purge"
[ -z "$(status)" ] || fail "dpkg still has $PKG: $(status)"

echo "test-deb: the package installed, checked and removed cleanly ($deb, $(($(date +%s) - started)) s)"
