#!/usr/bin/env bash
# davgate against nginx and Caddy on 127.0.0.1, measured interleaved (issue 5).
#
# Usage: bash bench/compare.sh              (about 12 minutes; prints Markdown)
#        ROUNDS=1 DURATION=3 bash bench/compare.sh   (a quick run, ~3 minutes)
#
# Installs wrk, nginx, caddy, apache2-utils (htpasswd) and openssl from
# Debian if missing, builds davgate in release mode, and starts in a temp
# dir, as the current user, on free 127.0.0.1 ports (never the system
# services): a backend nginx (a 200-byte static file, a sparse big file, a
# PUT sink on tmpfs, /dav/ proxied to a WsgiDAV collection from the
# repo's .venv, and /native/, a collection nginx's dav_ext module answers
# PROPFIND on), then the five targets:
#
#   direct      the backend itself
#   nginx       nginx as a plain proxy, no auth, upstream keepalive
#   nginx-auth  the same nginx config plus auth_basic, bcrypt cost 10 (htpasswd -B -C 10)
#   caddy       Caddy reverse_proxy with basicauth (caddy hash-password: bcrypt, cost 14 in Caddy 2.6, cached)
#   davgate     the release binary, a user and app password made with the CLI
#
# Each round runs every target once (A B C D E, A B C D E, ...); tables show
# medians with min..max, ratios to the direct backend and to nginx's plain
# proxy, and the CPU time the target spent per request (utime+stime from
# /proc/<pid>/stat of the target's processes, before/after each run).
#
# Environment:
#   ROUNDS=3 DURATION=10 THREADS=2 CONNECTIONS=64   wrk -t -c -d per run and rounds
#   PHASES="keepalive close propfind propfind-native tls bigbody cold"
#   TARGETS="direct nginx nginx-auth caddy davgate"
#   BIG_MIB=1024          size of the large-body PUT/GET
#   DAVGATE_BIN=path      use this davgate binary instead of building one
#   CARGO_TARGET_DIR      where to build (default: target)
#   DAVGATE_LOG=warn      davgate's log filter (the others log errors only too)
#   ACCESS_LOG=1          every proxy writes its default access log to a file:
#                         nginx `access_log` (combined, unbuffered), Caddy
#                         `log`, davgate DAVGATE_LOG=info (its defaults)
#   KEEP=1                keep the temp dir (configs, logs, raw wrk output)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$ROOT/bench/lib.sh"

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
PHASES=${PHASES:-keepalive close propfind propfind-native tls bigbody cold}
TARGETS=${TARGETS:-direct nginx nginx-auth caddy davgate}
ACCESS_LOG=${ACCESS_LOG:-0}
case $ACCESS_LOG in 0 | 1) ;; *) echo "ACCESS_LOG must be 0 or 1, not $ACCESS_LOG" >&2 && exit 2 ;; esac
[ "$ACCESS_LOG" = 1 ] && DAVGATE_LOG=${DAVGATE_LOG:-info}
BIG_MIB=${BIG_MIB:-1024}
has_phase() { case " $PHASES " in *" $1 "*) return 0 ;; esac; return 1; }

ensure_packages wrk:wrk nginx:nginx caddy:caddy htpasswd:apache2-utils openssl:openssl curl:curl python3:python3
# nginx's own PROPFIND (the dav_ext module): a DAV collection fast enough
# that the proxies, not the backend, set the pace.
DAV_EXT=/usr/lib/nginx/modules/ngx_http_dav_ext_module.so
if has_phase propfind-native; then ensure_package_files "$DAV_EXT:libnginx-mod-http-dav-ext"; fi
VENV_PY="$ROOT/.venv/bin/python"
if has_phase propfind && ! "$VENV_PY" -c 'import wsgidav, cheroot' >/dev/null 2>&1; then
  log "no WsgiDAV in .venv: running scripts/test-env.sh"
  bash "$ROOT/scripts/test-env.sh"
fi
build_davgate

make_workdir compare
# PUT bodies land on tmpfs when there is one, so the disk is not measured.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then SINK=$(mktemp -d /dev/shm/davgate-compare.XXXXXX); else SINK="$WORK/sink"; fi
CLEANUP_DIRS+=("$SINK")
mkdir -p "$WORK"/{www,www/native,dav,wrk,tls} "$SINK"/{put,tmp}
log "work dir $WORK"

# --- content ----------------------------------------------------------------
head -c 200 /dev/zero | tr '\0' 'x' >"$WORK/www/static.txt"
truncate -s "${BIG_MIB}M" "$WORK/www/big.bin"
for i in $(seq -w 1 20); do
  printf 'BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:%s@bench\r\nDTSTART:20260101T100000Z\r\nSUMMARY:event %s\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n' "$i" "$i" >"$WORK/dav/event$i.ics"
done
cp "$WORK"/dav/*.ics "$WORK/www/native/"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
  -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" 2>/dev/null
CERT="$WORK/tls/cert.pem"
KEY="$WORK/tls/key.pem"

# --- davgate: a user and an app password through the CLI, before serve --------
DG_HTTP=$(free_port)
DG_TLS=$(free_port)
BK_HTTP=$(free_port)
BK_TLS=$(free_port)
WD_PORT=$(free_port)
dg_config() { # name port tls?
  mkdir -p "$WORK/$1"
  {
    printf '[server]\nlisten = "127.0.0.1:%s"\n' "$2"
    if [ "$3" = tls ]; then printf '[server.tls]\ncert = "%s"\nkey = "%s"\n' "$CERT" "$KEY"; fi
    printf '[upstream]\nurl = "http://127.0.0.1:%s"\n[store]\npath = "%s"\n' "$BK_HTTP" "$WORK/$1/store"
  } >"$WORK/$1/davgate.toml"
}
dg_config davgate "$DG_HTTP" plain
dg_config davgate-tls "$DG_TLS" tls
dg() { DAVGATE_LOG=warn "$DAVGATE" --config "$WORK/davgate/davgate.toml" "$@" </dev/null; }
dg user add alice >/dev/null
PASSWORD=$(dg password create alice --name bench --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["password"])')
# The TLS instance gets a copy of the same store (sled is closed here).
cp -a "$WORK/davgate/store" "$WORK/davgate-tls/store"
AUTH="Authorization: Basic $(printf 'alice:%s' "$PASSWORD" | base64 -w0)"

# --- backend: nginx (static, big file, PUT sink, /dav/ -> WsgiDAV, /native/ DAV)
MAIN_BACKEND="" NATIVE_DAV=""
if has_phase propfind-native; then
  MAIN_BACKEND="load_module $DAV_EXT;"
  NATIVE_DAV="location /native/ { dav_ext_methods PROPFIND OPTIONS; }"
fi
nginx_start backend "
  sendfile on;
  tcp_nopush on;
  upstream wsgidav { server 127.0.0.1:$WD_PORT; keepalive 32; }
  server {
    listen 127.0.0.1:$BK_HTTP;
    listen 127.0.0.1:$BK_TLS ssl;
    root $WORK/www;
    location /dav/ {
      proxy_pass http://wsgidav;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_set_header Authorization \"\";
    }
    $NATIVE_DAV
    location /put/ {
      root $SINK;
      dav_methods PUT;
      create_full_put_path on;
      client_max_body_size 0;
      client_body_temp_path $SINK/tmp;
    }
  }" "$MAIN_BACKEND"
PID_BACKEND=$LAST_PID

if has_phase propfind; then
  cat >"$WORK/wsgidav.yaml" <<EOF
host: 127.0.0.1
port: $WD_PORT
server: cheroot
verbose: 1
logging:
  enable_loggers: []
provider_mapping:
  "/dav": "$WORK/dav"
http_authenticator:
  trusted_auth_header: HTTP_X_REMOTE_USER
  accept_basic: true
  accept_digest: false
  default_to_digest: false
simple_dc:
  user_mapping:
    "*":
      unused-bench-user:
        password: "$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
property_manager: true
lock_storage: true
dir_browser:
  enable: false
EOF
  "$VENV_PY" -m wsgidav.server.server_cli --config "$WORK/wsgidav.yaml" >"$WORK/wsgidav.log" 2>&1 &
  track $!
fi

# --- proxies ------------------------------------------------------------------
NP_HTTP=$(free_port)
NP_TLS=$(free_port)
NA_HTTP=$(free_port)
NA_TLS=$(free_port)
CD_HTTP=$(free_port)
CD_TLS=$(free_port)
nginx_proxy() { # name http-port tls-port identity extra
  local access=""
  [ "$ACCESS_LOG" = 1 ] && access="access_log $WORK/$1/access.log;"
  nginx_start "$1" "
  upstream backend { server 127.0.0.1:$BK_HTTP; keepalive 64; }
  server {
    listen 127.0.0.1:$2;
    listen 127.0.0.1:$3 ssl;
    client_max_body_size 0;
    $access
    $5
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_set_header Host \$http_host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$http_host;
      proxy_set_header X-Remote-User $4;
      proxy_request_buffering off;
    }
  }"
}
nginx_proxy nginx "$NP_HTTP" "$NP_TLS" alice ""
PID_NGINX=$LAST_PID
htpasswd -b -B -C 10 -c "$WORK/htpasswd" alice "$PASSWORD" 2>/dev/null
nginx_proxy nginx-auth "$NA_HTTP" "$NA_TLS" "\$remote_user" "auth_basic \"bench\"; auth_basic_user_file $WORK/htpasswd;"
PID_NGINX_AUTH=$LAST_PID

mkdir -p "$WORK/caddy"/{home,data,config}
CADDY_HASH=$(caddy hash-password --plaintext "$PASSWORD")
caddy_site() { # address tls-line
  local access=""
  [ "$ACCESS_LOG" = 1 ] && access="log {
		output file $WORK/caddy/access.log
	}"
  cat <<EOF
$1 {
	bind 127.0.0.1
	$2
	$access
	basicauth {
		alice $CADDY_HASH
	}
	reverse_proxy 127.0.0.1:$BK_HTTP {
		header_up X-Remote-User {http.auth.user.id}
	}
}
EOF
}
{
  printf '{\n\tadmin off\n\tauto_https off\n\tstorage file_system %s\n\tlog {\n\t\tlevel ERROR\n\t}\n}\n' "$WORK/caddy/data"
  caddy_site "http://127.0.0.1:$CD_HTTP" ""
  caddy_site "https://127.0.0.1:$CD_TLS" "tls $CERT $KEY"
} >"$WORK/caddy/Caddyfile"
HOME="$WORK/caddy/home" XDG_DATA_HOME="$WORK/caddy/data" XDG_CONFIG_HOME="$WORK/caddy/config" \
  caddy run --config "$WORK/caddy/Caddyfile" --adapter caddyfile >"$WORK/caddy/caddy.log" 2>&1 &
track $!
PID_CADDY=$!

DAVGATE_LOG=${DAVGATE_LOG:-warn} "$DAVGATE" --config "$WORK/davgate/davgate.toml" serve </dev/null >/dev/null 2>"$WORK/davgate/serve.log" &
track $!
PID_DAVGATE=$!
if has_phase tls; then
  DAVGATE_LOG=${DAVGATE_LOG:-warn} "$DAVGATE" --config "$WORK/davgate-tls/davgate.toml" serve </dev/null >/dev/null 2>"$WORK/davgate-tls/serve.log" &
  track $!
  PID_DAVGATE_TLS=$!
fi

for url in "http://127.0.0.1:$BK_HTTP/" "http://127.0.0.1:$NP_HTTP/" "http://127.0.0.1:$NA_HTTP/" \
  "http://127.0.0.1:$CD_HTTP/" "http://127.0.0.1:$DG_HTTP/"; do
  wait_http "$url" 30 || die "$url did not come up (logs in $WORK; KEEP=1 keeps them)"
done
if has_phase tls; then wait_http "https://127.0.0.1:$DG_TLS/" 30 || die "davgate TLS did not come up"; fi
if has_phase propfind; then
  wait_http "http://127.0.0.1:$WD_PORT/" 30 || die "WsgiDAV did not come up: $(tail -5 "$WORK/wsgidav.log")"
fi

# --- measurement helpers ------------------------------------------------------
port_of() { # phase target
  local tls=0
  [ "$1" = tls ] && tls=1
  case $2 in
    direct) [ $tls = 1 ] && echo "$BK_TLS" || echo "$BK_HTTP" ;;
    nginx) [ $tls = 1 ] && echo "$NP_TLS" || echo "$NP_HTTP" ;;
    nginx-auth) [ $tls = 1 ] && echo "$NA_TLS" || echo "$NA_HTTP" ;;
    caddy) [ $tls = 1 ] && echo "$CD_TLS" || echo "$CD_HTTP" ;;
    davgate) [ $tls = 1 ] && echo "$DG_TLS" || echo "$DG_HTTP" ;;
  esac
}
pids_of() { # phase target: the processes whose CPU and memory count
  case $2 in
    direct) family "$PID_BACKEND" ;;
    nginx) family "$PID_NGINX" ;;
    nginx-auth) family "$PID_NGINX_AUTH" ;;
    caddy) echo "$PID_CADDY" ;;
    davgate) if [ "$1" = tls ]; then echo "$PID_DAVGATE_TLS"; else echo "$PID_DAVGATE"; fi ;;
  esac
}
url_of() { # phase target
  local scheme=http path=/static.txt
  [ "$1" = tls ] && scheme=https
  [ "$1" = propfind ] && path=/dav/
  [ "$1" = propfind-native ] && path=/native/
  echo "$scheme://127.0.0.1:$(port_of "$1" "$2")$path"
}
cat >"$WORK/propfind.lua" <<'EOF'
wrk.method = "PROPFIND"
wrk.headers["Depth"] = "1"
wrk.headers["Content-Type"] = "application/xml; charset=utf-8"
wrk.body = '<?xml version="1.0" encoding="utf-8"?><d:propfind xmlns:d="DAV:"><d:prop><d:resourcetype/><d:getetag/><d:getcontentlength/><d:getlastmodified/><d:displayname/></d:prop></d:propfind>'
EOF
wrk_args() { # phase target
  local args=(-H "$AUTH")
  case $1 in
    close) args+=(-H "Connection: close") ;;
    propfind | propfind-native)
      args+=(-s "$WORK/propfind.lua")
      # The direct backend gets the identity a proxy would have set.
      [ "$2" = direct ] && args=(-H "X-Remote-User: alice" -s "$WORK/propfind.lua")
      ;;
  esac
  printf '%s\n' "${args[@]}"
}

# run_wrk PHASE TARGET ROUND: one measured wrk run, appended to wrk.tsv.
run_wrk() {
  local phase=$1 target=$2 round=$3 url pids args t0 t1 out
  url=$(url_of "$phase" "$target")
  mapfile -t pids < <(pids_of "$phase" "$target")
  mapfile -t args < <(wrk_args "$phase" "$target")
  t0=$(cpu_ticks "${pids[@]}")
  out=$(timeout $((DURATION + 30)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 5s --latency "${args[@]}" "$url" 2>&1) || true
  t1=$(cpu_ticks "${pids[@]}")
  printf '%s\n' "$out" >"$WORK/wrk/$phase-$target-$round.txt"
  printf '%s\n' "$out" | awk -v phase="$phase" -v target="$target" -v round="$round" -v ticks=$((t1 - t0)) '
    function ms(v) {
      if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
      if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
      if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000
      return "nan"
    }
    BEGIN { req = 0; secs = 0; p99 = "nan"; non2xx = 0; sockerr = 0 }
    / requests in / { req = $1; secs = $4; sub(/s,$/, "", secs) }
    $1 == "99%" { p99 = ms($2) }
    /Non-2xx or 3xx responses:/ { non2xx = $NF }
    /Socket errors:/ { gsub(/,/, ""); sockerr = $4 + $6 + $8 + $10 }
    END { printf "%s\t%s\t%s\t%d\t%s\t%s\t%d\t%d\t%d\n", phase, target, round, req, secs, p99, non2xx, sockerr, ticks }
  ' >>"$WORK/wrk.tsv"
  tail -1 "$WORK/wrk.tsv" | awk -F'\t' '{ printf "  %-9s %-10s round %s: %6.0f req/s, p99 %s ms, cpu ticks %s\n", $1, $2, $3, ($5 > 0 ? ($4 - $7) / $5 : 0), $6, $9 }' >&2
}

# warm_up PHASE TARGET: one request must succeed, then 1 s of load.
warm_up() {
  local phase=$1 target=$2 url code args
  url=$(url_of "$phase" "$target")
  mapfile -t args < <(wrk_args "$phase" "$target")
  if [ "$phase" = propfind ] || [ "$phase" = propfind-native ]; then
    local hdr=(-H "$AUTH")
    [ "$target" = direct ] && hdr=(-H "X-Remote-User: alice")
    code=$(curl -ks -o /dev/null -w '%{http_code}' --max-time 30 -X PROPFIND -H 'Depth: 1' "${hdr[@]}" "$url" || true)
  else
    code=$(curl -ks -o /dev/null -w '%{http_code}' --max-time 30 -H "$AUTH" "$url" || true)
  fi
  case $code in 2*) ;; *) log "warning: $phase $target: first request answered $code ($url)" ;; esac
  timeout 30 wrk -t"$THREADS" -c"$CONNECTIONS" -d1s --timeout 5s "${args[@]}" "$url" >/dev/null 2>&1 || true
}

# --- phases -----------------------------------------------------------------
: >"$WORK/wrk.tsv"
for phase in keepalive close propfind propfind-native tls; do
  has_phase "$phase" || continue
  log "phase $phase: $ROUNDS rounds x ($TARGETS), ${DURATION}s each"
  for target in $TARGETS; do warm_up "$phase" "$target"; done
  for round in $(seq 1 "$ROUNDS"); do
    for target in $TARGETS; do
      run_wrk "$phase" "$target" "$round"
      sleep 1
    done
  done
done

# big_transfer DIRECTION TARGET ROUND: one 1 GiB PUT or GET with RSS sampling.
big_transfer() {
  local direction=$1 target=$2 round=$3 url pids rss0 result stop="$WORK/sampling.stop" peakfile="$WORK/sampling.peak"
  url="http://127.0.0.1:$(port_of bigbody "$target")"
  mapfile -t pids < <(pids_of bigbody "$target")
  rss0=$(proc_kib VmRSS "${pids[@]}")
  rm -f "$stop"
  echo "$rss0" >"$peakfile"
  (
    peak=$rss0
    end=$((SECONDS + 600))
    while [ ! -e "$stop" ] && [ $SECONDS -lt $end ]; do
      r=$(proc_kib VmRSS "${pids[@]}")
      if [ "$r" -gt "$peak" ]; then peak=$r; echo "$peak" >"$peakfile"; fi
      sleep 0.05
    done
  ) &
  local sampler=$!
  if [ "$direction" = put ]; then
    result=$(curl -sS -o /dev/null --max-time 300 -w '%{http_code} %{time_total} %{size_upload}' \
      -H 'Expect:' -H "$AUTH" -T "$WORK/www/big.bin" "$url/put/$target.bin" || true)
  else
    result=$(curl -sS -o /dev/null --max-time 300 -w '%{http_code} %{time_total} %{size_download}' \
      -H "$AUTH" "$url/big.bin" || true)
  fi
  touch "$stop"
  wait "$sampler" || true
  rm -f "$SINK/put/$target.bin"
  read -r code secs size <<<"${result:-000 0 0}"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$direction" "$target" "$round" "$code" "$secs" "$size" \
    "$rss0" "$(cat "$peakfile")" "$(proc_kib VmHWM "${pids[@]}")" >>"$WORK/big.tsv"
  log "  bigbody $direction $target round $round: HTTP $code, ${secs}s, RSS ${rss0} -> peak $(cat "$peakfile") KiB"
}

if has_phase bigbody; then
  log "phase bigbody: $ROUNDS rounds x ($TARGETS), ${BIG_MIB} MiB PUT and GET"
  : >"$WORK/big.tsv"
  for round in $(seq 1 "$ROUNDS"); do
    for target in $TARGETS; do
      big_transfer put "$target" "$round"
      big_transfer get "$target" "$round"
    done
  done
fi

# --- cold path (davgate with its default hashing) -----------------------------
timed_get() { # user password -> "code seconds"
  curl -s -o /dev/null --max-time 60 -w '%{http_code} %{time_total}' -u "$1:$2" "http://127.0.0.1:$DG_HTTP/static.txt" || echo "000 0"
}
new_password() { # user -> password
  dg password create "$1" --name "bench $RANDOM" --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["password"])'
}
if has_phase cold; then
  log "phase cold: new credentials against davgate (creating users and passwords through the CLI)"
  : >"$WORK/cold.tsv"
  for i in 1 2 3 4 5 6 7; do
    dg user add "cold$i" >/dev/null
    pw=$(new_password "cold$i")
    read -r code secs <<<"$(timed_get "cold$i" "$pw")"
    printf 'first\t%s\t%s\t%s\n' "$i" "$code" "$secs" >>"$WORK/cold.tsv"
    read -r code secs <<<"$(timed_get "cold$i" "$pw")"
    printf 'second\t%s\t%s\t%s\n' "$i" "$code" "$secs" >>"$WORK/cold.tsv"
  done
  dg user add many >/dev/null
  for _ in $(seq 1 25); do pw=$(new_password many); done
  read -r code secs <<<"$(timed_get many "$pw")"
  printf 'many25\t1\t%s\t%s\n' "$code" "$secs" >>"$WORK/cold.tsv"
  for i in 1 2 3; do
    read -r code secs <<<"$(curl -s -o /dev/null --max-time 60 -w '%{http_code} %{time_total}' -H "$AUTH" "http://127.0.0.1:$NA_HTTP/static.txt" || echo "000 0")"
    printf 'nginx-auth\t%s\t%s\t%s\n' "$i" "$code" "$secs" >>"$WORK/cold.tsv"
  done
  : >"$WORK/burst.creds"
  for i in $(seq -w 1 100); do
    dg user add "burst$i" >/dev/null
    printf 'burst%s:%s\n' "$i" "$(new_password "burst$i")" >>"$WORK/burst.creds"
  done
  burst=$(python3 "$ROOT/bench/clients.py" burst "http://127.0.0.1:$DG_HTTP/static.txt" "$WORK/burst.creds")
  printf 'burst\t%s\n' "$burst" >>"$WORK/cold.tsv"
  log "  burst: $burst"
fi

# --- report -------------------------------------------------------------------
echo "## davgate vs nginx and Caddy"
echo
machine_info
echo "- wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, $ROUNDS interleaved rounds; clients, proxies and backend share the machine"
if [ "$ACCESS_LOG" = 1 ]; then
  echo "- access logs on: nginx proxies access_log (combined, unbuffered), Caddy log, davgate DAVGATE_LOG=$DAVGATE_LOG (lines batched per [log] access_flush, default 1s)"
else
  echo "- access logs off (davgate DAVGATE_LOG=${DAVGATE_LOG:-warn})"
fi
echo
python3 "$ROOT/bench/summarize.py" "$WORK" "$CLK_TCK"
