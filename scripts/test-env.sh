#!/usr/bin/env bash
# Installs what the test suite and the demo need, idempotently:
# Debian packages (litmus, python3-venv) and a project-local Python venv
# with Radicale, WsgiDAV and the python caldav client.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"

need_apt=()
command -v litmus >/dev/null 2>&1 || need_apt+=(litmus)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then need_apt+=(python3-venv); fi
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v cmake >/dev/null 2>&1 || need_apt+=(cmake)
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust (https://rustup.rs) first" >&2
  exit 1
fi

stamp="$venv/.davgate-reqs"
reqs="$root/scripts/requirements-test.txt"
if [ ! -f "$stamp" ] || ! cmp -s "$stamp" "$reqs"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q -r "$reqs"
  cp "$reqs" "$stamp"
fi
