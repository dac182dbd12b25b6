#!/usr/bin/env bash
# Discovery against a static upstream: nginx replays the answers the simulator's fleet (default
# 2,000 servers x 5 jobs, ZDM 1.0.3: the first release with listings) gave once, and the
# release exporter runs on them with `discover: true` and, as the baseline, with the same
# servers configured by hand, interleaved round by round, all on 127.0.0.1. Every poll and
# every listing page then returns the same bytes, as in benches/fleet-nginx.sh, so the
# exporter's CPU per cycle is its own and not the simulator's changing answers.
#
#   benches/fleet-nginx-discovery.sh                          # 2000x5, builds first
#   SKIP_BUILD=1 SERVERS=10000 benches/fleet-nginx-discovery.sh
#
# Knobs (env): SERVERS (2000), JOBS (5), CONCURRENCY (16), CYCLES (CPU window in 5 s cycles,
# 6, after one interval to settle), ROUNDS (3), READY_TIMEOUT (60 s), ZDM_VERSION (1.0.3; a
# release before 1.0.3 has no listings, so only the configured fleet runs, for the same bench
# across releases), EXPORTER (another exporter binary), SKIP_BUILD=1 (the existing release
# binaries). Needs bash, curl, python3 (stdlib only), nginx (installed with apt-get when
# missing, as root) and Linux /proc.
#
# How the answers are kept: nginx runs as a caching reverse proxy in front of the simulator
# (`--cycle 1h`, so nothing moves while it is read) and each exporter configuration runs once
# through it; then the simulator stops and nginx answers every request from its cache (keyed
# by path and query, valid a year), so the measured runs ask exactly what was recorded. A run
# whose exporter counts any request outcome other than `success` fails the bench.
set -euo pipefail

SERVERS=${SERVERS:-2000}
JOBS=${JOBS:-5}
CONCURRENCY=${CONCURRENCY:-16}
CYCLES=${CYCLES:-6}
ROUNDS=${ROUNDS:-3}
READY_TIMEOUT=${READY_TIMEOUT:-60}
ZDM_VERSION=${ZDM_VERSION:-1.0.3}
INTERVAL=5
MODES=(discover configured)
case $ZDM_VERSION in 0.*) MODES=(configured) ;; esac

cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
source benches/lib.sh
PATH=$PATH:/usr/sbin:/sbin
bench_setup fleet-nginx-discovery.sh
apt_install_missing nginx
command -v setpriv >/dev/null || die "setpriv (util-linux) is needed"
chmod 755 "$WORK"
NGX=$WORK/nginx
mkdir -p "$NGX/tmp" "$NGX/cache"
NGX_PID=""
trap 'stop "$NGX_PID"; bench_cleanup' EXIT

start_simulator --fleet "${SERVERS}x${JOBS}" --token bench --cycle 1h --zdm-version "$ZDM_VERSION"

NGX_PORT=$(free_port)
NGX_URL="http://127.0.0.1:$NGX_PORT"
cat >"$NGX/nginx.conf" <<EOF
worker_processes 1;
pid $NGX/nginx.pid;
error_log $NGX/error.log warn;
events { worker_connections 512; }
http {
    access_log off;
    sendfile on;
    tcp_nodelay on;
    keepalive_timeout 300s;
    keepalive_requests 10000000;
$(nginx_temp_paths "$NGX")
    proxy_cache_path $NGX/cache levels=1:2 keys_zone=answers:64m inactive=365d use_temp_path=off;
    upstream simulator { server $SIM_ADDR; keepalive 32; }
    server {
        listen 127.0.0.1:$NGX_PORT;
        location / {
            proxy_pass http://simulator;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache answers;
            proxy_cache_key \$request_uri;
            proxy_cache_valid 200 365d;
            proxy_ignore_headers Cache-Control Expires Set-Cookie;
            add_header X-Cache \$upstream_cache_status;
        }
    }
}
EOF
as_nobody=()
if [[ $(id -u) == 0 ]]; then
    chown -R nobody "$NGX"
    as_nobody=(setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups)
fi
"${as_nobody[@]}" nginx -p "$NGX" -e "$NGX/error.log" -c "$NGX/nginx.conf" -g 'daemon off;' \
    >"$WORK/nginx.log" 2>&1 &
NGX_PID=$!
for _ in $(seq 100); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$NGX_URL/_sim/stats" || true)
    [[ $code == 200 ]] && break
    kill -0 "$NGX_PID" 2>/dev/null || die "nginx exited"
    sleep 0.05
done
[[ $code == 200 ]] || die "nginx does not answer through to the simulator"

write_config() { # write_config FILE MODE: MODE discover (discover: true) or configured
    python3 - "$1" "$2" "$NGX_URL" "$SERVERS" "$JOBS" "$CONCURRENCY" "$INTERVAL" "$ZDM_VERSION" <<'PY'
import sys
path, mode, url, servers, jobs, concurrency, interval, version = sys.argv[1:]
with open(path, "w") as f:
    f.write(f"""defaults:
  interval: {interval}s
  timeout: 10s
  concurrency: {concurrency}
  timezone: Asia/Seoul
  max_jobs_per_target: {int(servers) * int(jobs) + 1000}
upstreams:
  - name: zdm-fleet
    type: zdm
    url: {url}
    api_version: "{version}"
    token_env: BENCH_TOKEN
""")
    if mode == "discover":
        f.write("    discover: true\n")
    else:
        f.write("    servers:\n")
        for i in range(1, int(servers) + 1):
            f.write(f"      - fleet-{i:05d}\n")
PY
}
write_config "$WORK/discover.yaml" discover
write_config "$WORK/configured.yaml" configured

# run NAME: starts the exporter on NAME.yaml; sets EXP_PID, EXP_URL, READY_S, READY_CPU
run() {
    launch_exporter "$1"
    READY_CPU=$(cpu_seconds "$EXP_PID")
}

# check NAME: every request the exporter counted succeeded, and how many targets are up
check() {
    curl -s --max-time 30 "$EXP_URL/metrics" | python3 -c '
import re, sys
name = sys.argv[1]
bad, up, requests = [], 0, 0
for line in sys.stdin:
    if line.startswith("backup_upstream_requests_total{"):
        value = float(line.rsplit(" ", 1)[1])
        requests += value
        if "outcome=\"success\"" not in line and value > 0:
            bad.append(line.strip())
    elif line.startswith("backup_target_up{") and line.rstrip().endswith(" 1"):
        up += 1
if bad:
    sys.exit(f"{name}: requests that did not succeed: {bad[:3]}")
print(f"{up} targets up, {int(requests)} requests")
' "$1"
}

echo "recording the answers (each configuration once through nginx to the simulator)"
for name in "${MODES[@]}"; do
    run "$name"
    echo "  $name: $(check "$name")"
    stop "$EXP_PID"
    EXP_PID=""
done
stop "$SIM_PID"
SIM_PID=""
cached=$(find "$NGX/cache" -type f | wc -l)
echo "simulator stopped; nginx answers from its cache ($cached answers)"

results=$WORK/results.txt
: >"$results"
for round in $(seq "$ROUNDS"); do
    for name in "${MODES[@]}"; do
        run "$name"
        listing=$(sed -n 's/.*msg="first discovery listing done".* seconds=\([0-9.]*\).*/\1/p' "$WORK/$name.log" | head -n 1)
        logged=$(sed -n 's/.*msg="ready: the first poll.* seconds=\([0-9.]*\).*/\1/p' "$WORK/$name.log" | head -n 1)
        # As fleet-nginx.sh: one interval to settle (the targets' second polls), then the window.
        sleep "$INTERVAL"
        c0=$(cpu_seconds "$EXP_PID")
        sleep $((CYCLES * INTERVAL))
        c1=$(cpu_seconds "$EXP_PID")
        cycle=$(calc "round(($c1 - $c0) / $CYCLES, 3)")
        hwm=$(mb "$(status_kb "$EXP_PID" VmHWM)")
        rss=$(mb "$(status_kb "$EXP_PID" VmRSS)")
        state=$(check "$name") || die "$state"
        echo "round $round $name: ready ${READY_S} s from spawn ($(calc "round(${logged:-0}, 2)") s logged; listing $(calc "round(${listing:-0}, 2)") s), CPU until ready ${READY_CPU} s, CPU per ${INTERVAL}s cycle ${cycle} s, RSS ${rss} MiB (peak ${hwm} MiB); $state" | tee -a "$results"
        stop "$EXP_PID"
        EXP_PID=""
    done
done
[[ $(grep -c . "$results") == $((${#MODES[@]} * ROUNDS)) ]] || die "missing runs"
echo "${SERVERS}x${JOBS}, ZDM $ZDM_VERSION answers replayed by nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'), load $(cut -d' ' -f1-3 /proc/loadavg)"
