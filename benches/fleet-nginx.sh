#!/usr/bin/env bash
# Fleet bench with nginx as the upstream: nginx serves static ZDM server-monitoring answers for
# a generated fleet (default 2,000 servers x 5 jobs), the release exporter polls it, all on
# 127.0.0.1. A benchmark, not a test. Measures time to the first full poll cycle (/-/ready),
# CPU per 5 s poll cycle (exporter and nginx), peak RSS (VmHWM, scrapes included), /metrics
# size plain and gzip, and /metrics latency p50/p99 with wrk, side by side with nginx serving
# the same bytes as a static file (plain, and gzip via gzip_static), interleaved in rounds.
#
#   benches/fleet-nginx.sh                                    # 2000x5, builds first
#   SKIP_BUILD=1 SERVERS=10000 JOBS=5 benches/fleet-nginx.sh  # the prebuilt binaries, 10000x5
#   SKIP_BUILD=1 ROUNDS=5 DURATION=20 benches/fleet-nginx.sh  # longer latency rounds
#
# Knobs (env): SERVERS (2000), JOBS (5), CONCURRENCY (16), CYCLES (CPU window in 5 s cycles,
# 12), ROUNDS (latency rounds per run, 3), DURATION (seconds per wrk run, 10), READY_TIMEOUT
# (seconds to /-/ready, 60 + SERVERS/50), IDLE_INTERVAL (interval of the "idle" run, 30s),
# SKIP_BUILD=1 (use target/release as it is), EXPORTER (another exporter binary).
#
# The answers are a snapshot of what `backup-simulator --fleet SERVERSxJOBS` serves at one
# instant (the simulator mirrors the seed documents' shape), written as files; every poll then
# returns the same bytes. nginx runs in the foreground from a mktemp prefix (as `nobody` when
# run as root). Installs nginx (nginx-light, else nginx) and wrk with apt-get when missing.
# Needs bash, curl, python3 (stdlib only), nginx, wrk, Linux /proc.
set -euo pipefail

KNOBS=(SERVERS JOBS CONCURRENCY CYCLES ROUNDS DURATION READY_TIMEOUT IDLE_INTERVAL SKIP_BUILD)
CMDLINE=""
for knob in "${KNOBS[@]}"; do
    [[ -n ${!knob+x} ]] && CMDLINE+="$knob=${!knob} "
done
CMDLINE+="$0${*:+ $*}"

SERVERS=${SERVERS:-2000}
JOBS=${JOBS:-5}
CONCURRENCY=${CONCURRENCY:-16}
CYCLES=${CYCLES:-12}
CPU_INTERVAL=5
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
READY_TIMEOUT=${READY_TIMEOUT:-$((60 + SERVERS / 50))}
IDLE_INTERVAL=${IDLE_INTERVAL:-30s}

echo "command: $CMDLINE"
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
source benches/lib.sh
umask 022

die() {
    echo "fleet-nginx.sh: $*" >&2
    if [[ -n ${WORK:-} ]]; then
        for log in "$WORK"/*.log "$WORK"/nginx/error.log; do
            [[ -s $log ]] && { echo "--- tail of $log" >&2; tail -n 20 "$log" >&2; }
        done
    fi
    exit 1
}

# --- tools -----------------------------------------------------------------------------------
PATH=$PATH:/usr/sbin:/sbin
for tool in curl python3; do
    command -v "$tool" >/dev/null || die "$tool is required"
done
apt_install_missing nginx wrk
nginx -V 2>&1 | grep -q -- --with-http_gzip_static_module || die "nginx lacks gzip_static"

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    cargo build --release --bins
fi
EXPORTER=${EXPORTER:-target/release/backup-exporter}
SIMULATOR=target/release/backup-simulator
[[ -x $EXPORTER && -x $SIMULATOR ]] || die "no release binaries (run without SKIP_BUILD=1)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fleet-nginx.XXXXXX")
chmod 755 "$WORK"
NGX=$WORK/nginx
WWW=$NGX/www
mkdir -p "$WWW" "$NGX/tmp"
SIM_PID=""
NGX_PID=""
EXP_PID=""

cleanup() {
    stop "$EXP_PID"
    stop "$NGX_PID"
    stop "$SIM_PID"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

nginx_pids() { # master and workers, one line
    echo "$NGX_PID $(cat "/proc/$NGX_PID/task/$NGX_PID/children" 2>/dev/null)"
}
nginx_cpu() {
    local pids
    read -ra pids <<<"$(nginx_pids)"
    cpu_seconds "${pids[@]}"
}

# The snapshot is served under API 0.2's paths (/api/v1, its status words, no histories):
# the exporter is told so, since `auto` would probe paths a static server does not have.
export ZDM_API_VERSION=0.2

# --- answers: a snapshot of the simulator's fleet, one file per server ---------------------
echo "generating ${SERVERS}x${JOBS} answers from a backup-simulator snapshot"
start_simulator --fleet "${SERVERS}x${JOBS}" --token bench --cycle 1h
ANSWERS=$(python3 - "$SIM_ADDR" "$SERVERS" "$JOBS" "$WWW" <<'EOF'
import collections, http.client, json, os, sys
addr, servers, jobs, root = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
host, port = addr.rsplit(":", 1)
conn = http.client.HTTPConnection(host, int(port), timeout=30)
base = "/api/v1/backups/monitoring/system"
os.makedirs(root + base)
statuses, total = collections.Counter(), 0
for i in range(1, servers + 1):
    name = f"fleet-{i:05d}"
    conn.request("GET", f"{base}/{name}", headers={"Authorization": "Bearer bench"})
    resp = conn.getresponse()
    body = resp.read()
    if resp.status != 200:
        sys.exit(f"simulator answered {resp.status} for {name}")
    doc = json.loads(body)
    if len(doc["data"]["job"]) != jobs:
        sys.exit(f"{name}: {len(doc['data']['job'])} jobs, not {jobs}")
    statuses.update(j["progressInfo"]["status"] for j in doc["data"]["job"])
    with open(f"{root}{base}/{name}", "wb") as f:
        f.write(body)
    total += len(body)
mix = " ".join(f"{k}={v}" for k, v in statuses.most_common())
print(f"{servers} files, {total} B, job statuses {mix}")
EOF
) || die "could not snapshot the simulator"
stop "$SIM_PID"
SIM_PID=""
echo "answers: $ANSWERS"

# --- nginx -----------------------------------------------------------------------------------
NGX_PORT=$(free_port)
NGX_URL="http://127.0.0.1:$NGX_PORT"
cat >"$NGX/nginx.conf" <<EOF
worker_processes 1;
pid $NGX/nginx.pid;
error_log $NGX/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    types { text/plain txt; }
    default_type application/json;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 300s;
    keepalive_requests 10000000;
$(nginx_temp_paths "$NGX")
    server {
        listen 127.0.0.1:$NGX_PORT;
        root $WWW;
        # The exporter asks /api/v1/backups/monitoring/system/{id} (no query string for bare
        # server ids); the Authorization header is ignored.
        location / { try_files \$uri =404; }
        location = /metrics.txt { gzip_static on; }
    }
}
EOF
as_nobody=()
if [[ $(id -u) == 0 ]]; then
    command -v setpriv >/dev/null || die "setpriv (util-linux) is needed to run nginx unprivileged"
    chown -R nobody "$NGX"
    as_nobody=(setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups)
fi
"${as_nobody[@]}" nginx -p "$NGX" -e "$NGX/error.log" -c "$NGX/nginx.conf" -g 'daemon off;' \
    >"$WORK/nginx.log" 2>&1 &
NGX_PID=$!
for _ in $(seq 100); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 \
        "$NGX_URL/api/v1/backups/monitoring/system/fleet-00001" || true)
    [[ $code == 200 ]] && break
    kill -0 "$NGX_PID" 2>/dev/null || die "nginx exited"
    sleep 0.05
done
[[ $code == 200 ]] || die "nginx does not answer the first server"
cmp -s <(curl -s "$NGX_URL/api/v1/backups/monitoring/system/fleet-$(printf %05d "$SERVERS")") \
    "$WWW/api/v1/backups/monitoring/system/fleet-$(printf %05d "$SERVERS")" \
    || die "nginx does not serve the last server's answer byte for byte"
echo "nginx $(nginx -v 2>&1 | sed 's/.*nginx\///') on $NGX_URL (pid $NGX_PID, user $(ps -o user= -p "$(nginx_pids | awk '{print $NF}')"))"

# --- exporter --------------------------------------------------------------------------------

# --- wrk -------------------------------------------------------------------------------------
# done() writes the summary and wrk's latency histogram (us, count), to merge rounds exactly.
cat >"$WORK/hist.lua" <<'EOF'
done = function(summary, latency, requests)
  local f = assert(io.open(os.getenv("WRK_HIST"), "w"))
  local e = summary.errors
  f:write(string.format("# %d %d %d %d\n", summary.requests, summary.bytes,
    e.connect + e.read + e.write + e.timeout, e.status))
  for i = 1, #latency do
    local v, c = latency(i)
    f:write(string.format("%d %d\n", v, c))
  end
  f:close()
end
EOF
wrk_run() { # wrk_run TAG URL GZIP(0|1): one connection, one thread, DURATION seconds
    local tag=$1 url=$2 gz=$3 hdr=()
    [[ $gz == 1 ]] && hdr=(-H 'Accept-Encoding: gzip')
    WRK_HIST="$WORK/hist-$tag" wrk -t1 -c1 -d"${DURATION}s" --timeout 10s --latency \
        "${hdr[@]}" -s "$WORK/hist.lua" "$url" >"$WORK/wrk-$tag.txt" 2>&1 \
        || die "wrk failed: $(cat "$WORK/wrk-$tag.txt")"
}
latency_rounds() { # latency_rounds RUN: ROUNDS x (exporter, nginx) x (plain, gzip)
    local run=$1 r
    for r in $(seq "$ROUNDS"); do
        wrk_run "$run-$r-exporter-plain" "$EXP_URL/metrics" 0
        wrk_run "$run-$r-nginx-plain" "$NGX_URL/metrics.txt" 0
        wrk_run "$run-$r-exporter-gzip" "$EXP_URL/metrics" 1
        wrk_run "$run-$r-nginx-gzip" "$NGX_URL/metrics.txt" 1
        python3 - "$WORK" "$run" "$r" "$size_plain" "$size_gzip" <<'EOF' || die "bad wrk run"
import sys
work, run, r = sys.argv[1:4]
size = {"plain": int(sys.argv[4]), "gzip": int(sys.argv[5])}
def p(tag):
    lines = open(f"{work}/hist-{run}-{r}-{tag}").read().split("\n")
    reqs, nbytes, err, non2xx = map(int, lines[0].split()[1:])
    hist = [tuple(map(int, l.split())) for l in lines[1:] if l]
    n = sum(c for _, c in hist)
    def pct(q):  # as wrk: the first value whose cumulative count reaches q% of all samples
        rank, seen = q / 100 * n, 0
        for v, c in hist:
            seen += c
            if seen >= rank:
                return v / 1000
    if err or non2xx:
        sys.exit(f"{run} round {r} {tag}: {err} socket errors, {non2xx} non-2xx answers")
    # Bytes per answer tell the encoding that was really served (gzip is over ten times
    # smaller); wrk also counts headers, the exporter's chunk framing and the part of the
    # answer in flight when the time is up.
    expect = size[tag.split("-")[1]]
    if not expect * 0.98 <= nbytes / reqs < (expect * 1.05 + 1024) * (reqs + 1) / reqs:
        sys.exit(f"{run} round {r} {tag}: {nbytes / reqs:.0f} B per answer, body is {expect} B")
    return f"{tag} p50 {pct(50):.2f} p99 {pct(99):.2f} ms ({reqs} req)"
print(f"  {run} round {r}: " + " | ".join(
    p(t) for t in ("exporter-plain", "nginx-plain", "exporter-gzip", "nginx-gzip")))
EOF
    done
}

# --- run 1: interval IDLE_INTERVAL -- first cycle, sizes, latency side by side ---------------
ngx_cpu0=$(nginx_cpu)
start_exporter idle "$IDLE_INTERVAL" "127.0.0.1:$NGX_PORT"
ready_idle=$READY_S
exp_cpu_first=$(cpu_seconds "$EXP_PID")
ngx_cpu_first=$(calc "round($(nginx_cpu) - $ngx_cpu0, 2)")
rss_ready=$(status_kb "$EXP_PID" VmRSS)

curl -s --max-time 60 -D "$WORK/h-plain" -o "$WWW/metrics.txt" "$EXP_URL/metrics"
curl -s --max-time 60 -D "$WORK/h-gzip" -H 'Accept-Encoding: gzip' -o "$WWW/metrics.txt.gz" \
    "$EXP_URL/metrics"
grep -qi '^content-encoding: *gzip' "$WORK/h-gzip" || die "the exporter did not answer gzip"
grep -qi '^content-encoding' "$WORK/h-plain" && die "the exporter compressed a plain scrape"
size_plain=$(stat -c %s "$WWW/metrics.txt")
size_gzip=$(stat -c %s "$WWW/metrics.txt.gz")
series=$(grep -vc '^#' "$WWW/metrics.txt" || true)
targets_up=$(grep -c '^backup_target_up{.*} 1$' "$WWW/metrics.txt" || true)
[[ $targets_up == "$SERVERS" ]] || die "only $targets_up of $SERVERS targets up after ready"
[[ $(id -u) == 0 ]] && chown -R nobody "$WWW/metrics.txt" "$WWW/metrics.txt.gz"

# nginx must answer the same byte counts, gzip_static with Content-Encoding: gzip.
read -r ngx_plain_size < <(curl -s -D "$WORK/n-plain" -o /dev/null -w '%{size_download}\n' \
    "$NGX_URL/metrics.txt")
read -r ngx_gzip_size < <(curl -s -D "$WORK/n-gzip" -o /dev/null -w '%{size_download}\n' \
    -H 'Accept-Encoding: gzip' "$NGX_URL/metrics.txt")
[[ $ngx_plain_size == "$size_plain" ]] || die "nginx plain: $ngx_plain_size B, not $size_plain"
[[ $ngx_gzip_size == "$size_gzip" ]] || die "nginx gzip: $ngx_gzip_size B, not $size_gzip"
grep -qi '^content-encoding: *gzip' "$WORK/n-gzip" || die "nginx did not answer gzip_static"
grep -qi '^content-encoding' "$WORK/n-plain" && die "nginx compressed a plain request"
# The body as sent, framing included: the exporter streams chunked, nginx sends Content-Length.
wire() { curl -s --raw "$@" | wc -c; }
wire_exp_plain=$(wire "$EXP_URL/metrics")
wire_exp_gzip=$(wire -H 'Accept-Encoding: gzip' "$EXP_URL/metrics")
wire_ngx_plain=$(wire "$NGX_URL/metrics.txt")
wire_ngx_gzip=$(wire -H 'Accept-Encoding: gzip' "$NGX_URL/metrics.txt")
echo "exporter ready in $READY_S s; /metrics $size_plain B plain, $size_gzip B gzip;" \
    "nginx serves both byte for byte (gzip with Content-Encoding: gzip)"

echo "latency, interval $IDLE_INTERVAL: $ROUNDS rounds of wrk -t1 -c1 -d${DURATION}s"
latency_rounds idle
hwm_idle=$(status_kb "$EXP_PID" VmHWM)
rss_idle=$(status_kb "$EXP_PID" VmRSS)
stop "$EXP_PID"
EXP_PID=""

# --- run 2: interval 5s -- CPU per cycle in steady state, then latency while polling --------
start_exporter busy "${CPU_INTERVAL}s" "127.0.0.1:$NGX_PORT"
ready_busy=$READY_S
sleep "$CPU_INTERVAL" # skip the burst of the first cycle
e0=$(cpu_seconds "$EXP_PID")
n0=$(nginx_cpu)
t0=$(now)
sleep $((CYCLES * CPU_INTERVAL))
e1=$(cpu_seconds "$EXP_PID")
n1=$(nginx_cpu)
t1=$(now)
cycles=$(calc "($t1 - $t0) / $CPU_INTERVAL")
exp_cycle=$(calc "round(($e1 - $e0) / $cycles, 3)")
ngx_cycle=$(calc "round(($n1 - $n0) / $cycles, 3)")
exp_share=$(calc "round(100 * ($e1 - $e0) / ($t1 - $t0), 1)")
echo "CPU per ${CPU_INTERVAL}s cycle: exporter $exp_cycle s, nginx $ngx_cycle s"
echo "latency, interval ${CPU_INTERVAL}s: $ROUNDS rounds of wrk -t1 -c1 -d${DURATION}s"
latency_rounds busy
hwm_busy=$(status_kb "$EXP_PID" VmHWM)
rss_busy=$(status_kb "$EXP_PID" VmRSS)
stop "$EXP_PID"
EXP_PID=""

# --- report ----------------------------------------------------------------------------------
overall() { # overall RUN KIND: "exporter p50/p99 | nginx p50/p99 | ratio" over all rounds
    python3 - "$WORK" "$1" "$2" "$ROUNDS" <<'EOF'
import sys
work, run, kind, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def merged(who):
    hist, reqs = {}, 0
    for r in range(1, rounds + 1):
        lines = open(f"{work}/hist-{run}-{r}-{who}-{kind}").read().split("\n")
        reqs += int(lines[0].split()[1])
        for l in lines[1:]:
            if l:
                v, c = map(int, l.split())
                hist[v] = hist.get(v, 0) + c
    n = sum(hist.values())
    def pct(q):
        rank, seen = q / 100 * n, 0
        for v in sorted(hist):
            seen += hist[v]
            if seen >= rank:
                return v / 1000
    return pct(50), pct(99), reqs
e50, e99, en = merged("exporter")
n50, n99, nn = merged("nginx")
print(f"{e50:.2f} / {e99:.2f} ms ({en} req)|{n50:.2f} / {n99:.2f} ms ({nn} req)"
      f"|{e50 / n50:.1f}x / {e99 / n99:.1f}x")
EOF
}
row() { printf '| %-58s | %s |\n' "$1" "$2"; }
latency_rows() { # latency_rows RUN LABEL
    local kind e n ratio
    for kind in plain gzip; do
        IFS='|' read -r e n ratio <<<"$(overall "$1" "$kind")"
        row "/metrics $kind p50 / p99, $2: exporter" "$e"
        row "  the same bytes from nginx (${kind/gzip/gzip_static})" "$n"
        row "  ratio exporter / nginx (p50 / p99)" "$ratio"
    done
}
echo
echo "command: $CMDLINE"
printf 'fleet %sx%s = %s jobs, concurrency %s, %s cores, load %s at start / %s at end, %s\n' \
    "$SERVERS" "$JOBS" $((SERVERS * JOBS)) "$CONCURRENCY" "$(nproc)" \
    "$LOAD0" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(date -u +%FT%TZ)"
printf 'latency: wrk -t1 -c1 -d%ss --latency, %s rounds interleaved exporter/nginx, overall = all rounds merged\n' \
    "$DURATION" "$ROUNDS"
row measure value
row --- ---
row "upstream answers (nginx static files)" "$ANSWERS"
row "first full cycle (start -> /-/ready 200), run 1 / run 2" "${ready_idle} s / ${ready_busy} s"
row "  CPU to ready (run 1): exporter / nginx" "${exp_cpu_first} s / ${ngx_cpu_first} s"
row "RSS after ready" "$(mb "$rss_ready") MB"
row "/metrics series" "$series"
row "/metrics size plain / gzip" "$size_plain B / $size_gzip B"
row "  body on the wire plain: exporter (chunked) / nginx" "$wire_exp_plain B / $wire_ngx_plain B"
row "  body on the wire gzip: exporter (chunked) / nginx" "$wire_exp_gzip B / $wire_ngx_gzip B"
row "CPU per ${CPU_INTERVAL}s cycle: exporter / nginx (${CYCLES} cycles)" \
    "${exp_cycle} s / ${ngx_cycle} s (exporter ${exp_share} % of one core)"
latency_rows idle "interval $IDLE_INTERVAL"
latency_rows busy "interval ${CPU_INTERVAL}s"
row "RSS / peak VmHWM, interval $IDLE_INTERVAL, after the scrapes" \
    "$(mb "$rss_idle") MB / $(mb "$hwm_idle") MB"
row "RSS / peak VmHWM, interval ${CPU_INTERVAL}s, after the scrapes" \
    "$(mb "$rss_busy") MB / $(mb "$hwm_busy") MB"
