#!/usr/bin/env bash
# The fuzz targets of fuzz/ (message decode, catalog parse, config parse,
# Value/JSON conversion), bounded for CI or long by hand.
#
#   ci/fuzz.sh ci [--cases N]            bounded (CI): N cases per target
#                                        (default 3000), stable runner
#   ci/fuzz.sh stable [--cases N] [T..]  the stable runner, N cases per target
#                                        (default 200000)
#   ci/fuzz.sh libfuzzer [--time S | --runs N] [T..]
#                                        cargo fuzz (libFuzzer), S seconds
#                                        (default 600) or N runs per target;
#                                        the corpus grows in
#                                        fuzz/corpus/<target>/
#
# cargo fuzz needs nightly features: on a stable toolchain this script sets
# RUSTC_BOOTSTRAP=1 and builds without a sanitizer (-s none;
# SANITIZER=address for AddressSanitizer). The stable runner runs the same target
# functions on fuzz/seeds/<target>/ (and fuzz/corpus/<target>/) and their
# mutations, with a fixed seed. A failing input is saved under
# fuzz/artifacts/<target>/; replay it with
#   cargo run --manifest-path fuzz/Cargo.toml --no-default-features --bin stable -- --replay <target> <file>
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-ci}
shift || true
cases=
seconds=600
runs=
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --cases) cases=$2; shift ;;
        --time) seconds=$2; shift ;;
        --runs) runs=$2; shift ;;
        -*) echo "usage: $0 ci|stable|libfuzzer [--cases N] [--time S] [TARGET...]" >&2; exit 2 ;;
        *) targets+=("$1") ;;
    esac
    shift
done

# The stable runner shares the workspace's target directory: the crates
# under test are already built there by the workspace build.
stable() {
    CARGO_TARGET_DIR="$PWD/target" cargo run --quiet --manifest-path fuzz/Cargo.toml \
        --no-default-features --bin stable -- --cases "$1" "${targets[@]}"
}

case "$mode" in
    ci) stable "${cases:-3000}" ;;
    stable) stable "${cases:-200000}" ;;
    libfuzzer)
        command -v cargo-fuzz >/dev/null ||
            { echo "$0: cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2; exit 1; }
        if ! rustc --version | grep -q nightly; then
            export RUSTC_BOOTSTRAP=1
        fi
        [ ${#targets[@]} -gt 0 ] || targets=(message_decode catalog_parse config_parse value_json)
        cd fuzz
        for target in "${targets[@]}"; do
            mkdir -p "corpus/$target"
            cargo fuzz run -s "${SANITIZER:-none}" -O "$target" "corpus/$target" "seeds/$target" -- \
                ${runs:+-runs="$runs"} -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
                -print_final_stats=1 2>&1 | tee "/tmp/fuzz-$target.log" | grep -E "^(#[0-9]+ +DONE|Done|stat::number_of_executed_units|==[0-9]+== ERROR|SUMMARY)" || true
            if grep -qE "^==[0-9]+== ERROR|panicked|deadly signal" "/tmp/fuzz-$target.log"; then
                echo "$0: $target failed; see /tmp/fuzz-$target.log and fuzz/artifacts/$target/" >&2
                exit 1
            fi
        done
        ;;
    *) echo "usage: $0 ci|stable|libfuzzer [--cases N] [--time S] [TARGET...]" >&2; exit 2 ;;
esac
