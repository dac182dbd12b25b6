#!/usr/bin/env bash
# The whole test suite, from a fresh clone on a fresh Debian machine: installs what is
# missing (Debian's prometheus and prometheus-alertmanager packages: promtool, a real
# Prometheus and Alertmanager for the end-to-end test), then format, lints (Cargo.toml's
# [workspace.lints]), docs, a build at the declared MSRV, the fast tier and the end-to-end
# tier, and last the Debian package (scripts/test-deb.sh: installs cargo-deb when missing,
# builds the .deb, installs, checks and purges it).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || need_apt+=(prometheus-alertmanager)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
# Debian's headless browser for the landing page test (tests/e2e/landing_browser.rs).
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]} (Debian packages)"
  apt-get update -qq
  # Installed as Debian installs them, nothing else on the host changed: the tests start
  # their own Prometheus and Alertmanager on loopback ports they pick.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${need_apt[@]}" | sort -u) >/dev/null
fi

# The strict OpenMetrics parser the OpenMetrics test feeds /metrics to.
python3 -c 'import prometheus_client' 2>/dev/null || pip install --quiet prometheus_client

# Every crate of the workspace: the exporter and the simulator (crates/simulator).
cargo fmt --all -- --check
cargo clippy --locked --workspace --all-targets --features e2e -- -D warnings
# The docs build without a warning (broken or private links included).
RUSTDOCFLAGS="-D warnings" cargo doc --locked --workspace --no-deps
# The declared MSRV (Cargo.toml's rust-version) builds the exporter and the simulator.
msrv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
rustup toolchain list | grep -q "^$msrv-" || rustup toolchain install "$msrv" --profile minimal
cargo "+$msrv" check --locked --workspace --lib --bins
# Snapshots are compared, never written, here.
log=$(mktemp)
# The fast tier (no tool outside cargo's build), then the end-to-end tier (tests/e2e/).
INSTA_UPDATE=no cargo test --locked --workspace --all-targets 2>&1 | tee "$log"
INSTA_UPDATE=no cargo test --locked --features e2e --test e2e 2>&1 | tee -a "$log"
bash scripts/test-deb.sh
# One closing line for the whole suite (the package test above is one more check).
awk '/^test result:/ {p += $4; f += $6} END {printf "tests: %d passed, %d failed\n", p, f}' "$log"
rm -f "$log"
