#!/usr/bin/env bash
# Discovery bench: the release exporter with `discover: true` and nothing else against the
# bundled simulator's generated fleet (default 10,000 servers x 5 jobs), all on 127.0.0.1.
# Measures what one round of listings costs (requests per listing, time) and the time to
# ready (first listing + first poll of every discovered target: the listing hands servers
# over page by page, so the polls run beside it), RSS, and the CPU of the exporter over
# later poll cycles.
#
#   benches/fleet-discovery.sh                    # 10000x5
#   SERVERS=2000 benches/fleet-discovery.sh       # 2000x5
#
# Knobs (env): SERVERS, JOBS, CONCURRENCY (16), INTERVAL (poll interval, 30s), CYCLES (CPU
# window in intervals, 2), READY_TIMEOUT (180 s), EXPORTER (another binary to measure),
# CONFIGURED=1 (the same fleet listed in the config instead: the baseline without listings),
# SKIP_BUILD=1 (use the existing release binaries). Needs bash, curl, python3 (stdlib only)
# and Linux /proc.
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
EOF
if [[ ${CONFIGURED:-0} == 1 ]]; then
    # The same fleet listed by hand, for comparison: no listing at all.
    echo "    servers:" >>"$WORK/discovery.yaml"
    for i in $(seq 1 "$SERVERS"); do printf '      - fleet-%05d\n' "$i"; done >>"$WORK/discovery.yaml"
else
    echo "    discover: true" >>"$WORK/discovery.yaml"
fi

port=$(free_port)
EXP_URL="http://127.0.0.1:$port"
sim_cpu0=$(cpu_seconds "$SIM_PID")
t0=$(now)
BENCH_TOKEN=bench "$EXPORTER" --config "$WORK/discovery.yaml" \
    --web.listen-address "127.0.0.1:$port" >"$WORK/exporter.log" 2>&1 &
EXP_PID=$!

stats() { curl -s --max-time 5 "http://$SIM_ADDR/_sim/stats"; }
listing_requests() { # listing_requests NAME: requests the simulator counted for that listing
    stats | python3 -c "import json,sys; print(json.load(sys.stdin).get('listing/$1', 0))"
}

# Only /-/ready is asked while waiting: a scrape of the whole exposition would cost the
# exporter the CPU being measured. The first listing's time is the exporter's own log line.
while :; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$EXP_URL/-/ready" || true)
    [[ $code == 200 ]] && break
    kill -0 "$EXP_PID" 2>/dev/null || die "exporter exited"
    [[ $(calc "$(now) - $t0 > $READY_TIMEOUT") == True ]] && die "not ready within ${READY_TIMEOUT} s"
    sleep 0.05
done
ready_s=$(calc "round($(now) - $t0, 2)")
ready_cpu=$(cpu_seconds "$EXP_PID")
sim_cpu=$(calc "round($(cpu_seconds "$SIM_PID") - $sim_cpu0, 2)")
listed_s=$(sed -n 's/.*msg="first discovery listing done".* seconds=\([0-9.]*\).*/\1/p' "$WORK/exporter.log" | head -n 1)
logged_ready_s=$(sed -n 's/.*msg="ready: the first poll.* seconds=\([0-9.]*\).*/\1/p' "$WORK/exporter.log" | head -n 1)

metrics=$(curl -s --max-time 10 "$EXP_URL/metrics")
targets=$(grep '^backup_discovery_targets{.*kind="server"} ' <<<"$metrics" | awk '{print $2}' || true)
up=$(grep -c '^backup_target_up{.*kind="server".*} 1$' <<<"$metrics" || true)
protected=$(grep -c '^backup_server_protected{' <<<"$metrics" || true)

# Later cycles: the exporter's CPU per poll interval with the discovered fleet.
c0=$(cpu_seconds "$EXP_PID")
sleep $((INTERVAL * CYCLES))
c1=$(cpu_seconds "$EXP_PID")
rss=$(status_kb "$EXP_PID" VmRSS)
hwm=$(status_kb "$EXP_PID" VmHWM)

if [[ ${CONFIGURED:-0} == 1 ]]; then
    echo "fleet: ${SERVERS} servers x ${JOBS} jobs, configured by hand (CONFIGURED=1: no listing)"
else
    echo "fleet: ${SERVERS} servers x ${JOBS} jobs, discover: true only (pages of 100)"
fi
for l in backups recoveries replications servers repositories licenses; do
    echo "listing $l: $(listing_requests "$l") requests"
done
echo "first listing done (the exporter's log, from its start of polling): $(calc "round(${listed_s:-0}, 2)") s"
echo "discovered server targets: $targets, up: $up, backup_server_protected series: $protected"
echo "ready (listing + first poll of every target): ${ready_s} s from spawn ($(calc "round(${logged_ready_s:-0}, 2)") s as the exporter logs it), exporter CPU until ready ${ready_cpu} s, simulator CPU meanwhile ${sim_cpu} s (on the same cores)"
echo "exporter CPU per ${INTERVAL}s poll cycle: $(calc "round(($c1 - $c0) / $CYCLES, 3)") s"
echo "exporter RSS: $(mb "$rss") MiB (peak $(mb "$hwm") MiB)"
