#!/usr/bin/env bash
# What an Azure `lookback` costs: one vault of VMS virtual machines (one daily backup each)
# and DBS SQL Server databases (a daily full backup and a log backup every 15 minutes), with
# DAYS days of job history, served by the simulator in pages of PAGE_SIZE jobs. For each
# lookback in LOOKBACKS it starts the exporter, then reads the simulator's request counts:
# the first poll (the whole lookback) and the mean of the next POLLS polls (the last hour).
#
#   benches/azure-lookback.sh                      # 500 VMs, 50 databases, 9d and 24h
#   VMS=100 DBS=10 LOOKBACKS="9d" benches/azure-lookback.sh
#
# Needs bash, curl and python3 (standard library only). Uses the debug binaries unless
# PROFILE=release (request and page counts do not depend on the build). Listens on 127.0.0.1
# only and stops both processes by PID on exit.
set -euo pipefail

VMS=${VMS:-500}
DBS=${DBS:-50}
DAYS=${DAYS:-10}
PAGE_SIZE=${PAGE_SIZE:-200}
LOOKBACKS=${LOOKBACKS:-"9d 24h"}
POLLS=${POLLS:-3}
INTERVAL=${INTERVAL:-30s}
READY_TIMEOUT=${READY_TIMEOUT:-300}
PROFILE=${PROFILE:-debug}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SIMULATOR=$ROOT/target/$PROFILE/backup-simulator
EXPORTER=$ROOT/target/$PROFILE/backup-exporter
WORK=$(mktemp -d)
SIM_PID=""
EXP_PID=""
die() { echo "azure-lookback: $*" >&2; exit 1; }
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"
cleanup() { stop "$EXP_PID"; stop "$SIM_PID"; rm -rf "$WORK"; }
trap cleanup EXIT

[[ -x $SIMULATOR && -x $EXPORTER ]] || die "build first: cargo build --workspace${PROFILE/debug/} (${PROFILE})"

TENANT=bench-tenant CLIENT=bench-client SECRET=bench-secret
start_simulator --azure-client "$TENANT:$CLIENT:$SECRET" --azure-page-size "$PAGE_SIZE"

# The vault's jobs, newest first, all finished: starts spread over each day and quarter hour.
python3 - "$VMS" "$DBS" "$DAYS" >"$WORK/jobs.json" <<'PY'
import json, sys, time
vms, dbs, days = (int(a) for a in sys.argv[1:])
now = int(time.time())
sub = "00000000-0000-0000-0000-00000000bench"
jobs = []
def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S.0000000Z", time.gmtime(t))
def job(name, entity, job_type, workload, operation, start, minutes):
    props = {
        "jobType": job_type,
        "entityFriendlyName": entity,
        "backupManagementType": "AzureIaasVM" if job_type == "AzureIaaSVMJob" else "AzureWorkload",
        "operation": operation,
        "status": "Completed",
        "startTime": iso(start),
        "endTime": iso(start + minutes * 60),
        "duration": f"PT{minutes}M",
        "activityId": name,
    }
    if workload:
        props["workloadType"] = workload
    return {
        "id": f"/subscriptions/{sub}/resourceGroups/rg-bench/providers/Microsoft.RecoveryServices/vaults/vault-bench/backupJobs/{name}",
        "name": name,
        "type": "Microsoft.RecoveryServices/vaults/backupJobs",
        "properties": props,
    }
day = 86400
for v in range(vms):
    offset = v * day // max(vms, 1)
    for d in range(days):
        start = now - d * day - offset - 600
        jobs.append(job(f"vm-{v}-{d}", f"vm-{v:04d}", "AzureIaaSVMJob", None, "Backup", start, 20))
for b in range(dbs):
    entity = f"MSSQLSERVER/db{b:03d} [sql-{b % 5}.contoso.com]"
    offset = b * 900 // max(dbs, 1)
    for d in range(days):
        start = now - d * day - (b * day // max(dbs, 1)) - 1200
        jobs.append(job(f"full-{b}-{d}", entity, "AzureWorkloadJob", "SQLDataBase", "Backup (Full)", start, 10))
    for q in range(days * 96):
        start = now - q * 900 - offset - 60
        jobs.append(job(f"log-{b}-{q}", entity, "AzureWorkloadJob", "SQLDataBase", "Backup (Log)", start, 1))
jobs.sort(key=lambda j: j["properties"]["startTime"], reverse=True)
json.dump(jobs, sys.stdout)
PY
JOBS=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$WORK/jobs.json")
curl -fsS -X PUT --data-binary "@$WORK/jobs.json" "http://$SIM_ADDR/_sim/azure/vault-bench/jobs" >/dev/null

stats() { # stats: "vault vault_next job" request counts for vault-bench
    curl -fsS "http://$SIM_ADDR/_sim/stats" | python3 -c '
import json, sys
s = json.load(sys.stdin)
jobs = sum(v for k, v in s.items() if k.startswith("job/"))
print(s.get("vault/vault-bench", 0), s.get("vault_next/vault-bench", 0), jobs)'
}

echo "vault: $VMS VMs (daily), $DBS SQL databases (daily full, log every 15 min), $DAYS days: $JOBS jobs; $PAGE_SIZE jobs a page"
printf '%-9s %-6s %12s %8s %10s %10s %9s\n' lookback poll "jobs listed" pages "list reqs" "detail reqs" "up"
for lookback in $LOOKBACKS; do
    curl -fsS -X PUT --data-binary "@$WORK/jobs.json" "http://$SIM_ADDR/_sim/azure/vault-bench/jobs" >/dev/null
    cat >"$WORK/config.yaml" <<EOF
upstreams:
  - name: azure-bench
    type: azure
    tenant_id: $TENANT
    client_id: $CLIENT
    client_secret_env: BENCH_AZURE_SECRET
    subscription_id: 00000000-0000-0000-0000-00000000bench
    management_url: http://$SIM_ADDR
    authority_url: http://$SIM_ADDR
    interval: $INTERVAL
    timeout: 60s
    lookback: $lookback
    vaults: [{ resource_group: rg-bench, name: vault-bench }]
EOF
    read -r vb nb jb <<<"$(stats)"
    port=$(free_port)
    BENCH_AZURE_SECRET=$SECRET "$EXPORTER" --config "$WORK/config.yaml" \
        --web.listen-address "127.0.0.1:$port" >"$WORK/exporter.out" 2>"$WORK/exporter.log" &
    EXP_PID=$!
    ready=""
    for _ in $(seq $((READY_TIMEOUT * 10))); do
        if curl -fsS -o /dev/null "http://127.0.0.1:$port/-/ready" 2>/dev/null; then ready=1; break; fi
        kill -0 "$EXP_PID" 2>/dev/null || die "exporter exited: $(tail -n 5 "$WORK/exporter.log")"
        sleep 0.1
    done
    [[ -n $ready ]] || die "exporter not ready within ${READY_TIMEOUT}s"
    read -r v0 n0 j0 <<<"$(stats)"
    v0=$((v0 - vb)) n0=$((n0 - nb)) j0=$((j0 - jb))
    up=$(curl -fsS "http://127.0.0.1:$port/metrics" | sed -n 's/^backup_target_up{.*vault-bench"} \(.*\)/\1/p')
    listed=$(python3 - "$WORK/jobs.json" "$lookback" <<'PY'
import json, sys, time
jobs = json.load(open(sys.argv[1]))
text = sys.argv[2]
secs = int(text[:-1]) * {"d": 86400, "h": 3600, "m": 60}[text[-1]]
cutoff = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - secs))
print(sum(1 for j in jobs if j["properties"]["startTime"] >= cutoff))
PY
)
    printf '%-9s %-6s %12s %8s %10s %10s %9s\n' "$lookback" first "~$listed" "$((v0 + n0))" "$((v0 + n0))" "$j0" "$up"
    # Later polls: wait for POLLS more first pages, then the mean per poll.
    for _ in $(seq 600); do
        read -r v1 n1 j1 <<<"$(stats)"
        v1=$((v1 - vb)) n1=$((n1 - nb)) j1=$((j1 - jb))
        (( v1 >= v0 + POLLS )) && break
        kill -0 "$EXP_PID" 2>/dev/null || die "exporter exited"
        sleep 0.5
    done
    (( v1 >= v0 + POLLS )) || die "fewer than $POLLS later polls within 300 s"
    sleep 2 # the last counted poll's later pages and details
    polls=$((v1 - v0))
    printf '%-9s %-6s %12s %8s %10s %10s %9s\n' "$lookback" later "" \
        "$(calc "round(($v1 - $v0 + $n1 - $n0) / $polls, 1)")" \
        "$(calc "round(($v1 - $v0 + $n1 - $n0) / $polls, 1)")" \
        "$(calc "round(($j1 - $j0) / $polls, 1)")" \
        "$(curl -fsS "http://127.0.0.1:$port/metrics" | sed -n 's/^backup_target_up{.*vault-bench"} \(.*\)/\1/p')"
    stop "$EXP_PID"
    EXP_PID=""
done
