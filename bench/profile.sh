#!/usr/bin/env bash
# Where davgate spends its CPU on cached keep-alive GETs: a perf profile.
#
# Usage: bash bench/profile.sh     (about a minute; prints perf's top symbols)
#
# Starts a backend nginx with a 200-byte file and davgate (release build, a
# user and app password made with the CLI) on free 127.0.0.1 ports, runs
# `wrk -t2 -c64` with valid credentials for DURATION seconds while
# `perf record` samples davgate, and prints the hottest symbols (self time)
# and the same grouped by library. Then counts syscalls and context
# switches per request (`perf stat`) for davgate and, for comparison, for
# an nginx plain proxy (no auth, upstream keepalive) in front of the same
# backend. Needs `perf` (Debian: linux-perf) and
# perf_event access (root, or kernel.perf_event_paranoid <= 1).
#
# Environment: DURATION=15, FREQ=999 (samples/s), CALLGRAPH=1 (also
# record call graphs with DWARF unwinding; large), DAVGATE_BIN, KEEP=1.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$ROOT/bench/lib.sh"

DURATION=${DURATION:-15}
FREQ=${FREQ:-999}
ensure_packages wrk:wrk nginx:nginx curl:curl python3:python3 perf:linux-perf
build_davgate

make_workdir profile

mkdir -p "$WORK/www" "$WORK/davgate"
head -c 200 /dev/zero | tr '\0' 'x' >"$WORK/www/static.txt"
BK=$(free_port)
PORT=$(free_port)
NP=$(free_port)
nginx_start backend "
  server {
    listen 127.0.0.1:$BK;
    root $WORK/www;
  }"
nginx_start nginx "
  upstream backend { server 127.0.0.1:$BK; keepalive 64; }
  server {
    listen 127.0.0.1:$NP;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_set_header Host \$http_host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Remote-User alice;
    }
  }"
NP_PID=$LAST_PID
printf '[server]\nlisten = "127.0.0.1:%s"\n[upstream]\nurl = "http://127.0.0.1:%s"\n[store]\npath = "%s"\n' \
  "$PORT" "$BK" "$WORK/davgate/store" >"$WORK/davgate/davgate.toml"
dg() { DAVGATE_LOG=warn "$DAVGATE" --config "$WORK/davgate/davgate.toml" "$@" </dev/null; }
dg user add alice >/dev/null
PASSWORD=$(dg password create alice --name profile --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["password"])')
DAVGATE_LOG=${DAVGATE_LOG:-warn} "$DAVGATE" --config "$WORK/davgate/davgate.toml" serve </dev/null >/dev/null 2>"$WORK/davgate/serve.log" &
DG_PID=$!
track "$DG_PID"
wait_http "http://127.0.0.1:$PORT/" 30 || die "davgate did not come up"
URL="http://127.0.0.1:$PORT/static.txt"
AUTH="Authorization: Basic $(printf 'alice:%s' "$PASSWORD" | base64 -w0)"
curl -s -o /dev/null -H "$AUTH" "$URL"
timeout 30 wrk -t2 -c64 -d2s -H "$AUTH" "$URL" >/dev/null

graph=()
[ "${CALLGRAPH:-0}" = 1 ] && graph=(--call-graph "dwarf,16384")
perf record -q -F "$FREQ" "${graph[@]}" -p "$DG_PID" -o "$WORK/perf.data" >/dev/null 2>&1 &
PERF_PID=$!
sleep 0.5
t0=$(cpu_ticks "$DG_PID")
out=$(timeout $((DURATION + 30)) wrk -t2 -c64 -d"${DURATION}s" -H "$AUTH" "$URL")
t1=$(cpu_ticks "$DG_PID")
kill -INT "$PERF_PID"
wait "$PERF_PID" 2>/dev/null || true
requests=$(printf '%s\n' "$out" | awk '/ requests in / { print $1 }')

echo "## davgate CPU profile: cached keep-alive GET, wrk -t2 -c64 -d${DURATION}s"
echo
machine_info
echo "- $requests requests, $(printf '%s\n' "$out" | awk '/Requests\/sec/ { print $2 }') req/s, CPU $(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$requests" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }') µs per request (perf sampling adds a little)"
echo
tidy() { sed -e 's/[[:space:]]*-[[:space:]]*-[[:space:]]*$//' -e 's/[[:space:]]*$//' | grep -v '^#' | grep -v '^$'; }
echo "### By library (self time)"
echo
echo '```'
{ perf report -i "$WORK/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null | tidy | head -15; } || true
echo '```'
echo
echo "### Hottest symbols (self time, ≥ 0.5 %)"
echo
echo '```'
{ perf report -i "$WORK/perf.data" --no-children --sort dso,symbol --percent-limit 0.5 --stdio -g none 2>/dev/null | tidy | head -60; } || true
echo '```'
echo

# per_request NAME URL PID...: wrk for DURATION seconds under perf stat.
per_request() {
  local name=$1 url=$2 out requests t0 t1 stat
  shift 2
  local pids
  pids=$(printf '%s,' "$@")
  perf stat -x, -e raw_syscalls:sys_enter,context-switches,cpu-migrations -p "${pids%,}" -o "$WORK/stat.$name" &
  local sp=$!
  sleep 0.5
  t0=$(cpu_ticks "$@")
  out=$(timeout $((DURATION + 30)) wrk -t2 -c64 -d"${DURATION}s" -H "$AUTH" "$url")
  t1=$(cpu_ticks "$@")
  kill -INT "$sp"
  wait "$sp" 2>/dev/null || true
  requests=$(printf '%s\n' "$out" | awk '/ requests in / { print $1 }')
  stat=$(awk -F, -v n="$requests" '$3 == "raw_syscalls:sys_enter" { s = $1 } $3 == "context-switches" { c = $1 } $3 == "cpu-migrations" { m = $1 }
    END { printf "%.2f | %.3f | %.4f", s / n, c / n, m / n }' "$WORK/stat.$name")
  echo "| $name | $(printf '%s\n' "$out" | awk '/Requests\/sec/ { printf "%.0f", $2 }') | $(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" -v n="$requests" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }') | $stat |"
}
echo "### Per request, under perf stat (wrk -t2 -c64 -d${DURATION}s each)"
echo
echo "| proxy | req/s | CPU µs/req | syscalls/req | context switches/req | CPU migrations/req |"
echo "|---|---|---|---|---|---|"
mapfile -t nginx_pids < <(family "$NP_PID")
per_request "nginx plain proxy" "http://127.0.0.1:$NP/static.txt" "${nginx_pids[@]}"
per_request davgate "$URL" "$DG_PID"
