#!/usr/bin/env bash
# Bounded fuzzing run of every cargo-fuzz target in fuzz/ (libFuzzer).
#
#     bench/fuzz.sh            # each target for 60 s
#     bench/fuzz.sh 600        # each target for 10 minutes
#     FUZZ_TARGETS="destination config" bench/fuzz.sh 30
#
# Targets (fuzz/fuzz_targets/): basic_auth (the Authorization: Basic
# parser), scope_path (path normalisation and the scope decision),
# destination (the Destination header against Radicale's and WsgiDAV's
# urlparse(unquote(...))), config (Config::parse). Each one's invariants are
# documented at the top of its file.
#
# Installs cargo-fuzz if missing (`cargo install cargo-fuzz --locked`).
# cargo-fuzz passes nightly-only flags to rustc; on a stable toolchain the
# script sets RUSTC_BOOTSTRAP=1, which makes stable accept them.
#
# Corpora: the committed seeds in fuzz/corpus/<target>/ are only read; what
# libFuzzer finds goes to fuzz/work/<target>/ (git-ignored), so runs build
# on each other. Logs: fuzz/work/<target>.log. Dictionaries: fuzz/dict/.
#
# Prints, per target, the executions, executions per second and whether it
# crashed; exits 1 if any target crashed (panic, failed invariant, timeout,
# out of memory). A crash leaves its input in fuzz/artifacts/<target>/;
# reproduce and minimise it with:
#     RUSTC_BOOTSTRAP=1 cargo fuzz run <target> fuzz/artifacts/<target>/crash-...
#     RUSTC_BOOTSTRAP=1 cargo fuzz tmin <target> fuzz/artifacts/<target>/crash-...
#
# Environment:
#   FUZZ_TARGETS     targets to run (default: all four, one after another)
#   FUZZ_SANITIZER   none (default) or address. The code under test is safe
#                    Rust (davgate forbids unsafe), so AddressSanitizer adds
#                    little here and costs 5-7x in executions per second.
#   DAVGATE_FUZZ_KNOWN  bug classes to tolerate (see fuzz/src/lib.rs); leave
#                    unset to check every invariant.
set -uo pipefail

SECONDS_PER_TARGET="${1:-60}"
case "$SECONDS_PER_TARGET" in
    '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac
TARGETS="${FUZZ_TARGETS:-basic_auth scope_path destination config}"
SANITIZER="${FUZZ_SANITIZER:-none}"

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
FUZZ="$ROOT/fuzz"
cd "$ROOT" || exit 2

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked || exit 2
fi
if ! rustc --version | grep -q -- '-nightly'; then
    export RUSTC_BOOTSTRAP=1
fi

TARGET_DIR="$FUZZ/target/sanitizer-$SANITIZER"
BUILD=(-s "$SANITIZER" --target-dir "$TARGET_DIR")

echo "== building fuzz targets (sanitizer: $SANITIZER)"
cargo fuzz build "${BUILD[@]}" || exit 2

dict_for() {
    case "$1" in
        scope_path | destination) echo "-dict=$FUZZ/dict/url.dict" ;;
        config) echo "-dict=$FUZZ/dict/config.dict" ;;
    esac
}

failed=0
summary=()
for target in $TARGETS; do
    work="$FUZZ/work/$target"
    log="$FUZZ/work/$target.log"
    artifacts="$FUZZ/artifacts/$target"
    mkdir -p "$work" "$artifacts"
    echo "== $target: ${SECONDS_PER_TARGET}s (log: ${log#"$ROOT"/})"
    # shellcheck disable=SC2046
    cargo fuzz run "${BUILD[@]}" "$target" "$work" "$FUZZ/corpus/$target" -- \
        -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 $(dict_for "$target") >"$log" 2>&1
    status=$?
    execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | awk '{s += $2} END {print s + 0}')"
    rate="$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | awk '{s += $2} END {print s + 0}')"
    new="$(grep -o 'Test unit written to .*' "$log" | sed "s|^Test unit written to ||; s|^$ROOT/||")"
    if [ "$status" -ne 0 ] || [ -n "$new" ]; then
        failed=1
        result="CRASH (exit $status)"
        echo "   $result"
        grep -m1 -A2 -E "panicked at|ERROR: libFuzzer|SUMMARY:" "$log" | sed 's/^/   | /'
        [ -n "$new" ] && echo "$new" | sed 's/^/   input: /'
    else
        result="ok"
    fi
    summary+=("$(printf '%-12s %14s execs %9s exec/s   %s' "$target" "${execs:-?}" "${rate:-?}" "$result")")
done

echo
echo "== summary (${SECONDS_PER_TARGET}s per target, sanitizer: $SANITIZER)"
printf '%s\n' "${summary[@]}"
exit "$failed"
