#!/usr/bin/env bash
# Fleet bench: the release exporter against the bundled simulator serving a generated fleet
# (default 2,000 servers x 5 jobs = 10,000 jobs), all on 127.0.0.1. Measures time to the first
# full poll cycle (/-/ready), RSS, CPU per poll cycle (exporter and simulator separately),
# /metrics size plain and gzip, /metrics latency p50/p99, and the ZDM history requests the
# simulator counted (to ready, and per cycle).
#
#   benches/fleet.sh                      # 2000x5
#   SERVERS=500 JOBS=3 benches/fleet.sh   # a smaller fleet
#
# Knobs (env): SERVERS, JOBS, CONCURRENCY (16), CYCLES (CPU window in 5 s cycles, 12),
# SCRAPES (200), READY_TIMEOUT (60 s), SKIP_BUILD=1 (use the existing release binaries),
# SIM_ARGS (more simulator flags: SIM_ARGS="--zdm-version 1.1.0" serves a release without
# histories; by default the simulator speaks every release and the exporter settles 2.0, which
# reads the histories of the fleet's runs).
# Needs bash, curl, python3 (stdlib only) and Linux /proc.
set -euo pipefail

SERVERS=${SERVERS:-2000}
JOBS=${JOBS:-5}
CONCURRENCY=${CONCURRENCY:-16}
CYCLES=${CYCLES:-12}
CPU_INTERVAL=5
SCRAPES=${SCRAPES:-200}
READY_TIMEOUT=${READY_TIMEOUT:-60}

cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
source benches/lib.sh
bench_setup fleet.sh

# --- simulator -------------------------------------------------------------------------------
# shellcheck disable=SC2086 # SIM_ARGS is a list of flags
start_simulator --fleet "${SERVERS}x${JOBS}" --token bench ${SIM_ARGS:-}

scrape_latency() { # scrape_latency URL N GZIP(0|1) -> "p50 p99" in ms
    python3 - "$1" "$2" "$3" <<'EOF'
import http.client, sys, time, urllib.parse
url, n, gz = urllib.parse.urlsplit(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
headers = {"Accept-Encoding": "gzip"} if gz else {}
conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
times = []
for _ in range(n):
    t = time.perf_counter()
    conn.request("GET", "/metrics", headers=headers)
    resp = conn.getresponse()
    body = resp.read()
    times.append((time.perf_counter() - t) * 1000)
    if resp.status != 200 or not body:
        sys.exit(f"/metrics answered {resp.status}")
times.sort()
pick = lambda q: times[min(len(times) - 1, int(q * len(times)))]
print(f"{pick(0.50):.1f} {pick(0.99):.1f}")
EOF
}

history_requests() { # the simulator's count of ZDM history requests since its last reset
    curl -fsS --max-time 10 "http://$SIM_ADDR/_sim/stats" | python3 -c '
import json, sys
s = json.load(sys.stdin)
print(s.get("backups/histories", 0) + s.get("recoveries/histories", 0))'
}
sim_reset() { curl -fsS --max-time 10 -X POST "http://$SIM_ADDR/_sim/reset" >/dev/null; }

# --- run 1: interval 30s -- first cycle, RSS, size, latency (no polls between cycles) ------
sim_cpu0=$(cpu_seconds "$SIM_PID")
sim_reset
start_exporter steady 30s "$SIM_ADDR"
hist_ready=$(history_requests)
exp_cpu_first=$(cpu_seconds "$EXP_PID")
sim_cpu_first=$(calc "round($(cpu_seconds "$SIM_PID") - $sim_cpu0, 2)")
rss_ready=$(status_kb "$EXP_PID" VmRSS)
metrics=$(curl -s --max-time 10 "$EXP_URL/metrics")
series=$(grep -vc '^#' <<<"$metrics" || true)
jobs_up=$(grep -c '^backup_target_up{.*} 1$' <<<"$metrics" || true)
[[ $jobs_up == "$SERVERS" ]] || die "only $jobs_up of $SERVERS targets up after ready"
size_plain=$(curl -s --max-time 10 -o /dev/null -w '%{size_download}' "$EXP_URL/metrics")
size_gzip=$(curl -s --max-time 10 -H 'Accept-Encoding: gzip' -o /dev/null -w '%{size_download}' \
    "$EXP_URL/metrics")
read -r p50_plain p99_plain <<<"$(scrape_latency "$EXP_URL" "$SCRAPES" 0)"
read -r p50_gzip p99_gzip <<<"$(scrape_latency "$EXP_URL" "$SCRAPES" 1)"
rss_after=$(status_kb "$EXP_PID" VmRSS)
hwm=$(status_kb "$EXP_PID" VmHWM)
stop "$EXP_PID"
EXP_PID=""

# --- run 2: interval 5s -- CPU per cycle in steady state, then latency under polling ------
start_exporter busy "${CPU_INTERVAL}s" "$SIM_ADDR"
sleep "$CPU_INTERVAL" # skip the burst of the first cycle
sim_reset
e0=$(cpu_seconds "$EXP_PID")
s0=$(cpu_seconds "$SIM_PID")
t0=$(now)
sleep $((CYCLES * CPU_INTERVAL))
e1=$(cpu_seconds "$EXP_PID")
s1=$(cpu_seconds "$SIM_PID")
t1=$(now)
hist_window=$(history_requests)
cycles=$(calc "($t1 - $t0) / $CPU_INTERVAL")
exp_cycle=$(calc "round(($e1 - $e0) / $cycles, 3)")
sim_cycle=$(calc "round(($s1 - $s0) / $cycles, 3)")
hist_cycle=$(calc "round($hist_window / $cycles, 2)")
exp_share=$(calc "round(100 * ($e1 - $e0) / ($t1 - $t0), 1)")
read -r p50_busy p99_busy <<<"$(scrape_latency "$EXP_URL" "$SCRAPES" 0)"
rss_busy=$(status_kb "$EXP_PID" VmRSS)
stop "$EXP_PID"
EXP_PID=""

# --- report ----------------------------------------------------------------------------------
printf '\nfleet %sx%s = %s jobs, concurrency %s, %s cores, load %s, %s\n' \
    "$SERVERS" "$JOBS" $((SERVERS * JOBS)) "$CONCURRENCY" "$(nproc)" \
    "$(cut -d' ' -f1-3 /proc/loadavg)" "$(date -u +%FT%TZ)"
printf '%-52s %s\n' \
    "first full cycle (start -> /-/ready 200)" "${READY_S} s" \
    "  exporter CPU to ready / simulator CPU" "${exp_cpu_first} s / ${sim_cpu_first} s" \
    "  ZDM history requests to ready" "$hist_ready" \
    "RSS after ready" "$(mb "$rss_ready") MB" \
    "RSS after $((2 * SCRAPES)) scrapes / peak (VmHWM)" "$(mb "$rss_after") MB / $(mb "$hwm") MB" \
    "/metrics series" "$series" \
    "/metrics size plain / gzip" "$size_plain B / $size_gzip B" \
    "/metrics latency plain p50 / p99 ($SCRAPES scrapes)" "${p50_plain} ms / ${p99_plain} ms" \
    "/metrics latency gzip  p50 / p99 ($SCRAPES scrapes)" "${p50_gzip} ms / ${p99_gzip} ms" \
    "CPU per ${CPU_INTERVAL}s cycle: exporter / simulator" "${exp_cycle} s / ${sim_cycle} s" \
    "  exporter CPU share at ${CPU_INTERVAL}s interval" "${exp_share} % of one core" \
    "  ZDM history requests per ${CPU_INTERVAL}s cycle" "$hist_cycle ($hist_window in $cycles cycles)" \
    "/metrics plain p50 / p99 while polling every ${CPU_INTERVAL}s" "${p50_busy} ms / ${p99_busy} ms" \
    "RSS at ${CPU_INTERVAL}s interval after the scrapes" "$(mb "$rss_busy") MB"
