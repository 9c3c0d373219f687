#!/usr/bin/env bash
# One run alone against the same run beside a second one, under each OpenMP wait policy: how much
# a shared machine slows ascbench, and what `OMP_WAIT_POLICY=PASSIVE` (the CLI's default) buys.
#
#   benchmarks/shared_machine.sh WORKDIR [REPEATS]   (`ascbench` on PATH; WORKDIR: a folder)
#
# The run: cp-mobile on synth-tau22-small at the quick profile cut to 4 epochs (--set epochs=4),
# --force, so it trains, evaluates and quantises every time; the feature cache is built once
# first and only read after. The pair is two such runs with different seeds, started together.
# Appends one CSV row per measurement to WORKDIR/shared_machine.csv:
#   policy,setting,repeat,wall_s,load_1min_before
# Measure on an otherwise idle machine: the point is the ratio, paired vs alone, per policy.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 WORKDIR [REPEATS]" >&2; exit 2; }
mkdir -p "$1"
W=$(cd "$1" && pwd)
REPEATS=${2:-2}
export ASCBENCH_HOME=$W/home
OUT=$W/shared_machine.csv
RUN=(ascbench run --models cp-mobile --data synth-tau22-small --profile quick --set epochs=4 --force --no-progress --device cpu)

"${RUN[@]}" --seeds 100 >"$W/warmup.log" 2>&1 # data set and feature cache, once
[ -s "$OUT" ] || echo "policy,setting,repeat,wall_s,load_1min_before" >"$OUT"

one() { # POLICY SEED: a run's wall seconds
    local start end
    start=$(date +%s.%N)
    OMP_WAIT_POLICY=$1 "${RUN[@]}" --seeds "$2" >"$W/run-$1-$2.log" 2>&1
    end=$(date +%s.%N)
    awk "BEGIN { printf \"%.1f\", $end - $start }"
}

for repeat in $(seq 1 "$REPEATS"); do
    for policy in PASSIVE ACTIVE; do
        load=$(cut -d' ' -f1 /proc/loadavg)
        echo "$policy,alone,$repeat,$(one "$policy" 101),$load" | tee -a "$OUT"
        load=$(cut -d' ' -f1 /proc/loadavg)
        one "$policy" 102 >"$W/pair-b.txt" &
        a=$(one "$policy" 103)
        wait
        echo "$policy,paired,$repeat,$a,$load" | tee -a "$OUT"
        echo "$policy,paired-other,$repeat,$(cat "$W/pair-b.txt"),$load" | tee -a "$OUT"
    done
done
