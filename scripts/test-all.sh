#!/usr/bin/env bash
# The whole test suite, from a fresh clone on a fresh Debian machine: installs what is
# missing (promtool from Debian's prometheus package), then format, lints and every test.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]} (Debian packages)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
# Snapshots are compared, never written, here.
INSTA_UPDATE=no cargo test --locked --all-targets
