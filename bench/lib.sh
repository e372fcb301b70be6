# shellcheck shell=bash
# Helpers shared by bench/compare.sh and bench/footprint.sh (sourced, not run).
#
# Everything here is local: processes this script started, /proc of those
# processes, ports on 127.0.0.1.

export PATH="$PATH:/usr/sbin:/sbin"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# apt_install PACKAGE...: installs them from Debian (none given: nothing).
apt_install() {
  [ $# -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  log "installing $* (apt-get)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

# ensure_packages CMD:PACKAGE... installs the Debian packages whose command
# is missing (one `apt-get update` first, only if something is missing).
ensure_packages() {
  local missing=() pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
  done
  apt_install "${missing[@]}"
}

# ensure_package_files PATH:PACKAGE...: installs each PACKAGE whose PATH is missing.
ensure_package_files() {
  local missing=() pair
  for pair in "$@"; do
    [ -e "${pair%%:*}" ] || missing+=("${pair#*:}")
  done
  apt_install "${missing[@]}"
}

# build_davgate: release build of the working tree, unless DAVGATE_BIN
# names a binary already. Sets DAVGATE to the binary's path.
build_davgate() {
  if [ -n "${DAVGATE_BIN:-}" ]; then
    DAVGATE=$DAVGATE_BIN
  else
    local target=${CARGO_TARGET_DIR:-target}
    case $target in /*) ;; *) target="$ROOT/$target" ;; esac
    log "cargo build --release --locked (CARGO_TARGET_DIR=$target)"
    (cd "$ROOT" && CARGO_TARGET_DIR="$target" cargo build --release --locked --quiet --bin davgate)
    DAVGATE="$target/release/davgate"
  fi
  [ -x "$DAVGATE" ] || die "$DAVGATE is not an executable"
}

# free_port: a TCP port on 127.0.0.1 that was free a moment ago and that
# this script has not handed out before.
USED_PORTS=" "
free_port() {
  local p
  while :; do
    p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    case $USED_PORTS in *" $p "*) continue ;; esac
    USED_PORTS="$USED_PORTS$p "
    echo "$p"
    return
  done
}

# wait_http URL [SECONDS]: until anything answers over HTTP(S) (any status).
wait_http() {
  local url=$1 deadline=$((SECONDS + ${2:-20}))
  while [ $SECONDS -lt "$deadline" ]; do
    if curl -ks -o /dev/null --max-time 2 "$url"; then return 0; fi
    sleep 0.05
  done
  return 1
}

# Processes this script started, stopped (TERM, then KILL) by stop_all.
STARTED_PIDS=()
track() { STARTED_PIDS+=("$1"); }
untrack() {
  local p kept=()
  for p in "${STARTED_PIDS[@]}"; do [ "$p" = "$1" ] || kept+=("$p"); done
  STARTED_PIDS=("${kept[@]}")
}
stop_all() {
  local p i
  [ ${#STARTED_PIDS[@]} -eq 0 ] && return 0
  for p in "${STARTED_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for i in $(seq 1 50); do
    local alive=0
    for p in "${STARTED_PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    [ "$i" = 50 ] && for p in "${STARTED_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    sleep 0.1
  done
  STARTED_PIDS=()
}

# Extra directories removed on exit (besides $WORK).
CLEANUP_DIRS=()

# Creates this run's temp dir as $WORK; on exit every started process is
# stopped and $WORK removed (kept with KEEP=1), with CLEANUP_DIRS.
make_workdir() {
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/davgate-$1.XXXXXX")
  trap remove_workdir EXIT
  trap 'exit 130' INT TERM
}

remove_workdir() {
  stop_all
  if [ "${KEEP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
  if [ ${#CLEANUP_DIRS[@]} -gt 0 ]; then rm -rf "${CLEANUP_DIRS[@]}"; fi
}

# family PID: the pid and its direct children (nginx: master and workers).
family() {
  echo "$1"
  pgrep -P "$1" 2>/dev/null || true
}

# cpu_ticks PID...: utime+stime (+ reaped children) summed, in clock ticks.
cpu_ticks() {
  local total=0 p stat f
  for p in "$@"; do
    stat=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    read -r -a f <<<"${stat##*) }"
    # after "pid (comm) ": [0] state ... [11] utime [12] stime [13] cutime [14] cstime
    total=$((total + f[11] + f[12] + f[13] + f[14]))
  done
  echo "$total"
}
export CLK_TCK
CLK_TCK=$(getconf CLK_TCK)

# proc_kib FIELD PID...: a /proc/<pid>/status field (VmRSS, VmHWM) summed, KiB.
proc_kib() {
  local field=$1 total=0 p v
  shift
  for p in "$@"; do
    v=$(awk -v f="$field:" '$1 == f { print $2 }' "/proc/$p/status" 2>/dev/null || true)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}

# io_field FIELD PID: a /proc/<pid>/io counter (write_bytes, syscw, ...).
io_field() {
  awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/io" 2>/dev/null || echo 0
}

# machine_info: date, CPU, load and tool versions, as Markdown.
machine_info() {
  local cpu rev
  cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
  rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
  if [ -n "$(git -C "$ROOT" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ]; then
    rev="$rev + uncommitted changes in src/"
  fi
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- machine: $(nproc) CPUs, ${cpu:-unknown CPU}, $(awk '/MemTotal/ { printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r)"
  echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  if [ -n "${DAVGATE_BIN:-}" ]; then
    echo "- davgate: prebuilt $DAVGATE (the tree is at $rev)"
  else
    echo "- davgate: $rev, release build"
  fi
  if command -v nginx >/dev/null; then echo "- $(nginx -v 2>&1)"; fi
  if command -v caddy >/dev/null; then echo "- caddy $(caddy version | cut -d' ' -f1)"; fi
  if command -v wrk >/dev/null; then echo "- $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"; fi
  echo "- $(curl --version | head -1 | cut -d' ' -f1-2), $(openssl version | cut -d' ' -f1-2)"
}

# nginx_start NAME HTTP_BLOCK: an nginx (master + one worker per CPU) as the
# current user, with its config, pid file, temp paths and logs in
# $WORK/NAME, in the foreground of a background job (never the system
# service). Its TLS certificate is $CERT/$KEY when set. Sets LAST_PID.
# nginx_start NAME HTTP-BLOCK [MAIN-BLOCK]: an nginx in $WORK/NAME with
# HTTP-BLOCK inside `http {}` and MAIN-BLOCK (load_module ...) before it.
nginx_start() {
  local dir="$WORK/$1" user="" tls=""
  mkdir -p "$dir"
  # As root, nginx would switch its workers to "nobody", who cannot read $WORK.
  [ "$(id -u)" = 0 ] && user="user root;"
  [ -n "${CERT:-}" ] && tls="ssl_certificate $CERT; ssl_certificate_key $KEY;"
  cat >"$dir/nginx.conf" <<CONF
$user
worker_processes auto;
pid $dir/nginx.pid;
error_log $dir/error.log error;
${3:-}
events { worker_connections 4096; }
http {
  access_log off;
  default_type application/octet-stream;
  client_body_temp_path $dir/client_body;
  proxy_temp_path $dir/proxy_temp;
  fastcgi_temp_path $dir/fastcgi_temp;
  uwsgi_temp_path $dir/uwsgi_temp;
  scgi_temp_path $dir/scgi_temp;
  $tls
$2
}
CONF
  nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" -g 'daemon off;' 2>"$dir/stderr.log" &
  LAST_PID=$!
  track "$LAST_PID"
}
