#!/usr/bin/env bash
# Discovery bench: the release exporter with `discover: true` and nothing else against the
# bundled simulator's generated fleet (default 10,000 servers x 5 jobs), all on 127.0.0.1.
# Measures what one round of listings costs (requests per listing, time, exporter CPU) and
# the time to ready (first listing + first poll of every discovered target), RSS, and the
# CPU of the exporter over later poll cycles.
#
#   benches/fleet-discovery.sh                    # 10000x5
#   SERVERS=2000 benches/fleet-discovery.sh       # 2000x5
#
# Knobs (env): SERVERS, JOBS, CONCURRENCY (16), INTERVAL (poll interval, 30s), CYCLES (CPU
# window in intervals, 2), READY_TIMEOUT (180 s), SKIP_BUILD=1 (use the existing release
# binaries). Needs bash, curl, python3 (stdlib only) and Linux /proc.
set -euo pipefail

SERVERS=${SERVERS:-10000}
JOBS=${JOBS:-5}
CONCURRENCY=${CONCURRENCY:-16}
INTERVAL=${INTERVAL:-30}
CYCLES=${CYCLES:-2}
READY_TIMEOUT=${READY_TIMEOUT:-180}

cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
source benches/lib.sh
bench_setup fleet-discovery.sh

start_simulator --fleet "${SERVERS}x${JOBS}" --token bench

# Every listing item counts against max_jobs_per_target: the job listing has SERVERS x JOBS.
MAX_ITEMS=$((SERVERS * JOBS + 1000))
cat >"$WORK/discovery.yaml" <<EOF
defaults:
  interval: ${INTERVAL}s
  timeout: 10s
  concurrency: $CONCURRENCY
  timezone: Asia/Seoul
  max_jobs_per_target: $MAX_ITEMS
upstreams:
  - name: zdm-fleet
    type: zdm
    url: http://$SIM_ADDR
    api_version: "2.0"
    token_env: BENCH_TOKEN
    discover: true
EOF

port=$(free_port)
EXP_URL="http://127.0.0.1:$port"
t0=$(now)
BENCH_TOKEN=bench "$EXPORTER" --config "$WORK/discovery.yaml" \
    --web.listen-address "127.0.0.1:$port" >"$WORK/exporter.log" 2>&1 &
EXP_PID=$!

stats() { curl -s --max-time 5 "http://$SIM_ADDR/_sim/stats"; }
listing_requests() { # listing_requests NAME: requests the simulator counted for that listing
    stats | python3 -c "import json,sys; print(json.load(sys.stdin).get('listing/$1', 0))"
}

# The first listing is done when the exporter counts the discovered servers.
listed_s=""
while :; do
    kill -0 "$EXP_PID" 2>/dev/null || die "exporter exited"
    # Read whole before grep: `grep -q` closing the pipe early would fail curl (pipefail).
    scrape=$(curl -s --max-time 10 "$EXP_URL/metrics" || true)
    if grep -q '^backup_discovery_targets{.*kind="server"} ' <<<"$scrape"; then
        listed_s=$(calc "round($(now) - $t0, 2)")
        listed_cpu=$(cpu_seconds "$EXP_PID")
        break
    fi
    [[ $(calc "$(now) - $t0 > $READY_TIMEOUT") == True ]] && die "no listing within ${READY_TIMEOUT} s"
    sleep 0.05
done
while :; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$EXP_URL/-/ready" || true)
    [[ $code == 200 ]] && break
    kill -0 "$EXP_PID" 2>/dev/null || die "exporter exited"
    [[ $(calc "$(now) - $t0 > $READY_TIMEOUT") == True ]] && die "not ready within ${READY_TIMEOUT} s"
    sleep 0.05
done
ready_s=$(calc "round($(now) - $t0, 2)")
ready_cpu=$(cpu_seconds "$EXP_PID")

metrics=$(curl -s --max-time 10 "$EXP_URL/metrics")
targets=$(grep '^backup_discovery_targets{.*kind="server"} ' <<<"$metrics" | awk '{print $2}')
up=$(grep -c '^backup_target_up{.*kind="server".*} 1$' <<<"$metrics" || true)
protected=$(grep -c '^backup_server_protected{' <<<"$metrics" || true)

# Later cycles: the exporter's CPU per poll interval with the discovered fleet.
c0=$(cpu_seconds "$EXP_PID")
sleep $((INTERVAL * CYCLES))
c1=$(cpu_seconds "$EXP_PID")
rss=$(status_kb "$EXP_PID" VmRSS)
hwm=$(status_kb "$EXP_PID" VmHWM)

echo "fleet: ${SERVERS} servers x ${JOBS} jobs, discover: true only (pages of 100)"
for l in backups recoveries replications servers repositories licenses; do
    echo "listing $l: $(listing_requests "$l") requests"
done
echo "first listing done: ${listed_s} s after start, exporter CPU ${listed_cpu} s"
echo "discovered server targets: $targets, up: $up, backup_server_protected series: $protected"
echo "ready (listing + first poll of every target): ${ready_s} s, exporter CPU until ready ${ready_cpu} s"
echo "exporter CPU per ${INTERVAL}s poll cycle: $(calc "round(($c1 - $c0) / $CYCLES, 3)") s"
echo "exporter RSS: $(mb "$rss") MiB (peak $(mb "$hwm") MiB)"
