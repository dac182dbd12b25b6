#!/usr/bin/env bash
# Soak: the exporter against the bundled simulator (all three systems, a generated ZDM fleet)
# for DURATION seconds, while
#   - every fault kind the simulator offers is switched on, in turn, on a rotating set of
#     targets (one more every FAULT_EVERY s; the oldest is cleared once FAULTS_ACTIVE are on),
#   - /metrics is scraped every second, plain and gzip in turn,
#   - SIGHUP reloads the configuration every RELOAD_EVERY s, alternating between two
#     configurations (the second drops half the fleet and one upstream),
#   - the exporter's RSS (VmRSS) and open fds are sampled every 5 s and printed as a table.
# Last line: `soak: DURATION s, N scrapes, F failed scrapes, P panics, RSS first/max/last KiB,
# fds first/max/last`.
#
#   benches/soak.sh               # 600 s, release build
#   benches/soak.sh 60            # one minute
#   SKIP_BUILD=1 EXPORTER_BIN=target/debug/backup-exporter \
#     SIMULATOR_BIN=target/debug/backup-simulator benches/soak.sh 60
#
# Exits 1 when a scrape failed, the exporter logged "panicked" or died, its RSS at the end is
# over MAX_RSS_KIB, or its open fds at the end are over the first sample + 20.
#
# Knobs (env): SERVERS (200) x JOBS (5) the generated fleet; INTERVAL (2s) poll interval;
# TIMEOUT (3s); SLOW (4, seconds); FAULT_EVERY (3); FAULTS_ACTIVE (4); RELOAD_EVERY (10); MAX_RSS_KIB (150000);
# READY_TIMEOUT (60); EXPORTER_BIN, SIMULATOR_BIN (default target/release/...);
# SKIP_BUILD=1 (do not run cargo build --release); KEEP_LOGS=1 (keep the work directory).
# Needs bash, curl, python3 (stdlib only) and Linux /proc. Loopback only; every process it
# starts is stopped by PID on exit.
set -euo pipefail

DURATION=${1:-600}
SERVERS=${SERVERS:-200}
JOBS=${JOBS:-5}
INTERVAL=${INTERVAL:-2s}
TIMEOUT=${TIMEOUT:-3s}
SLOW=${SLOW:-4} # seconds the slow fault waits: longer than TIMEOUT, so polls time out
FAULT_EVERY=${FAULT_EVERY:-3}
FAULTS_ACTIVE=${FAULTS_ACTIVE:-4}
RELOAD_EVERY=${RELOAD_EVERY:-10}
SAMPLE_EVERY=5
MAX_RSS_KIB=${MAX_RSS_KIB:-150000}
READY_TIMEOUT=${READY_TIMEOUT:-60}
FD_SLACK=20

[[ $DURATION =~ ^[0-9]+$ && $DURATION -ge 1 ]] || { echo "usage: soak.sh [SECONDS]" >&2; exit 2; }
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
source benches/lib.sh
for tool in curl python3; do
    command -v "$tool" >/dev/null || { echo "soak.sh: $tool is required" >&2; exit 1; }
done

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    cargo build --release --bins
fi
EXPORTER=${EXPORTER_BIN:-target/release/backup-exporter}
SIMULATOR=${SIMULATOR_BIN:-target/release/backup-simulator}
for bin in "$EXPORTER" "$SIMULATOR"; do
    [[ -x $bin ]] || { echo "soak.sh: $bin is not an executable (build it, or unset SKIP_BUILD)" >&2; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/soak.XXXXXX")
SIM_PID=""
EXP_PID=""

cleanup() {
    stop "$EXP_PID"
    stop "$SIM_PID"
    if [[ ${KEEP_LOGS:-0} == 1 ]]; then
        echo "soak.sh: logs kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

tails() {
    for log in "$WORK"/*.log; do
        [[ -s $log ]] && { echo "--- tail of $log" >&2; tail -n 20 "$log" >&2; }
    done
}
die() {
    echo "soak.sh: $*" >&2
    tails
    exit 1
}

now_ms() { local us=${EPOCHREALTIME//[.,]/}; echo $((10#$us / 1000)); }
status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || true; }
fd_count() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

# --- simulator (every system, auth on, a generated fleet) ------------------------------------
TOKEN=soak-token
EMAIL=soak@example.com
PASSWORD=soak-password
SCP_ACCESS=soak-scp-access
SCP_SECRET=soak-scp-secret
TENANT=soak-tenant
CLIENT_ID=soak-client
CLIENT_SECRET=soak-client-secret

start_simulator --token "$TOKEN" --login "$EMAIL:$PASSWORD" \
    --scp-keys "$SCP_ACCESS:$SCP_SECRET" --azure-client "$TENANT:$CLIENT_ID:$CLIENT_SECRET" \
    --cycle 60s --fleet "${SERVERS}x${JOBS}"
SIM_URL="http://$SIM_ADDR"

# The simulator names its fault kinds and endpoints when asked for an unknown one, so new
# kinds are soaked without editing this script.
names_after() { # names_after TEXT MARKER: the comma-separated list after MARKER
    python3 -c '
import json, sys
message = json.loads(sys.argv[1])["error"]
print(" ".join(n.strip() for n in message.split(sys.argv[2], 1)[1].split(",")))
' "$1" "$2"
}
FAULT_KINDS=()
for kind in $(names_after "$(curl -s --max-time 5 -X PUT --data 'no-such-fault' \
    "$SIM_URL/_sim/fault/system/soak-probe")" "expected one of:"); do
    case $kind in
        none) ;;
        slow:*) FAULT_KINDS+=("slow:$SLOW") ;;
        rate_limited:*) FAULT_KINDS+=("rate_limited:5") ;;
        *:*) FAULT_KINDS+=("${kind%%:*}:1") ;;
        *) FAULT_KINDS+=("$kind") ;;
    esac
done
ENDPOINTS=$(names_after "$(curl -s --max-time 5 -X PUT --data none \
    "$SIM_URL/_sim/fault/no-such-endpoint/x")" "expected one of")
((${#FAULT_KINDS[@]} >= 5)) || die "could not read the fault kinds from the simulator"

# --- configurations ----------------------------------------------------------------------------
# Writes config A (everything) and B (half the fleet, no managed-identity upstream), and the
# fault targets (endpoint/percent-encoded id), one per line, covering every endpoint.
python3 - "$WORK" "$SIM_URL" "$SERVERS" "$JOBS" "$INTERVAL" "$TIMEOUT" "$TENANT" "$CLIENT_ID" \
    "$ENDPOINTS" <<'EOF'
import json, sys, urllib.parse
work, sim, servers, jobs, interval, timeout, tenant, client_id, endpoints = sys.argv[1:]
servers, jobs = int(servers), int(jobs)
q = json.dumps  # JSON strings are YAML scalars, whatever the name holds
fleet = [f"fleet-{i:05d}" for i in range(1, servers + 1)]
fleet_jobs = [f"fleet-{i:05d}-job-{j:02d}" for i in range(1, min(servers, 20) + 1) for j in (1, jobs)]
zdm_servers = ["server-01", "web-01", "db-서버-02", "win-fs-01", "파일서버-03"]
zdm_jobs = ["daily-backup", "daily-backup-win", "incomplete-job", "pgsql-백업", "app-config-백업"]
recoveries = ["daily-recovery", "db-복구"]
recovery_servers = ["db-dr-02"]
replications = ["db-복제"]
scp = [("00cd2538fbf94d12b36aabbdd607e974", None), ("5f1e0c9a3b7d4e2f8a6c1d0b9e8f7a6c", "erp-db"),
       ("a3c9e1f27b4d4c8e9f0a1b2c3d4e5f60", "파일서버-복구"), ("0b7e6d5c4a3f4e2d9c8b7a6f5e4d3c2b", "web-static")]
live_sub = "11111111-2222-3333-4444-555555555555"
seed = ("00000000-0000-0000-0000-000000000000", "Default-RecoveryServices-ResourceGroup-centralindia", "abdemovault")

def config(full):
    out = [f"defaults:\n  interval: {interval}\n  timeout: {timeout}\n  concurrency: 8\n"
           f"  stale_after: 3x\nupstreams:"]
    def zdm(name, extra, servers, backup_jobs, recovery_jobs, recovery_servers=(),
            replication_jobs=()):
        out.append(f"  - name: {name}\n    type: zdm\n    url: {sim}\n{extra}")
        for key, items in (("servers", servers), ("backup_jobs", backup_jobs),
                           ("recovery_jobs", recovery_jobs), ("recovery_servers", recovery_servers),
                           ("replication_jobs", replication_jobs)):
            if items:
                out.append(f"    {key}:")
                out.extend(f"      - {q(i)}" for i in items)
    kept = fleet if full else fleet[: len(fleet) // 2]
    zdm("soak-zdm", "    token_env: SOAK_TOKEN", zdm_servers + kept, zdm_jobs + fleet_jobs, recoveries,
        recovery_servers, replications)
    # Discovery: the simulator's own servers and jobs, listed again every few seconds, so
    # listing faults (endpoint "listing") hit a loop that adds and removes poll loops.
    zdm("soak-zdm-discover", "    token_env: SOAK_TOKEN\n    discover: true\n    discover_interval: 5s",
        [], [], [])
    zdm("soak-zdm-legacy", "    api_prefix: /api\n    timezone: Asia/Seoul\n"
        "    login: { path: /api/auth/issue, email_env: SOAK_EMAIL, password_env: SOAK_PASSWORD }",
        ["web-01"], ["pgsql-백업"], [])
    out.append(f"  - name: soak-scp\n    type: scp\n    url: {sim}\n"
               "    access_key_env: SOAK_SCP_ACCESS\n    secret_key_env: SOAK_SCP_SECRET\n    backups:")
    out.extend(f"      - {{ id: {q(i)}, name: {q(n)} }}" if n else f"      - {q(i)}" for i, n in scp)
    out.append("    backup_histories:")
    out.extend(f"      - {q(i)}" for i, _ in scp)
    azure = (f"    management_url: {sim}\n    authority_url: {sim}\n    vaults:")
    out.append(f"  - name: soak-azure\n    type: azure\n    tenant_id: {tenant}\n    client_id: {client_id}\n"
               f"    client_secret_env: SOAK_AZURE_SECRET\n    subscription_id: {live_sub}\n{azure}")
    out.append("      - { resource_group: rg-backup, name: vault-01 }")
    out.append("      - { resource_group: rg-dr, name: vault-dr }")
    out.append(f"  - name: soak-azure-seed\n    type: azure\n    tenant_id: {tenant}\n    client_id: {client_id}\n"
               f"    client_secret_env: SOAK_AZURE_SECRET\n    subscription_id: {seed[0]}\n{azure}")
    out.append(f"      - {{ resource_group: {seed[1]}, name: {seed[2]} }}")
    if full:
        out.append(f"  - name: soak-azure-mi\n    type: azure\n    managed_identity: true\n"
                   f"    subscription_id: {live_sub}\n{azure}")
        out.append("      - { resource_group: rg-backup, name: vault-01 }")
    return "\n".join(out) + "\n"

for name, full in (("a", True), ("b", False)):
    with open(f"{work}/config-{name}.yaml", "w") as f:
        f.write(config(full))

ids = {
    "system": zdm_servers + fleet[:3] + fleet[-2:],  # the last ones come and go with reloads
    "backup_job": zdm_jobs + fleet_jobs[:2],
    "recovery_job": recoveries,
    "recovery_system": recovery_servers,
    "replication_job": replications,
    "backup": [i for i, _ in scp],
    "backup_histories": [i for i, _ in scp],
    "vault": ["vault-01", "vault-dr", seed[2]],
    "vault_next": ["vault-01", "vault-dr"],
    "job": ["7ddead57-bcb9-4269-ac31-6a1b57588700"],
    "listing": ["servers", "backups", "recoveries", "replications", "repositories", "licenses"],
    # Listings the exporter does not read yet (Azure and SCP discovery): soaked all the same.
    "vault_list": [live_sub], "vault_list_next": [live_sub],
    "protected_items": ["vault-01", "vault-dr"], "protected_items_next": ["vault-01"],
    "protectable_items": ["vault-01"], "protectable_items_next": ["vault-01"],
    "backup_list": ["default"], "backup_list_next": ["default"], "backup_targets": ["default"],
    "token": [tenant],
    "imds": ["default"],
}
targets = []
for endpoint in endpoints.split():
    if endpoint not in ids:
        sys.exit(f"soak.sh: the simulator has a fault endpoint {endpoint!r} this script does not know")
    targets.extend(f"{endpoint}/{urllib.parse.quote(i, safe='')}" for i in ids[endpoint])
# Interleave endpoints so that consecutive faults hit different systems.
by_endpoint = [[t for t in targets if t.startswith(e + "/")] for e in endpoints.split()]
order = []
while any(by_endpoint):
    for group in by_endpoint:
        if group:
            order.append(group.pop(0))
with open(f"{work}/targets", "w") as f:
    f.write("\n".join(order) + "\n")
EOF
mapfile -t FAULT_TARGETS <"$WORK/targets"
cp "$WORK/config-a.yaml" "$WORK/config.yaml"

# --- exporter ----------------------------------------------------------------------------------
start_ms=$(now_ms)
SOAK_TOKEN=$TOKEN SOAK_EMAIL=$EMAIL SOAK_PASSWORD=$PASSWORD SOAK_SCP_ACCESS=$SCP_ACCESS \
    SOAK_SCP_SECRET=$SCP_SECRET SOAK_AZURE_SECRET=$CLIENT_SECRET \
    "$EXPORTER" --config "$WORK/config.yaml" --web.listen-address 127.0.0.1:0 \
    --log.format json </dev/null >"$WORK/exporter.out" 2>"$WORK/exporter.log" &
EXP_PID=$!
EXP_URL=""
for _ in $(seq 150); do
    addr=$(grep -m 1 '"backup-exporter listening"' "$WORK/exporter.log" \
        | sed -n 's/.*"address":"\(127\.0\.0\.1:[0-9]*\)".*/\1/p' || true)
    [[ -n $addr ]] && { EXP_URL="http://$addr"; break; }
    kill -0 "$EXP_PID" 2>/dev/null || die "exporter exited"
    sleep 0.1
done
[[ -n $EXP_URL ]] || die "exporter did not log 'backup-exporter listening' within 15 s"
until [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$EXP_URL/-/ready" || true) == 200 ]]; do
    kill -0 "$EXP_PID" 2>/dev/null || die "exporter exited before it was ready"
    (($(now_ms) - start_ms < READY_TIMEOUT * 1000)) || die "exporter not ready within ${READY_TIMEOUT} s"
    sleep 0.2
done
ready_s=$(python3 -c "print(round(($(now_ms) - $start_ms) / 1000, 1))")

# --- soak --------------------------------------------------------------------------------------
printf 'soak: %s s, fleet %sx%s, interval %s, %s fault kinds (%s) on %s targets, %s cores, load %s, ready in %s s\n' \
    "$DURATION" "$SERVERS" "$JOBS" "$INTERVAL" "${#FAULT_KINDS[@]}" "${FAULT_KINDS[*]}" \
    "${#FAULT_TARGETS[@]}" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$ready_s"
printf '%7s %10s %5s %8s %7s %8s %7s %7s\n' t_s rss_kib fds scrapes failed reloads faults active

scrapes=0 failed=0 reloads=0 faults_set=0 died=0
rss_first="" rss_max=0 rss_last="" fds_first="" fds_max=0 fds_last=""
active=()
sample() {
    local t=$1 rss fds
    rss=$(status_kib "$EXP_PID" VmRSS)
    fds=$(fd_count "$EXP_PID")
    [[ -n $rss ]] || return 0
    rss_last=$rss fds_last=$fds
    [[ -n $rss_first ]] || { rss_first=$rss; fds_first=$fds; }
    ((rss > rss_max)) && rss_max=$rss
    ((fds > fds_max)) && fds_max=$fds
    printf '%7s %10s %5s %8s %7s %8s %7s %7s\n' "$t" "$rss" "$fds" "$scrapes" "$failed" \
        "$reloads" "$faults_set" "${#active[@]}"
}
scrape() { # scrape GZIP(0|1): one GET /metrics; counts it, and counts it failed unless it is
    # a 200 with the exposition in it (and, with gzip, really compressed)
    local args=() out code size
    (($1)) && args=(--compressed -H 'Accept-Encoding: gzip')
    scrapes=$((scrapes + 1))
    out=$(curl -s "${args[@]}" -o "$WORK/scrape" -w '%{http_code} %{size_download}' \
        --max-time 10 "$EXP_URL/metrics" 2>/dev/null) || out="failed 0"
    read -r code size <<<"$out"
    if [[ $code != 200 ]] || ! grep -q '^backup_exporter_build_info' "$WORK/scrape" \
        || { (($1)) && ((size >= $(stat -c %s "$WORK/scrape"))); }; then
        failed=$((failed + 1))
        echo "soak.sh: scrape $scrapes ($([[ $1 == 1 ]] && echo gzip || echo plain)) failed: $out" >&2
    fi
}
set_fault() { # set_fault TARGET FAULT ("none" clears)
    curl -s -o /dev/null --max-time 5 -X PUT --data "$2" "$SIM_URL/_sim/fault/$1" || true
}

sample 0
t0=$(now_ms)
tick=0
while ((tick < DURATION)); do
    tick=$((tick + 1))
    if ! kill -0 "$EXP_PID" 2>/dev/null; then
        died=1
        echo "soak.sh: the exporter died after ${tick} s" >&2
        break
    fi
    scrape $((tick % 2))
    if ((tick % FAULT_EVERY == 0)); then
        n=$((tick / FAULT_EVERY))
        target=${FAULT_TARGETS[$((n % ${#FAULT_TARGETS[@]}))]}
        set_fault "$target" "${FAULT_KINDS[$((n % ${#FAULT_KINDS[@]}))]}"
        faults_set=$((faults_set + 1))
        active+=("$target")
        if ((${#active[@]} > FAULTS_ACTIVE)); then
            set_fault "${active[0]}" none
            active=("${active[@]:1}")
        fi
    fi
    if ((tick % RELOAD_EVERY == 0)); then
        next=$([[ $(((tick / RELOAD_EVERY) % 2)) == 1 ]] && echo b || echo a)
        cp "$WORK/config-$next.yaml" "$WORK/config.yaml.new"
        mv "$WORK/config.yaml.new" "$WORK/config.yaml"
        kill -HUP "$EXP_PID" 2>/dev/null || true
        reloads=$((reloads + 1))
    fi
    ((tick % SAMPLE_EVERY == 0)) && sample "$tick"
    # Sleep to the next whole second since the start (a slow scrape eats into it).
    wait_ms=$((t0 + tick * 1000 - $(now_ms)))
    ((wait_ms > 0)) && sleep "$(printf '%d.%03d' $((wait_ms / 1000)) $((wait_ms % 1000)))"
done
((tick % SAMPLE_EVERY == 0)) || sample "$tick"

# --- verdict -----------------------------------------------------------------------------------
# A reload waits for the old pollers to stop (at most a request timeout): let the last one land.
for _ in $(seq 100); do
    (($(grep -c '"configuration reloaded"' "$WORK/exporter.log" || true) >= reloads)) && break
    sleep 0.1
done
panics=$(grep -c 'panicked' "$WORK/exporter.log" || true)
reloaded=$(grep -c '"configuration reloaded"' "$WORK/exporter.log" || true)
sim_panics=$(grep -c 'panicked' "$WORK/simulator.log" || true)
problems=()
((failed == 0)) || problems+=("$failed failed scrapes")
((panics == 0)) || problems+=("the exporter log says 'panicked' $panics times")
((died == 0)) || problems+=("the exporter died")
[[ -n $rss_last ]] || problems+=("no RSS sample")
((${rss_last:-0} <= MAX_RSS_KIB)) || problems+=("RSS at the end $rss_last KiB > MAX_RSS_KIB $MAX_RSS_KIB")
((${fds_last:-0} <= ${fds_first:-0} + FD_SLACK)) \
    || problems+=("open fds at the end $fds_last > first $fds_first + $FD_SLACK")
((reloaded == reloads)) || problems+=("$reloads SIGHUPs sent, $reloaded reloads logged")
((sim_panics == 0)) || echo "soak.sh: note: the simulator log says 'panicked' $sim_panics times" >&2
echo "soak: faults set $faults_set, reloads $reloaded/$reloads, simulator panics $sim_panics, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "soak: $DURATION s, $scrapes scrapes, $failed failed scrapes, $panics panics, RSS ${rss_first:-?}/$rss_max/${rss_last:-?} KiB, fds ${fds_first:-?}/$fds_max/${fds_last:-?}"
if ((${#problems[@]})); then
    printf 'soak.sh: FAILED: %s\n' "${problems[@]}" >&2
    grep 'panicked' "$WORK/exporter.log" | head -n 5 >&2 || true
    tails
    exit 1
fi
