#!/usr/bin/env bash
# libFuzzer targets for forkwatch's parsers (Fuzz/README.md). Run by hand, not by CI:
#
#   bash bench/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# TARGET: control events childmessage rpc config (all when none is named). SECONDS defaults to 60.
# ForkwatchCore's sources (pure Swift, no dependencies) are built once with
# `swiftc -sanitize=fuzzer,address -O`, then each target from Fuzz/FuzzSupport.swift and its own
# file (config also compiles Yams, CYaml and Sources/ForkwatchCLI/ConfigFile.swift). It then runs one target at a
# time for SECONDS, starting from Fuzz/seeds/TARGET and Fuzz/corpus/TARGET and growing a working
# corpus in .build-fuzz/corpus/TARGET; at the end the working corpus is minimised (-merge=1) into
# Fuzz/corpus/TARGET, which is committed. Crashing inputs are kept in .build-fuzz/crashes/TARGET.
#
# Environment: FUZZ_ASAN=0 builds without AddressSanitizer; FUZZ_JOBS=2 runs two targets at once;
# FUZZ_NO_MERGE=1 leaves Fuzz/corpus as it is.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=.build-fuzz
seconds=${1:-60}
if [ $# -gt 0 ]; then shift; fi
all=(control events childmessage rpc config)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

sanitize=fuzzer,address
cflags=-fsanitize=fuzzer-no-link,address
if [ "${FUZZ_ASAN:-1}" = 0 ]; then
    sanitize=fuzzer
    cflags=-fsanitize=fuzzer-no-link
fi
swiftflags=(-sanitize="$sanitize" -parse-as-library -O -g -swift-version 6)

file_of() {
    case $1 in
        control) echo ControlRequestFuzz.swift ;;
        events) echo EventFuzz.swift ;;
        childmessage) echo ChildMessageFuzz.swift ;;
        rpc) echo RPCMessageFuzz.swift ;;
        config) echo ConfigFileFuzz.swift ;;
        *) echo "unknown target '$1' (one of: ${all[*]})" >&2; exit 2 ;;
    esac
}

max_len_of() {
    case $1 in
        control) echo 9000 ;;       # two lines of the 4096-byte limit, and more
        childmessage) echo 8200 ;;  # past maxLineBytes (4000)
        *) echo 4096 ;;
    esac
}

# True when $1 exists and is newer than every other file named.
up_to_date() {
    local product=$1 source
    shift
    [ -f "$product" ] || return 1
    for source in "$@"; do [ "$source" -nt "$product" ] && return 1; done
    return 0
}

# Yams and CYaml, instrumented the same way, for the config target (once).
build_yams() {
    local yams=.build/checkouts/Yams/Sources
    if [ ! -d "$yams" ]; then swift package resolve; fi
    [ -f "$out/yams/Yams.o" ] && return
    mkdir -p "$out/yams"
    for c in "$yams"/CYaml/src/*.c; do
        clang -c -O1 -g $cflags -DYAML_DECLARE_STATIC -I"$yams/CYaml/include" "$c" \
            -o "$out/yams/$(basename "$c" .c).c.o"
    done
    swiftc "${swiftflags[@]}" -swift-version 5 -D SWIFT_PACKAGE -module-name Yams -whole-module-optimization -num-threads 0 \
        -I "$yams/CYaml/include" -Xcc -DYAML_DECLARE_STATIC \
        -c "$yams"/Yams/*.swift -o "$out/yams/Yams.o" -emit-module -emit-module-path "$out/yams/Yams.swiftmodule"
}

# ForkwatchCore as a module, instrumented (once per run of this script): the targets link it.
build_core() {
    mkdir -p "$out/core"
    if up_to_date "$out/core/ForkwatchCore.o" Sources/ForkwatchCore/*.swift; then return; fi
    echo "== build ForkwatchCore" >&2
    swiftc "${swiftflags[@]}" -module-name ForkwatchCore -whole-module-optimization -num-threads 0 \
        -c Sources/ForkwatchCore/*.swift -o "$out/core/ForkwatchCore.o" \
        -emit-module -emit-module-path "$out/core/ForkwatchCore.swiftmodule"
}

build() {
    local target=$1 file
    file=$(file_of "$target")
    mkdir -p "$out/bin"
    local sources=(Fuzz/FuzzSupport.swift "Fuzz/$file")
    local extra=()
    if [ "$target" = config ]; then
        build_yams
        # The CLI's reader as it is, less the import of the launcher module (its two names are
        # stubbed in the target).
        grep -v '^import Forkwatch$' Sources/ForkwatchCLI/ConfigFile.swift > "$out/ConfigFile.swift"
        sources+=("$out/ConfigFile.swift")
        extra=(-I "$out/yams" -I .build/checkouts/Yams/Sources/CYaml/include -Xcc -DYAML_DECLARE_STATIC
            "$out"/yams/*.o)
    fi
    if up_to_date "$out/bin/fuzz-$target" "$out/core/ForkwatchCore.o" "${sources[@]}"; then return; fi
    echo "== build $target" >&2
    swiftc "${swiftflags[@]}" -module-name "Fuzz_$target" "${sources[@]}" -I "$out/core" "$out/core/ForkwatchCore.o" \
        "${extra[@]}" -o "$out/bin/fuzz-$target"
}

run() {
    local target=$1
    local work="$out/corpus/$target" crashes="$out/crashes/$target" log="$out/logs/$target.log"
    mkdir -p "$work" "$crashes" "$out/logs" "Fuzz/corpus/$target" "Fuzz/seeds/$target"
    local before
    before=$(find "$crashes" -type f | wc -l)
    local start end
    start=$(date +%s.%N)
    # The Swift runtime's backtracer would hang the run on the first crash; libFuzzer reports it.
    SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 \
        "$out/bin/fuzz-$target" -max_total_time="$seconds" -max_len="$(max_len_of "$target")" -timeout=10 \
        -print_final_stats=1 -artifact_prefix="$crashes/" "$work" "Fuzz/corpus/$target" "Fuzz/seeds/$target" \
        > "$log" 2>&1 || true
    end=$(date +%s.%N)
    local runs found ran corpus
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    found=$(($(find "$crashes" -type f | wc -l) - before))
    ran=$(echo "$end - $start" | bc)
    if [ "${FUZZ_NO_MERGE:-0}" != 1 ] && [ "$found" = 0 ]; then
        # Minimise: the committed corpus becomes the smallest set covering the edges it and the
        # working one cover (hit counts not counted: they would keep hundreds of near-copies).
        local merged="$out/merge/$target"
        rm -rf "$merged" && mkdir -p "$merged"
        SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 \
            "$out/bin/fuzz-$target" -merge=1 -use_counters=0 -max_len="$(max_len_of "$target")" "$merged" \
            "Fuzz/corpus/$target" "$work" > "$out/logs/$target.merge.log" 2>&1
        rm -f "Fuzz/corpus/$target"/*
        cp "$merged"/* "Fuzz/corpus/$target/" 2>/dev/null || true
    fi
    corpus=$(find "Fuzz/corpus/$target" -type f | wc -l)
    printf '%-13s seconds %6.0f  executions %10s  exec/s %7.0f  corpus %4s files %6s KB  crashes %s\n' \
        "$target" "$ran" "${runs:-?}" "$(echo "${runs:-0} / $ran" | bc -l)" "$corpus" \
        "$(du -sk --apparent-size "Fuzz/corpus/$target" | cut -f1)" "$found"
    if [ "$found" != 0 ]; then
        grep -m1 -A3 'property violated\|Fatal error\|ERROR: AddressSanitizer\|ERROR: libFuzzer\|deadly signal' "$log" || true
        echo "   log: $log; inputs: $crashes" >&2
    fi
}

for target in "${targets[@]}"; do file_of "$target" > /dev/null; done
build_core 2> >(grep -v "Cannot export local symbol" >&2)
for target in "${targets[@]}"; do build "$target" 2> >(grep -v "Cannot export local symbol" >&2); done
if [ "${FUZZ_JOBS:-1}" -ge 2 ]; then
    # Two at a time (the machine is shared): pairs in order.
    i=0
    while [ $i -lt ${#targets[@]} ]; do
        run "${targets[$i]}" &
        if [ $((i + 1)) -lt ${#targets[@]} ]; then run "${targets[$((i + 1))]}" & fi
        wait
        i=$((i + 2))
    done
else
    for target in "${targets[@]}"; do run "$target"; done
fi
