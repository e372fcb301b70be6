#!/usr/bin/env bash
# Installs what the test suite and the demo need, idempotently:
# Debian packages (litmus, python3-venv, apache2-bin and systemd for the
# deploy recipes' tests, postgresql for the PostgreSQL store's), a
# project-local Python venv (.venv) with Radicale, WsgiDAV and the python
# caldav client, and .venv-schemathesis.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"

need_apt=()
command -v litmus >/dev/null 2>&1 || need_apt+=(litmus)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then need_apt+=(python3-venv); fi
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v cmake >/dev/null 2>&1 || need_apt+=(cmake)
# The deploy recipes' tests: Apache mod_dav (the binary and modules only, no
# service that would start on port 80) and systemd-analyze for the unit.
[ -x /usr/sbin/apache2 ] || need_apt+=(apache2-bin)
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
# The browser test (tests/common/browser.rs): headless Chromium and its
# WebDriver.
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)
# The PostgreSQL store's tests (tests/common/postgres.rs): initdb, pg_ctl and
# the server, from PATH or Debian's /usr/lib/postgresql/<version>/bin.
if ! command -v initdb >/dev/null 2>&1 && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then need_apt+=(postgresql); fi
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust (https://rustup.rs) first" >&2
  exit 1
fi

# (Re)creates venv $1 from requirements file $2 when the file changed.
make_venv() {
  local dir=$1 reqs=$2
  if [ ! -f "$dir/.davgate-reqs" ] || ! cmp -s "$dir/.davgate-reqs" "$reqs"; then
    python3 -m venv "$dir"
    "$dir/bin/pip" install -q --upgrade pip
    "$dir/bin/pip" install -q -r "$reqs"
    cp "$reqs" "$dir/.davgate-reqs"
  fi
}

make_venv "$venv" "$root/scripts/requirements-test.txt"
# Schemathesis gets a venv of its own: the caldav client's niquests replaces
# urllib3 in the shared venv, which breaks schemathesis's requests.
make_venv "$root/.venv-schemathesis" "$root/scripts/requirements-schemathesis.txt"
