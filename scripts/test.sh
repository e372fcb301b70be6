#!/usr/bin/env bash
# The whole test suite: installs what it needs (scripts/test-env.sh), then
# runs every unit and integration test against real Radicale and WsgiDAV.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/test-env.sh
export DAVGATE_TEST_VENV="$root/.venv"
cargo test --locked --all-targets "$@"
