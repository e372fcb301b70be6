#!/usr/bin/env bash
# davgate in front of a real Radicale, on this machine, in one command.
#
# Installs what it needs (scripts/test-env.sh: Debian packages and a
# project-local venv with Radicale), builds davgate in release mode, writes
# demo/ (Radicale and davgate configs, the store, the collections, logs),
# starts Radicale and davgate on loopback, creates the user "demo" with one
# app password, prints how to connect, and runs until Ctrl-C, which stops
# both. Run it again to get a fresh app password; `rm -rf demo` to start over.
#
# Ports: 8080 for davgate and 5232 for Radicale when free, else free ones.
# Override with DEMO_PORT=... and DEMO_RADICALE_PORT=...
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
demo="$root/demo"
user=demo

if [ -t 2 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
say() { printf '%s==> %s%s\n' "$bold" "$*" "$plain" >&2; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

say "Installing what the demo needs (scripts/test-env.sh: litmus, python3-venv, .venv with Radicale)"
bash scripts/test-env.sh
if ! command -v curl >/dev/null 2>&1; then
  say "Installing curl"
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq curl >/dev/null
fi
python=$root/.venv/bin/python

say "Building davgate: cargo build --locked --release (the first build takes a few minutes)"
cargo build --locked --release
davgate="${CARGO_TARGET_DIR:-$root/target}/release/davgate"
[ -x "$davgate" ] || die "no binary at $davgate after the build"

# --- ports -------------------------------------------------------------------
port_is_free() {
  python3 -c 'import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)' "$1"
}
any_free_port() {
  python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
pick_port() { # preferred port, or a free one different from $2
  local p=$1
  if ! port_is_free "$p"; then
    p=$(any_free_port)
    while [ "$p" = "${2:-}" ]; do p=$(any_free_port); done
  fi
  echo "$p"
}
rad_port=$(pick_port "${DEMO_RADICALE_PORT:-5232}")
port=$(pick_port "${DEMO_PORT:-8080}" "$rad_port")
url="http://127.0.0.1:$port/"

# --- demo/ -------------------------------------------------------------------
mkdir -p "$demo/collections"
config="$demo/davgate.toml"
if [ -e "$demo/store.sock" ] && python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])' "$demo/store.sock" 2>/dev/null; then
  die "another demo is still running (it answers on demo/store.sock): stop it first"
fi

say "Writing demo/radicale.conf (Radicale on 127.0.0.1:$rad_port) and demo/davgate.toml (davgate on 127.0.0.1:$port)"
cat >"$demo/radicale.conf" <<EOF
# Written by scripts/demo.sh: Radicale trusting davgate's X-Remote-User.
[server]
hosts = 127.0.0.1:$rad_port

[auth]
type = http_x_remote_user
delay = 0

[rights]
type = owner_only

[storage]
filesystem_folder = $demo/collections
EOF

cat >"$config" <<EOF
# Written by scripts/demo.sh. Every key is documented in config.example.toml.
[server]
listen = "127.0.0.1:$port"
realm = "davgate demo"
shutdown_grace = "5s"

[upstream]
url = "http://127.0.0.1:$rad_port"

[store]
path = "$demo/store"

# Radicale keeps calendars and address books in one tree per user, so both
# services mean the whole account; use --collection /$user/NAME/ to limit a
# password to one collection.
[services]
caldav = ["/{user}/"]
carddav = ["/{user}/"]
EOF
"$davgate" --config "$config" config check >/dev/null

# --- processes ---------------------------------------------------------------
radicale_pid=""
davgate_pid=""
cleanup() {
  trap - EXIT INT TERM
  local pids=()
  [ -n "$davgate_pid" ] && pids+=("$davgate_pid")
  [ -n "$radicale_pid" ] && pids+=("$radicale_pid")
  [ ${#pids[@]} -gt 0 ] || return 0
  say "Stopping davgate and Radicale"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "${pids[@]}" 2>/dev/null || break
    sleep 0.2
  done
  kill -KILL "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_for() { # what, pid, command...: retries the command for 30 s while pid lives
  local what=$1 pid=$2; shift 2
  for _ in $(seq 150); do
    "$@" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || die "$what exited during start-up"
    sleep 0.2
  done
  die "$what did not answer within 30 s"
}

say "Starting Radicale (log: demo/radicale.log)"
"$python" -m radicale --config "$demo/radicale.conf" >"$demo/radicale.log" 2>&1 &
radicale_pid=$!
if ! (wait_for Radicale "$radicale_pid" python3 -c 'import socket, sys
socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)' "$rad_port"); then
  cat "$demo/radicale.log" >&2
  exit 1
fi

say "Creating user $user and an app password (davgate user add / password create)"
if ! out=$("$davgate" --config "$config" user add "$user" 2>&1); then
  case "$out" in
    *"already exists"*) echo "user $user already exists (kept from an earlier run)" ;;
    *) die "$out" ;;
  esac
else
  echo "$out"
fi
# Earlier runs' demo passwords would otherwise pile up (policy.max_active_passwords).
"$davgate" --config "$config" password revoke-all "$user" >/dev/null
created=$("$davgate" --config "$config" password create "$user" --name "Demo client" --json)
password=$(printf '%s' "$created" | python3 -c 'import json, sys; print(json.load(sys.stdin)["password"])')
password_id=$(printf '%s' "$created" | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
# The login password for the self-service page (not an app password).
login_password="demo-$(python3 -c 'import secrets; print(secrets.token_urlsafe(9))')"
printf '%s\n' "$login_password" | "$davgate" --config "$config" user set-password "$user" >/dev/null

say "Starting davgate serve (it logs to this terminal)"
"$davgate" --config "$config" serve &
davgate_pid=$!
wait_for davgate "$davgate_pid" curl -s -o /dev/null --max-time 2 "$url"

cat <<EOF

${bold}davgate is running in front of Radicale.${plain}

  URL            $url
  User           $user
  App password   $password
  (id $password_id, shown once: it is stored only as an argon2id hash)

Self-service page (create, see and revoke app passwords; TOTP; history):

  ${url}account/   user $user, login password $login_password

Try it (207 Multi-Status means davgate let it through to Radicale):

  curl -i -u '$user:$password' -X PROPFIND -H 'Depth: 0' ${url}$user/

A wrong password gets 401 from davgate and never reaches Radicale:

  curl -i -u '$user:wrong' -X PROPFIND -H 'Depth: 0' ${url}$user/

Python caldav client (from the venv this script set up):

  .venv/bin/python -c 'import caldav
p = caldav.DAVClient("$url", username="$user", password="$password").principal()
p.make_calendar(name="Demo")
print([c.get_display_name() for c in p.calendars()])'

DAVx5 ("Login with URL and user name"), Thunderbird, iOS/macOS: server URL
$url, user $user, the app password above. The demo listens on 127.0.0.1
only, so use a client on this machine; for a phone, davgate needs TLS
([server.tls] in demo/davgate.toml) before it listens on a LAN address.

Manage app passwords while it runs (from another terminal):

  $davgate --config demo/davgate.toml password list $user
  $davgate --config demo/davgate.toml password create $user --name "Read-only" --read-only
  $davgate --config demo/davgate.toml password revoke $user $password_id

Radicale's log: demo/radicale.log. ${bold}Ctrl-C stops both.${plain}

EOF

set +e
wait -n "$davgate_pid" "$radicale_pid"
status=$?
set -e
if ! kill -0 "$davgate_pid" 2>/dev/null; then
  say "davgate exited (status $status)"
  davgate_pid=""
else
  say "Radicale exited (status $status); see demo/radicale.log"
  radicale_pid=""
fi
exit 1
