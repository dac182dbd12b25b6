#!/usr/bin/env bash
# Attack bench (issue 20, "The scrape always answers"): the release exporter against the
# bundled simulator (a generated fleet, so that /metrics is larger than the socket buffers),
# all on 127.0.0.1. Each attack runs beside a well-behaved scraper (a gzip GET /metrics each
# second, 10 s timeout, the right credentials where basic auth is on); the script prints the
# scraper's success and latency p50/p99 under each.
#
#   benches/attacks.sh                     # 600x5 fleet, 30 s per attack
#   SECONDS_EACH=60 benches/attacks.sh
#
# Attacks (benches/attacks.py): none (baseline); nonreaders (40 HTTP/1.1 clients that send
# GET /metrics and never read, reconnecting when closed); h2zero (12 HTTP/2-over-TLS
# connections with SETTINGS_INITIAL_WINDOW_SIZE=0, 20 streams each, PINGs answered, never a
# WINDOW_UPDATE); idle (600 connections that send nothing, reconnected as they are closed,
# against the default --web.max-connections 512); passwords (64 clients guessing passwords
# as fast as answered, basic auth at bcrypt cost 10); fifo (the config file swapped for a
# FIFO and SIGHUP sent every 2 s).
#
# Knobs (env): SERVERS (600), JOBS (5), SECONDS_EACH (30), SKIP_BUILD=1 (use the existing
# release binaries), BIN_DIR (target/release; target/debug to try the script quickly). Needs bash, curl, openssl, python3 (stdlib only), mkfifo.
set -euo pipefail

SERVERS=${SERVERS:-600}
JOBS=${JOBS:-5}
SECONDS_EACH=${SECONDS_EACH:-30}
CONCURRENCY=16
READY_TIMEOUT=120

cd "$(dirname "$0")/.."
# shellcheck source=benches/lib.sh
source benches/lib.sh
for tool in curl openssl python3 mkfifo; do
    command -v "$tool" >/dev/null || { echo "attacks.sh: $tool is required" >&2; exit 1; }
done

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    cargo build --release --bins
fi
BIN_DIR=${BIN_DIR:-target/release}
EXPORTER=$BIN_DIR/backup-exporter
SIMULATOR=$BIN_DIR/backup-simulator

WORK=$(mktemp -d "${TMPDIR:-/tmp}/attack-bench.XXXXXX")
SIM_PID=""
EXP_PID=""
HUP_PID=""

cleanup() {
    [[ -n $HUP_PID ]] && kill "$HUP_PID" 2>/dev/null || true
    stop "$EXP_PID"
    stop "$SIM_PID"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() {
    echo "attacks.sh: $*" >&2
    for log in "$WORK"/*.log; do
        [[ -s $log ]] && { echo "--- tail of $log" >&2; tail -n 20 "$log" >&2; }
    done
    exit 1
}

start_simulator --fleet "${SERVERS}x${JOBS}" --token bench

# A CA-less self-signed certificate for 127.0.0.1, and a bench-only basic auth user
# (prometheus / bench-pass-7d3e, bcrypt cost 10).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$WORK/server.key" -out "$WORK/server.crt" 2>/dev/null
printf 'tls_server_config:\n  cert_file: %s\n  key_file: %s\n' \
    "$WORK/server.crt" "$WORK/server.key" >"$WORK/web-tls.yml"
printf 'basic_auth_users:\n  prometheus: %s\n' \
    '$2b$10$An4/acDmKDAngFU0fgXPu.KrQMKM230/jPQ0axHlo0y9Lq2ClvM8y' >"$WORK/web-auth.yml"

# run_attack NAME ATTACK WEB_CONFIG(or -) [SCRAPER ARGS...]: a fresh exporter, then the attack.
run_attack() {
    local name=$1 attack=$2 web=$3 scheme=http
    shift 3
    write_fleet_config "$WORK/$name.yaml" 30s "$SIM_ADDR"
    local port args=()
    port=$(free_port)
    if [[ $web != - ]]; then
        args=(--web.config.file "$web")
        grep -q tls_server_config "$web" && scheme=https
    fi
    BENCH_TOKEN=bench "$EXPORTER" --config "$WORK/$name.yaml" "${args[@]}" --log.level debug \
        --web.listen-address "127.0.0.1:$port" >"$WORK/$name.log" 2>&1 &
    EXP_PID=$!
    local t0
    t0=$(now)
    until [[ $(curl -sk -o /dev/null -w '%{http_code}' --max-time 1 \
        -u prometheus:bench-pass-7d3e "$scheme://127.0.0.1:$port/-/ready" || true) == 200 ]]; do
        kill -0 "$EXP_PID" 2>/dev/null || die "exporter exited"
        [[ $(calc "$(now) - $t0 > $READY_TIMEOUT") == True ]] && die "exporter not ready"
        sleep 0.1
    done
    if [[ $attack == fifo ]]; then
        rm -f "$WORK/$name.yaml"
        mkfifo "$WORK/$name.yaml"
        (while :; do kill -HUP "$EXP_PID" 2>/dev/null || exit 0; sleep 2; done) &
        HUP_PID=$!
        attack=none
    fi
    python3 benches/attacks.py "$attack" "$scheme://127.0.0.1:$port/metrics" "$SECONDS_EACH" "$@" \
        | sed "s/^none       /$(printf '%-11s' "$name")/"
    if [[ -n $HUP_PID ]]; then
        kill "$HUP_PID" 2>/dev/null || true
        HUP_PID=""
    fi
    local t1
    t1=$(now)
    stop "$EXP_PID"
    EXP_PID=""
    printf '%-11s SIGTERM to exit: %s s; the exporter closed %s stalled, %s timed-out and %s idle connections, answered %s password checks 429, rejected %s reloads\n' \
        "$name" "$(calc "round($(now) - $t1, 2)")" \
        "$(count 'a response stalled for over a second gave its slot' "$name")" \
        "$(count 'no progress for --web.write-timeout abandoned' "$name")" \
        "$(count 'the oldest idle connection was closed' "$name")" \
        "$(count 'too many password checks waiting' "$name")" \
        "$(count 'configuration rejected' "$name")"
}

count() { grep -c -- "$1" "$WORK/$2.log" || true; }

printf 'attacks against the release exporter: fleet %sx%s, %s s of scrapes each, %s cores, load %s, %s\n' \
    "$SERVERS" "$JOBS" "$SECONDS_EACH" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$(date -u +%FT%TZ)"
run_attack baseline none -
run_attack nonreaders nonreaders -
run_attack h2zero h2zero "$WORK/web-tls.yml" --ca "$WORK/server.crt"
run_attack idle idle -
run_attack passwords passwords "$WORK/web-auth.yml" --auth prometheus:bench-pass-7d3e
run_attack fifo fifo -
