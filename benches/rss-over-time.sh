#!/usr/bin/env bash
# RSS of the exporter over time against the simulator's 2,000 x 5 fleet, polled every 5 s.
# usage: benches/rss-over-time.sh SECONDS SCRAPE(0|1) [ENV=VALUE ...]
#   e.g. benches/rss-over-time.sh 60 1 MALLOC_ARENA_MAX=1
# Needs release binaries (cargo build --release --bins). Loopback only; both processes are
# killed by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}; scrape=${2:-1}; shift 2 || true
dir=$(mktemp -d)
sim_pid=""; exp_pid=""
cleanup() { [ -n "$exp_pid" ] && kill "$exp_pid" 2>/dev/null; [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
target/release/backup-simulator --listen 127.0.0.1:0 --fleet 2000x5 --token bench > "$dir/sim.out" &
sim_pid=$!
for _ in $(seq 100); do grep -q "listening on" "$dir/sim.out" 2>/dev/null && break; sleep 0.1; done
sim=$(sed -n 's/^listening on //p' "$dir/sim.out")
{
  printf 'defaults: { interval: 5s }\nupstreams:\n  - name: fleet\n    type: zdm\n    url: http://%s\n    token_env: BENCH_TOKEN\n    servers:\n' "$sim"
  for i in $(seq 1 2000); do printf '      - fleet-%05d\n' "$i"; done
} > "$dir/c.yaml"
port=$((20000 + RANDOM % 20000))
env "$@" BENCH_TOKEN=bench target/release/backup-exporter --config "$dir/c.yaml" \
  --web.listen-address "127.0.0.1:$port" --log.level warn &
exp_pid=$!
sleep 2
line=""
for _ in $(seq 1 $((secs / 5))); do
  if [ "$scrape" = 1 ]; then
    for _ in 1 2 3; do
      curl -s -o /dev/null "127.0.0.1:$port/metrics"
      curl -s -o /dev/null -H 'Accept-Encoding: gzip' "127.0.0.1:$port/metrics"
    done
  fi
  sleep 5
  line="$line $(awk '/VmRSS/{print int($2/1024)}' "/proc/$exp_pid/status")"
done
echo "${*:-default} scrape=$scrape RSS (MB) every 5 s:$line"
