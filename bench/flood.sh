#!/usr/bin/env bash
# Valid-client throughput during a wrong-password flood, in release mode.
# Usage: bench/flood.sh      (about a minute; prints a markdown table)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked --release --example flood
exec target/release/examples/flood
