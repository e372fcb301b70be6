#!/usr/bin/env bash
# davgate's footprint (issue 5, point 3): memory idle, with 100k stored app
# passwords and 10k cached credentials, start-up time with 100k passwords,
# sled's disk size, and store writes on the request path.
#
# Usage: bash bench/footprint.sh        (about 5-10 minutes, most of it
#                                        filling the store; prints Markdown)
#
# The 100k passwords are created by bench/storegen.rs (an example target
# of the crate, built in release here): it goes
# through davgate's accounts API (the code path of `davgate password
# create`, one durable write per change), but hashes with argon2id m=8 KiB,
# t=1 instead of the configured cost, which `[hash]` does not allow below
# 8192 KiB. Through the CLI, 100k default-cost hashes would take hours.
# Stored hashes carry their own parameters, so the server checks them as
# usual (just faster); records are 4 bytes shorter than default-cost ones.
#
# Environment:
#   PASSWORDS=100000   stored passwords (25 per user, policy.max_active_passwords)
#   CACHED=10000       distinct credentials requested once (then cached)
#   FLUSH=30s          activity.flush_interval of the measured server
#   IDLE=5000          keep-alive connections held open idle at the end
#   CACHE_MIB=         store.cache_mib of the measured server (default: davgate's)
#   DAVGATE_BIN=path   use this davgate binary instead of building one
#   CARGO_TARGET_DIR   where to build (default: target)
#   KEEP=1             keep the temp dir
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$ROOT/bench/lib.sh"

PASSWORDS=${PASSWORDS:-100000}
CACHED=${CACHED:-10000}
FLUSH=${FLUSH:-30s}
IDLE=${IDLE:-5000}
PER_USER=25
USERS=$(((PASSWORDS + PER_USER - 1) / PER_USER))

ensure_packages nginx:nginx curl:curl python3:python3
build_davgate

# On disk, not tmpfs: write_bytes in /proc/<pid>/io counts page-cache writes
# to real files only.
make_workdir footprint
log "work dir $WORK"

# --- the store generator (an example target, so CI keeps it compiling) ----------
target=${CARGO_TARGET_DIR:-target}
case $target in /*) ;; *) target="$ROOT/$target" ;; esac
log "building bench/storegen.rs (CARGO_TARGET_DIR=$target)"
(cd "$ROOT" && CARGO_TARGET_DIR="$target" cargo build --release --locked --quiet --example storegen)
STOREGEN="$target/release/examples/storegen"

# --- backend: nginx with a 200-byte file ----------------------------------------
mkdir -p "$WORK/www"
head -c 200 /dev/zero | tr '\0' 'x' >"$WORK/www/static.txt"
BK=$(free_port)
nginx_start backend "
  server {
    listen 127.0.0.1:$BK;
    root $WORK/www;
  }"
wait_http "http://127.0.0.1:$BK/static.txt" 20 || die "backend nginx did not come up"

PORT=$(free_port)
config() { # dir
  mkdir -p "$1"
  {
    printf '[server]\nlisten = "127.0.0.1:%s"\n[upstream]\nurl = "http://127.0.0.1:%s"\n' "$PORT" "$BK"
    printf '[store]\npath = "%s"\n' "$1/store"
    if [ -n "${CACHE_MIB:-}" ]; then printf 'cache_mib = %s\n' "$CACHE_MIB"; fi
    printf '[activity]\nflush_interval = "%s"\n' "$FLUSH"
  } >"$1/davgate.toml"
}

# serve DIR: starts davgate, waits until it answers over HTTP; sets DG_PID
# and STARTUP_MS (from exec until the first HTTP answer, any status).
serve() {
  local t0 t1
  t0=$(date +%s%N)
  DAVGATE_LOG=warn "$DAVGATE" --config "$1/davgate.toml" serve </dev/null >/dev/null 2>>"$1/serve.log" &
  DG_PID=$!
  track "$DG_PID"
  local deadline=$((SECONDS + 120))
  until curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/"; do
    [ $SECONDS -lt $deadline ] || die "davgate did not come up: $(tail -3 "$1/serve.log")"
    kill -0 "$DG_PID" 2>/dev/null || die "davgate exited: $(tail -3 "$1/serve.log")"
    sleep 0.01
  done
  t1=$(date +%s%N)
  STARTUP_MS=$(((t1 - t0) / 1000000))
}
stop_server() {
  kill -TERM "$DG_PID"
  wait "$DG_PID" 2>/dev/null || true
  untrack "$DG_PID"
}
mib() { awk -v k="$1" 'BEGIN { if (k < 1024) printf "%d KiB", k; else printf "%.1f MiB", k / 1024 }'; }
metric() { # name: a counter from /metrics on the admin socket, or n/a
  curl -s --max-time 5 --unix-socket "$DIR/store.sock" http://localhost/metrics 2>/dev/null |
    awk -v n="$1" '$1 == n { print $2; found = 1 } END { if (!found) print "n/a" }'
}

# Syscalls that make sled data durable or write its files, counted per
# process with perf (system-wide tracepoints, filtered by pid) if it works.
PERF_EVENTS=(-e syscalls:sys_enter_fsync -e syscalls:sys_enter_fdatasync -e syscalls:sys_enter_pwrite64
  -e syscalls:sys_enter_pwritev -e syscalls:sys_enter_sync_file_range)
PERF=0
if command -v perf >/dev/null 2>&1 && perf record -q -a "${PERF_EVENTS[@]}" -o "$WORK/perf.probe" -- true >/dev/null 2>&1; then PERF=1; fi
perf_start() { # file
  PERF_PID=""
  PERF_T0=$(date +%s%N)
  [ $PERF = 1 ] || return 0
  perf record -q -a "${PERF_EVENTS[@]}" -o "$1" >/dev/null 2>&1 &
  PERF_PID=$!
  sleep 1
}
# perf_stop FILE PID: sets SYNCS (fsync, fdatasync, sync_file_range) and
# PWRITES counted for PID. Not in a subshell: it waits for perf to finish.
perf_stop() {
  SYNCS=n/a PWRITES=n/a
  PERF_WIN=$(awk -v a="$PERF_T0" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
  [ -n "$PERF_PID" ] || return 0
  kill -INT "$PERF_PID"
  wait "$PERF_PID" 2>/dev/null || true
  read -r SYNCS PWRITES < <(perf script -i "$1" -F pid,event 2>/dev/null | awk -v pid="$2" '
    $1 == pid && /fsync|fdatasync|sync_file_range/ { s++ }
    $1 == pid && /pwrite/ { w++ }
    END { printf "%d %d\n", s, w }')
}

# --- 1. idle, empty store ---------------------------------------------------------
DIR="$WORK/empty"
config "$DIR"
serve "$DIR"
sleep 2
EMPTY_STARTUP=$STARTUP_MS
EMPTY_RSS=$(proc_kib VmRSS "$DG_PID")
stop_server
EMPTY_DU=$(du -sk "$DIR/store" | cut -f1)
log "empty store: start-up ${EMPTY_STARTUP} ms, RSS $(mib "$EMPTY_RSS")"

# --- 2. fill the store ----------------------------------------------------------------
DIR="$WORK/full"
config "$DIR"
log "storegen: $USERS users x $PER_USER passwords"
gen_t0=$(date +%s)
"$STOREGEN" "$DIR/davgate.toml" "$USERS" "$PER_USER" "$WORK/creds.txt" 2>"$WORK/storegen.log"
GEN_S=$(($(date +%s) - gen_t0))
STORED=$(wc -l <"$WORK/creds.txt")
FULL_DU=$(du -sk "$DIR/store" | cut -f1)
log "storegen: $STORED passwords in ${GEN_S}s, store $(mib "$FULL_DU")"

# --- 3. start-up and idle with 100k -----------------------------------------------------
STARTUPS=()
for _ in 1 2 3; do
  serve "$DIR"
  STARTUPS+=("$STARTUP_MS")
  stop_server
done
serve "$DIR"
STARTUPS+=("$STARTUP_MS")
sleep 2
FULL_RSS=$(proc_kib VmRSS "$DG_PID")
log "100k store: start-ups ${STARTUPS[*]} ms, RSS $(mib "$FULL_RSS")"

# --- 4. 10k distinct credentials, each once (cold: one argon2 run each), then again (cached)
URL="http://127.0.0.1:$PORT/static.txt"
# Spread over the users: every 10th credential.
awk -v n="$CACHED" 'NR % 10 == 1 && c < n { print; c++ }' "$WORK/creds.txt" >"$WORK/cached.txt"
[ "$(wc -l <"$WORK/cached.txt")" -ge "$CACHED" ] || cp "$WORK/creds.txt" "$WORK/cached.txt"
SERVE_T0=$SECONDS
flushes0=$(metric davgate_activity_flush_seconds_count)
wb0=$(io_field "$DG_PID" write_bytes)
perf_start "$WORK/perf.cold"
COLD=$(python3 "$ROOT/bench/clients.py" each "$URL" "$WORK/cached.txt" "$CACHED")
perf_stop "$WORK/perf.cold" "$DG_PID"
COLD_SYNC=$SYNCS COLD_PWRITE=$PWRITES COLD_WIN=$PERF_WIN
wb1=$(io_field "$DG_PID" write_bytes)
CACHED_RSS=$(proc_kib VmRSS "$DG_PID")
log "10k cold: $COLD; write_bytes $((wb1 - wb0)), syncs $COLD_SYNC, pwrites $COLD_PWRITE; RSS $(mib "$CACHED_RSS")"

perf_start "$WORK/perf.warm"
WARM=$(python3 "$ROOT/bench/clients.py" each "$URL" "$WORK/cached.txt" "$CACHED")
perf_stop "$WORK/perf.warm" "$DG_PID"
WARM_SYNC=$SYNCS WARM_PWRITE=$PWRITES WARM_WIN=$PERF_WIN
wb2=$(io_field "$DG_PID" write_bytes)
flushes1=$(metric davgate_activity_flush_seconds_count)
CACHED_RSS2=$(proc_kib VmRSS "$DG_PID")
REQ_WINDOW=$((SECONDS - SERVE_T0))
log "10k cached: $WARM; write_bytes $((wb2 - wb1)), syncs $WARM_SYNC, pwrites $WARM_PWRITE; RSS $(mib "$CACHED_RSS2")"

# --- 5. the next activity flush: one batch ----------------------------------------------
flush_s=$(awk -v f="$FLUSH" 'BEGIN { v = f; sub(/[a-z]+$/, "", v); u = f; sub(/^[0-9.]+/, "", u);
  m = (u == "ms") ? 0.001 : (u == "m") ? 60 : (u == "h") ? 3600 : 1; printf "%d", v * m + 0.999 }')
perf_start "$WORK/perf.flush"
sleep $((flush_s + 2))
perf_stop "$WORK/perf.flush" "$DG_PID"
FLUSH_SYNC=$SYNCS FLUSH_PWRITE=$PWRITES FLUSH_WIN=$PERF_WIN
wb3=$(io_field "$DG_PID" write_bytes)
flushes2=$(metric davgate_activity_flush_seconds_count)
FINAL_RSS=$(proc_kib VmRSS "$DG_PID")
HWM=$(proc_kib VmHWM "$DG_PID")

# --- 6. idle keep-alive connections: what each one holds ----------------------------------
# Held for 10 s, well inside server.header_read_timeout (30 s), which
# closes a connection that waits longer for its next request.
[ "$(ulimit -n)" -gt $((IDLE + 200)) ] || ulimit -n $((IDLE + 1024)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"
python3 "$ROOT/bench/clients.py" idle "$URL" "$WORK/cached.txt" "$IDLE" 10 >"$WORK/idle.json" &
IDLE_PID=$!
for _ in $(seq 1 120); do [ -s "$WORK/idle.json" ] && break; kill -0 "$IDLE_PID" 2>/dev/null || break; sleep 0.5; done
IDLE_RSS=$(proc_kib VmRSS "$DG_PID")
IDLE_OPENED=$(cat "$WORK/idle.json" 2>/dev/null || echo '{"connections": 0}')
wait "$IDLE_PID" || true
log "idle connections: $IDLE_OPENED; RSS $(mib "$IDLE_RSS")"
stop_server
FINAL_DU=$(du -sk "$DIR/store" | cut -f1)

# --- report -----------------------------------------------------------------------------
delta() { if [ "$1" = n/a ] || [ "$2" = n/a ]; then echo n/a; else awk -v a="$1" -v b="$2" 'BEGIN { print b - a }'; fi; }
sorted_startups=$(printf '%s\n' "${STARTUPS[@]}" | sort -n | tr '\n' ' ')
median_startup=$(printf '%s\n' "${STARTUPS[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
echo "## davgate footprint"
echo
machine_info
echo "- store: $STORED app passwords for $USERS users (storegen: argon2id m=8 KiB t=1 hashes through the accounts API, ${GEN_S}s), activity.flush_interval = $FLUSH, store.cache_mib = ${CACHE_MIB:-default}"
echo
echo "| measurement | result |"
echo "|---|---|"
echo "| RSS idle, empty store (2 s after start-up) | $(mib "$EMPTY_RSS") |"
echo "| start-up, empty store (exec until the first HTTP answer) | ${EMPTY_STARTUP} ms |"
echo "| RSS idle with $STORED stored passwords | $(mib "$FULL_RSS") |"
echo "| start-up with $STORED stored passwords (median of ${#STARTUPS[@]}: $sorted_startups ms) | ${median_startup} ms |"
echo "| RSS after $CACHED distinct credentials, each requested once (now cached) | $(mib "$CACHED_RSS") |"
echo "| RSS after the same $CACHED again (all cache hits) | $(mib "$CACHED_RSS2") |"
echo "| RSS after the next activity flush / peak (VmHWM) | $(mib "$FINAL_RSS") / $(mib "$HWM") |"
echo "| RSS with $IDLE idle keep-alive connections open ($IDLE_OPENED) / per connection | $(mib "$IDLE_RSS") / $(awk -v a="$FINAL_RSS" -v b="$IDLE_RSS" -v n="$IDLE" 'BEGIN { printf "%.1f KiB", (b - a) / n }') |"
echo "| sled on disk: empty / $STORED passwords / after serving and flushing | $(mib "$EMPTY_DU") / $(mib "$FULL_DU") / $(mib "$FINAL_DU") |"
echo "| $CACHED cold requests (one argon2 run each): $COLD | in a ${COLD_WIN}s window: bytes written to files $((wb1 - wb0)), fsync+fdatasync $COLD_SYNC, pwrite $COLD_PWRITE |"
echo "| $CACHED cached requests: $WARM | in a ${WARM_WIN}s window: bytes written to files $((wb2 - wb1)), fsync+fdatasync $WARM_SYNC, pwrite $WARM_PWRITE |"
echo "| activity flush ticks (\`davgate_activity_flush_seconds_count\` on the admin socket; it also counts empty flushes) during those ${REQ_WINDOW}s of requests | $(delta "$flushes0" "$flushes1") |"
echo "| the next ${FLUSH_WIN}s (one flush interval, no requests): flush ticks / bytes written / fsync+fdatasync / pwrite | $(delta "$flushes1" "$flushes2") / $((wb3 - wb2)) / $FLUSH_SYNC / $FLUSH_PWRITE |"
echo
echo "Bytes written: \`write_bytes\` of /proc/<pid>/io (page-cache writes to files; davgate logs at warn to a file, nothing was logged)."
echo "Syscalls: perf tracepoints, system-wide, counted for davgate's pid (n/a when perf is unavailable). davgate"
echo "turns off sled's background flusher (flush_every_ms) and flushes each acknowledged write itself, so an"
echo "idle store makes no fsync."
