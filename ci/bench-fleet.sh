#!/usr/bin/env bash
# Figures of a fleet: N real VCC emulators (36 blocks each) in one process,
# one pulse a second each, against the same N as separate `run` processes.
#
#   fleet:     resident memory (VmRSS, and Pss from smaps_rollup) once all
#              serve and again after the load; time from spawn until all N
#              answer GET /state; GET /state latency p50/p90/p99/max over
#              random emulators at --rate requests/s for --seconds
#              (host/examples/fleet_load.rs: open loop, latency from each
#              request's scheduled time); thread count; CPU while idle
#              (only the pulses: user+system time over --idle seconds
#              before the load, in millicores).
#   processes: the same N as `bitstream-emulator run` processes: summed
#              VmRSS and Pss, time until all answer, summed threads, and
#              the same latency run.
#
# Usage: ci/bench-fleet.sh [--count N] [--seconds S] [--rate R]
#                          [--profile release|debug] [--no-build]
#                          [--no-processes] [--base-port P] [--idle S]
# Default: --count 200 --seconds 10 --rate 2000 --profile release --idle 30.
# Without --no-build it builds the binary and the load tool and places the
# VCC plugins (ci/vcc-package.sh) for the profile. Prints one JSON summary
# on stdout (progress on stderr). Asserts nothing: these are figures, and
# on a shared machine they move with everything else that runs.
set -euo pipefail
cd "$(dirname "$0")/.."

count=200 seconds=10 rate=2000 profile=release build=yes processes=yes base=21001 idle=30
while [ $# -gt 0 ]; do
    case "$1" in
        --count) count=$2; shift 2 ;;
        --seconds) seconds=$2; shift 2 ;;
        --rate) rate=$2; shift 2 ;;
        --profile) profile=$2; shift 2 ;;
        --no-build) build=no; shift ;;
        --no-processes) processes=no; shift ;;
        --base-port) base=$2; shift 2 ;;
        --idle) idle=$2; shift 2 ;;
        *) echo "usage: $0 [--count N] [--seconds S] [--rate R] [--profile release|debug] [--no-build] [--no-processes] [--base-port P] [--idle S]" >&2; exit 2 ;;
    esac
done
case "$profile" in release) flags=(--release) ;; debug) flags=() ;; *) echo "$0: --profile release|debug" >&2; exit 2 ;; esac
if [ "$build" = yes ]; then
    cargo build "${flags[@]}" --locked -p bitstream-host --bin bitstream-emulator --example fleet_load >&2
    ci/vcc-package.sh "$profile" >&2
fi
target=${CARGO_TARGET_DIR:-target}/$profile
bin=$target/bitstream-emulator
load=$target/examples/fleet_load
package=fixtures/vcc_processing
work=$(mktemp -d -t bench-fleet-XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# "rss_kib pss_kib threads" of the given pids, summed.
memory() {
    python3 - "$@" <<'EOF'
import sys
rss = pss = threads = 0
for pid in sys.argv[1:]:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss += int(line.split()[1])
            elif line.startswith("Threads:"):
                threads += int(line.split()[1])
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss += int(line.split()[1])
    except OSError:
        pss = -1
print(rss, pss, threads)
EOF
}

# CPU time (user + system, clock ticks) of the given pids, summed.
cputicks() {
    local total=0 pid fields
    for pid in "$@"; do
        # Fields after the command's closing parenthesis: utime is the 12th,
        # stime the 13th.
        fields=$(sed 's/.*) //' "/proc/$pid/stat")
        total=$((total + $(cut -d' ' -f12 <<<"$fields") + $(cut -d' ' -f13 <<<"$fields")))
    done
    echo "$total"
}

# Millicores the given pids use over $idle seconds.
idle_millicores() {
    local before after
    before=$(cputicks "$@")
    sleep "$idle"
    after=$(cputicks "$@")
    python3 -c "import os,sys; print(round((int(sys.argv[2]) - int(sys.argv[1])) / os.sysconf('SC_CLK_TCK') / float(sys.argv[3]) * 1000, 1))" "$before" "$after" "$idle"
}

urls() {  # urls FIRST_PORT N > file
    for i in $(seq 0 $(($2 - 1))); do echo "http://127.0.0.1:$(($1 + i))"; done
}

echo "fleet: $count emulators of $package ($profile) on ports $base.." >&2
urls "$base" "$count" > "$work/fleet-urls"
start_ns=$(date +%s%N)
"$bin" fleet --package "$package" --count "$count" --base-port "$base" \
    --pulse-period-ms 1000 --log-level WARNING 2> "$work/fleet.log" &
fleet_pid=$!
pids+=("$fleet_pid")
fleet_ready=$("$load" ready --urls "$work/fleet-urls" --since-ns "$start_ns" --timeout-s 600)
sleep 3   # a few pulses everywhere
read -r fleet_rss fleet_pss fleet_threads < <(memory "$fleet_pid")
echo "fleet: serving; idle for $idle s" >&2
fleet_idle=$(idle_millicores "$fleet_pid")
echo "fleet: serving; loading at $rate/s for $seconds s" >&2
fleet_load=$("$load" load --urls "$work/fleet-urls" --rate "$rate" --seconds "$seconds")
read -r fleet_rss_after fleet_pss_after fleet_threads_after < <(memory "$fleet_pid")
kill -TERM "$fleet_pid"
wait "$fleet_pid" 2>/dev/null || true
pids=()

procs_json=null
if [ "$processes" = yes ]; then
    pbase=$((base + count + 100))
    echo "processes: $count x run on ports $pbase.." >&2
    urls "$pbase" "$count" > "$work/proc-urls"
    start_ns=$(date +%s%N)
    for i in $(seq 1 "$count"); do
        "$bin" run "$package" --bind "127.0.0.1:$((pbase + i - 1))" --id "fhs-vcc-emulator-$i" \
            --pulse-period-ms 1000 --log-level WARNING 2>> "$work/procs.log" &
        pids+=("$!")
    done
    procs_ready=$("$load" ready --urls "$work/proc-urls" --since-ns "$start_ns" --timeout-s 600)
    sleep 3
    read -r procs_rss procs_pss procs_threads < <(memory "${pids[@]}")
    echo "processes: serving; idle for $idle s" >&2
    procs_idle=$(idle_millicores "${pids[@]}")
    echo "processes: serving; loading at $rate/s for $seconds s" >&2
    procs_load=$("$load" load --urls "$work/proc-urls" --rate "$rate" --seconds "$seconds")
    procs_json=$(cat <<EOF
{"count": $count, "ready": $procs_ready, "rss_kib_sum": $procs_rss, "pss_kib_sum": $procs_pss,
 "threads_sum": $procs_threads, "idle_cpu_millicores_sum": $procs_idle, "load": $procs_load}
EOF
)
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    pids=()
fi

FLEET_READY=$fleet_ready FLEET_LOAD=$fleet_load PROCS=$procs_json \
python3 - "$profile" "$package" "$count" "$fleet_rss" "$fleet_pss" "$fleet_threads" \
    "$fleet_rss_after" "$fleet_pss_after" "$fleet_threads_after" "$fleet_idle" "$idle" <<'EOF'
import json, os, sys
profile, package, count, rss, pss, threads, rss2, pss2, threads2, idle_cpu, idle = sys.argv[1:]
fleet = {
    "count": int(count),
    "ready": json.loads(os.environ["FLEET_READY"]),
    "rss_kib": int(rss), "pss_kib": int(pss), "threads": int(threads),
    "rss_kib_after_load": int(rss2), "pss_kib_after_load": int(pss2),
    "threads_after_load": int(threads2),
    "idle_seconds": float(idle), "idle_cpu_millicores": float(idle_cpu),
    "load": json.loads(os.environ["FLEET_LOAD"]),
}
summary = {
    "profile": profile,
    "package": package,
    "cores": os.cpu_count(),
    "loadavg_at_end": open("/proc/loadavg").read().split()[:3],
    "fleet": fleet,
    "processes": json.loads(os.environ["PROCS"]),
}
print(json.dumps(summary, indent=2))
EOF
