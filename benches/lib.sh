# shellcheck shell=bash disable=SC2034  # EXP_URL, READY_S and SIM_ADDR are read by the scripts that source this
# Shell helpers the bench scripts share (sourced, not run). A script that sources this sets
# WORK, SIMULATOR, EXPORTER, READY_TIMEOUT, SERVERS and CONCURRENCY, and defines
# `die MESSAGE` before it calls start_simulator or start_exporter; `bench_setup` does all but
# the knobs for a script with one simulator and one exporter.

bench_setup() { # bench_setup NAME: needs curl and python3, builds the release binaries
    # (unless SKIP_BUILD=1), sets EXPORTER, SIMULATOR and WORK (removed on exit with the
    # processes in SIM_PID and EXP_PID), and defines `die`
    BENCH_NAME=$1
    local tool
    for tool in curl python3; do
        command -v "$tool" >/dev/null || { echo "$BENCH_NAME: $tool is required" >&2; exit 1; }
    done
    if [[ ${SKIP_BUILD:-0} != 1 ]]; then
        cargo build --release --bins
    fi
    EXPORTER=${EXPORTER:-target/release/backup-exporter}
    SIMULATOR=${SIMULATOR:-target/release/backup-simulator}
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/${BENCH_NAME%.sh}.XXXXXX")
    SIM_PID=""
    EXP_PID=""
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

bench_cleanup() {
    stop "$EXP_PID"
    stop "$SIM_PID"
    rm -rf "$WORK"
}

die() { # die MESSAGE: the message and the tail of every log in WORK, then exit 1
    echo "${BENCH_NAME:-bench}: $*" >&2
    local log
    for log in "$WORK"/*.log; do
        [[ -s $log ]] && { echo "--- tail of $log" >&2; tail -n 20 "$log" >&2; }
    done
    exit 1
}

stop() { # stop PID: SIGTERM, then SIGKILL after 5 s
    local pid=$1
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

start_simulator() { # start_simulator ARGS...: $SIMULATOR on 127.0.0.1; sets SIM_PID, SIM_ADDR
    : >"$WORK/simulator.out" # exists before the background child opens it, for the loop below
    "$SIMULATOR" --listen 127.0.0.1:0 "$@" </dev/null >"$WORK/simulator.out" 2>"$WORK/simulator.log" &
    SIM_PID=$!
    SIM_ADDR=""
    for _ in $(seq 150); do
        SIM_ADDR=$(sed -n 's/^listening on \(127\.0\.0\.1:[0-9]*\).*/\1/p' "$WORK/simulator.out" | head -n 1)
        [[ -n $SIM_ADDR ]] && break
        kill -0 "$SIM_PID" 2>/dev/null || die "simulator exited"
        sleep 0.1
    done
    [[ -n $SIM_ADDR ]] || die "simulator did not print 'listening on' within 15 s"
}

now() { date +%s.%N; }
calc() { python3 -c "print($*)"; }
mb() { calc "round($1 / 1024, 1)"; }

cpu_seconds() { # cpu_seconds PID...: utime+stime in seconds (fields 14 and 15, after "(comm)")
    python3 - "$(getconf CLK_TCK)" "$@" <<'PY'
import sys
total = 0
for pid in sys.argv[2:]:
    stat = open(f"/proc/{pid}/stat").read()
    fields = stat[stat.rindex(")") + 2:].split()
    total += int(fields[11]) + int(fields[12])
print(total / int(sys.argv[1]))
PY
}
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

write_fleet_config() { # write_fleet_config FILE INTERVAL UPSTREAM_ADDR: one zdm upstream, SERVERS servers
    # (ZDM_API_VERSION, when set, pins the upstream's api_version instead of `auto`)
    python3 - "$1" "$2" "$3" "$SERVERS" "$CONCURRENCY" "${ZDM_API_VERSION:-}" <<'PY'
import sys
path, interval, addr, servers, concurrency, api_version = sys.argv[1:]
with open(path, "w") as f:
    f.write(f"""defaults:
  interval: {interval}
  timeout: 10s
  concurrency: {concurrency}
  timezone: Asia/Seoul
upstreams:
  - name: zdm-fleet
    type: zdm
    url: http://{addr}
    token_env: BENCH_TOKEN
""")
    if api_version:
        f.write(f"    api_version: \"{api_version}\"\n")
    f.write("    servers:\n")
    for i in range(1, int(servers) + 1):
        f.write(f"      - fleet-{i:05d}\n")
PY
}

EXP_URL=""
wait_ready() { # wait_ready T0: until the exporter EXP_PID answers 200 on EXP_URL/-/ready; dies
    # when it exits or READY_TIMEOUT seconds after T0 (from `now`)
    local t0=$1 code
    while :; do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$EXP_URL/-/ready" || true)
        [[ $code == 200 ]] && break
        kill -0 "$EXP_PID" 2>/dev/null || die "exporter exited"
        [[ $(calc "$(now) - $t0 > $READY_TIMEOUT") == True ]] \
            && die "exporter not ready within ${READY_TIMEOUT} s"
        sleep 0.02
    done
}

nginx_temp_paths() { # nginx_temp_paths DIR: the http-level temp paths of an nginx run from DIR
    echo "    client_body_temp_path $1/tmp/body;"
    local kind
    for kind in proxy fastcgi uwsgi scgi; do
        echo "    ${kind}_temp_path $1/tmp/$kind;"
    done
}

start_exporter() { # start_exporter NAME INTERVAL UPSTREAM_ADDR; sets EXP_PID, EXP_URL, READY_S
    write_fleet_config "$WORK/$1.yaml" "$2" "$3"
    launch_exporter "$1"
}

launch_exporter() { # launch_exporter NAME: the exporter on WORK/NAME.yaml (log WORK/NAME.log),
    # until ready; sets EXP_PID, EXP_URL, READY_S (spawn to ready, seconds)
    local name=$1 port t0
    port=$(free_port)
    EXP_URL="http://127.0.0.1:$port"
    t0=$(now)
    BENCH_TOKEN=bench "$EXPORTER" --config "$WORK/$name.yaml" \
        --web.listen-address "127.0.0.1:$port" >"$WORK/$name.log" 2>&1 &
    EXP_PID=$!
    wait_ready "$t0"
    READY_S=$(calc "round($(now) - $t0, 2)")
}

apt_install_missing() { # apt_install_missing CMD...: installs the Debian packages of the missing
    # commands (nginx as nginx-light when there is one), as root with apt-get; else dies
    local cmd missing=() want=()
    for cmd in "$@"; do
        command -v "$cmd" >/dev/null || missing+=("$cmd")
    done
    ((${#missing[@]})) || return 0
    if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
        die "missing ${missing[*]}; install them (Debian: apt-get install ${missing[*]/nginx/nginx-light})"
    fi
    echo "installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    for cmd in "${missing[@]}"; do
        if [[ $cmd == nginx ]] && apt-cache show nginx-light >/dev/null 2>&1; then
            want+=(nginx-light)
        else
            want+=("$cmd")
        fi
    done
    apt-get install -y -qq "${want[@]}" >/dev/null
}
