#!/usr/bin/env bash
# Azure discovery bench: the release exporter with `discover: true` and credentials only
# against the bundled simulator's generated vaults (default 2,000 vaults, `--azure-fleet`),
# all on 127.0.0.1. Measures one round of listings (the vault list and each vault's
# protected and protectable items: requests, time, exporter CPU), the time to ready (listing
# + first poll of every discovered vault), RSS, and the exporter's CPU over later cycles.
#
#   benches/azure-discovery.sh              # 2000 vaults
#   VAULTS=500 benches/azure-discovery.sh
#
# Knobs (env): VAULTS, CONCURRENCY (16), INTERVAL (poll interval, 30s), CYCLES (CPU window in
# intervals, 2), READY_TIMEOUT (300 s), SKIP_BUILD=1 (use the existing release binaries).
# Needs bash, curl, python3 (stdlib only) and Linux /proc.
set -euo pipefail

VAULTS=${VAULTS:-2000}
CONCURRENCY=${CONCURRENCY:-16}
INTERVAL=${INTERVAL:-30}
CYCLES=${CYCLES:-2}
READY_TIMEOUT=${READY_TIMEOUT:-300}
TENANT=tenant-bench
CLIENT=client-bench
SUBSCRIPTION=11111111-2222-3333-4444-555555555555

cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
source benches/lib.sh
bench_setup azure-discovery.sh

start_simulator --azure-fleet "$VAULTS" --azure-client "$TENANT:$CLIENT:bench-secret"

cat >"$WORK/discovery.yaml" <<YAML
defaults:
  interval: ${INTERVAL}s
  timeout: 10s
  concurrency: $CONCURRENCY
upstreams:
  - name: azure-fleet
    type: azure
    tenant_id: $TENANT
    client_id: $CLIENT
    client_secret_env: BENCH_SECRET
    subscription_id: $SUBSCRIPTION
    management_url: http://$SIM_ADDR
    authority_url: http://$SIM_ADDR
    discover: true
YAML

port=$(free_port)
EXP_URL="http://127.0.0.1:$port"
t0=$(now)
BENCH_SECRET=bench-secret "$EXPORTER" --config "$WORK/discovery.yaml" \
    --web.listen-address "127.0.0.1:$port" >"$WORK/exporter.log" 2>&1 &
EXP_PID=$!

requests() { # the upstream requests the exporter counted so far (every outcome)
    curl -s --max-time 10 "$EXP_URL/metrics" | python3 -c '
import sys
print(int(sum(float(l.rsplit(" ", 1)[1]) for l in sys.stdin
          if l.startswith("backup_upstream_requests_total{"))))'
}

# Only /-/ready is asked while waiting (a scrape of the whole exposition would cost the
# exporter the CPU being measured); the first listing's time is the exporter's own log line.
while :; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$EXP_URL/-/ready" || true)
    [[ $code == 200 ]] && break
    kill -0 "$EXP_PID" 2>/dev/null || die "exporter exited"
    [[ $(calc "$(now) - $t0 > $READY_TIMEOUT") == True ]] && die "not ready within ${READY_TIMEOUT} s"
    sleep 0.05
done
ready_s=$(calc "round($(now) - $t0, 2)")
ready_cpu=$(cpu_seconds "$EXP_PID")
ready_requests=$(requests)
listed_s=$(sed -n 's/.*msg="first discovery listing done".* seconds=\([0-9.]*\).*/\1/p' "$WORK/exporter.log" | head -n 1)

metrics=$(curl -s --max-time 10 "$EXP_URL/metrics")
targets=$(grep '^backup_discovery_targets{.*kind="vault"} ' <<<"$metrics" | awk '{print $2}')
up=$(grep -c '^backup_target_up{.*kind="vault".*} 1$' <<<"$metrics" || true)
protected=$(grep -c '^backup_server_protected{' <<<"$metrics" || true)
items=$(grep -c '^backup_protected_item_last_backup_time_seconds{' <<<"$metrics" || true)

c0=$(cpu_seconds "$EXP_PID")
sleep $((INTERVAL * CYCLES))
c1=$(cpu_seconds "$EXP_PID")
rss=$(status_kb "$EXP_PID" VmRSS)
hwm=$(status_kb "$EXP_PID" VmHWM)

echo "azure fleet: $VAULTS generated vaults (+ the simulator's own), discover: true only"
echo "first listing done (vault list + every vault's two item lists; the exporter's log, from its start of polling): ${listed_s:-n/a} s"
echo "discovered vault targets: $targets, up: $up; backup_server_protected series: $protected; protected items: $items"
echo "ready (listing + first poll of every vault): ${ready_s} s, exporter CPU until ready ${ready_cpu} s"
echo "upstream requests until ready (token, lists, job pages, details): $ready_requests"
echo "exporter CPU per ${INTERVAL}s poll cycle: $(calc "round(($c1 - $c0) / $CYCLES, 3)") s"
echo "exporter RSS: $(mb "$rss") MiB (peak $(mb "$hwm") MiB)"
