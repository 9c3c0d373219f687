#!/usr/bin/env bash
# Replays docs/experiments/fault-walkthrough.md: issue #23's fault reproductions, at the command
# line, on tiny synthetic data. Each step prints the lines that show the verdict, and stops the
# script when one is missing.
#
#   benchmarks/fault_walkthrough.sh WORKDIR     (an empty folder; `ascbench` on PATH)
#
# About 10 minutes on 2 CPU cores. Step 10 mounts a 1 MiB tmpfs when it may (root), else skips.
set -euo pipefail
set -m # background jobs keep SIGINT, so `kill -INT` acts as a Ctrl-C

[ $# -eq 1 ] || { echo "usage: $0 WORKDIR" >&2; exit 2; }
mkdir -p "$1"
W=$(cd "$1" && pwd)
DATA=$W/data
export ASCBENCH_HOME=$W/home COLUMNS=1000 # wide: no line of the output is wrapped
RUN=(ascbench run --data "$DATA" --profile smoke --device cpu --no-progress)
DS=synth-tau22-tiny-b3b872b30949be96 # the tiny set's name and fingerprint

step() { printf '\n== %s\n' "$*"; }
# expect PATTERN FILE: print the first lines holding PATTERN; stop when there is none
expect() { grep -E -m 2 -- "$1" "$2" || { echo "MISSING: '$1' in $2" >&2; exit 1; }; }
# status WANT COMMAND...: run it into $W/out.txt; stop unless it exits with WANT
status() {
    local want=$1 rc=0
    shift
    "$@" >"$W/out.txt" 2>&1 || rc=$?
    [ "$rc" -eq "$want" ] || { tail -20 "$W/out.txt"; echo "exit status $rc, expected $want: $*" >&2; exit 1; }
    echo "exit status $rc"
}
# interrupt SIGNAL FILE COMMAND...: start it, send SIGNAL as soon as FILE (a glob) exists
interrupt() {
    local signal=$1 file=$2
    shift 2
    "$@" >"$W/out.txt" 2>&1 &
    local pid=$! i
    for i in $(seq 1 1200); do compgen -G "$file" >/dev/null && break; sleep 0.05; done
    kill "-$signal" "$pid"
    wait "$pid" || echo "exit status $?"
}
plugin() { # plugin CHANNELS: the submission `mine`, 36*CHANNELS+10 parameters
    cat >"$W/subs/mine.py" <<EOF
from torch import nn
from ascbench import register_system


@register_system("mine")
def mine() -> nn.Module:
    channels = $1
    return nn.Sequential(nn.Conv2d(1, channels, 5, stride=4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(channels, 10))
EOF
}

step "data: synth-tau22-tiny"
ascbench data synth --size tiny --out "$DATA" | tail -1
mkdir -p "$W/subs"

step "1. an edited plugin: seed 0 is rerun, and two architectures are never one row"
plugin 4
status 0 "${RUN[@]}" --submissions "$W/subs" --models mine --seeds 0
plugin 18
status 0 "${RUN[@]}" --submissions "$W/subs" --models mine --seeds 0,1
expect "rerun, since the model's architecture" "$W/out.txt"
expect "^ 1 +mine +— +658 .* 2 +" "$W/out.txt"
plugin 4
ASCBENCH_HOME=$W/home1b status 0 "${RUN[@]}" --submissions "$W/subs" --models mine --seeds 0
plugin 18
ASCBENCH_HOME=$W/home1b status 0 "${RUN[@]}" --submissions "$W/subs" --models mine --seeds 1
ASCBENCH_HOME=$W/home1b status 0 ascbench leaderboard
expect "mine#|not averaged" "$W/out.txt"

step "2. audio rewritten in place (same size, same mtime): new digest, rerun, cache rebuilt"
CLIP=$DATA/audio/airport-barcelona-431-1713-9-a.wav
status 0 ascbench data check "$DATA"
expect "audio digest" "$W/out.txt"
touch -r "$CLIP" "$W/mtime.ref"
python - "$CLIP" <<'EOF'
import sys, soundfile as sf
path = sys.argv[1]
info = sf.info(path)
samples, rate = sf.read(path, dtype="float64")
sf.write(path, samples[::-1] * 0.25, rate, subtype=info.subtype)  # time-reversed, -12 dB
EOF
touch -r "$W/mtime.ref" "$CLIP"
status 0 ascbench data check "$DATA"
expect "audio digest" "$W/out.txt"
status 0 "${RUN[@]}" --submissions "$W/subs" --models mine --seeds 0,1
expect "audio content changed since it was recorded" "$W/out.txt"
expect "rebuilding it" "$W/out.txt"

step "3. a record edited by hand: reported, left out of the board and of check"
status 0 "${RUN[@]}" --models cp-mobile --seeds 0,1
status 0 ascbench leaderboard --export --out "$W/ref"
REF=$W/ref/synth-tau22-tiny-split25-smoke.json
CP=$ASCBENCH_HOME/records/$DS/cp-mobile/split25/smoke
cp -p "$CP/seed0.json" "$W/seed0.json.bak"
sed -i '0,/"accuracy": 0.1,/s//"accuracy": 0.9,/' "$CP/seed0.json"
status 0 ascbench leaderboard
expect "does not match the checksum" "$W/out.txt"
expect "^ [12] +cp-mobile .* pass +1 +" "$W/out.txt"
status 1 ascbench check --reference "$REF"
expect "unusable record|fewer seeds" "$W/out.txt"
cp -p "$W/seed0.json.bak" "$CP/seed0.json"

step "4. truncated, then bit-flipped predictions: warnings name the file; run reruns it"
NPZ=$(ls "$CP"/seed0.*.predictions.npz)
truncate -s $(($(stat -c %s "$NPZ") / 2)) "$NPZ"
status 0 ascbench leaderboard
expect "predictions.npz: the predictions file does not match" "$W/out.txt"
status 0 ascbench export dcase --system cp-mobile --label Walk_TEST_task1_1 --out "$W/pkg4"
expect "skipping unusable record|split_25 \(seed 1\)" "$W/out.txt"
status 0 "${RUN[@]}" --models cp-mobile --seeds 0,1
expect "the run will be repeated" "$W/out.txt"
NPZ=$(ls "$CP"/seed1.*.predictions.npz)
python -c "import sys; p = sys.argv[1]; b = bytearray(open(p, 'rb').read()); b[len(b) // 2] ^= 1; open(p, 'wb').write(b)" "$NPZ"
status 0 ascbench leaderboard
expect "seed1\..*predictions.npz: the predictions file does not match" "$W/out.txt"
status 0 ascbench export dcase --system cp-mobile --label Walk_TEST_task1_1 --out "$W/pkg4b"
expect "split_25 \(seed 0\)" "$W/out.txt"
status 0 "${RUN[@]}" --models cp-mobile --seeds 0,1
expect "the run will be repeated" "$W/out.txt"

step "5. check after one seed's record is damaged, then lost: exit status 1"
cp -p "$CP/seed1.json" "$W/seed1.json.bak"
truncate -s 100 "$CP/seed1.json"
status 1 ascbench check --reference "$REF"
expect "not valid JSON" "$W/out.txt"
rm "$CP/seed1.json"
status 1 ascbench check --reference "$REF"
expect "fewer seeds than the reference" "$W/out.txt"
cp -p "$W/seed1.json.bak" "$CP/seed1.json"
status 0 ascbench check --reference "$REF"

step "6. run --force interrupted (Ctrl-C, kill -9) in training, or failing: the finished run stays"
S=$ASCBENCH_HOME/checkpoints/$DS/cp-mobile/split25/smoke/seed0
sha256sum "$CP/seed0.json" "$S"/artifacts-*/model.pt "$S"/artifacts-*/int8/* >"$W/before.sha256"
interrupt INT "$S/force-*/train/*" "${RUN[@]}" --models cp-mobile --seeds 0 --force
expect "interrupted:" "$W/out.txt"
sha256sum -c "$W/before.sha256"
interrupt KILL "$S/force-*/train/*" "${RUN[@]}" --models cp-mobile --seeds 0 --force
sha256sum -c "$W/before.sha256"
cat >"$W/subs/flaky.py" <<'EOF'
import os

from torch import nn
from ascbench import register_system


class Flaky(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 4, 5, stride=4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))

    def forward(self, x):
        if self.training and os.environ.get("FLAKY_FAIL"):
            raise RuntimeError("training failed on purpose")
        return self.net(x)


@register_system("flaky")
def flaky() -> nn.Module:
    return Flaky()
EOF
status 0 "${RUN[@]}" --submissions "$W/subs" --models flaky --seeds 0
FS=$ASCBENCH_HOME/checkpoints/$DS/flaky/split25/smoke/seed0
sha256sum "$ASCBENCH_HOME/records/$DS/flaky/split25/smoke/seed0.json" "$FS"/artifacts-*/model.pt "$FS"/artifacts-*/int8/* >"$W/before-flaky.sha256"
FLAKY_FAIL=1 status 1 "${RUN[@]}" --submissions "$W/subs" --models flaky --seeds 0 --force
expect "training failed on purpose" "$W/out.txt"
sha256sum -c "$W/before-flaky.sha256"
mkdir -p "$W/eval/audio"
i=0
for f in $(tail -n +2 "$DATA/split_setup/test.csv" | cut -f1 | head -3); do cp "$DATA/$f" "$W/eval/audio/$i.wav"; i=$((i + 1)); done
status 0 ascbench export dcase --system cp-mobile --label Walk_TEST_task1_1 --eval-audio "$W/eval" --no-progress --out "$W/pkg6"
expect "outputs from the evaluation clips" "$W/out.txt"
status 0 ascbench export dcase --system flaky --submissions "$W/subs" --label Walk_TEST_task1_2 --eval-audio "$W/eval" --no-progress --out "$W/pkg6f"
expect "outputs from the evaluation clips" "$W/out.txt"

step "7. bad plugins: an AttributeError in training, argparse and sys.exit at import"
mkdir -p "$W/subs7"
cat >"$W/subs7/bad.py" <<'EOF'
from torch import nn
from ascbench import register_system


class TrainsBadly(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 4, 5, stride=4), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))

    def forward(self, x):
        if self.training:  # eval mode (validation) passes; the first training step does not
            return self.net(x) + self.no_such_attribute
        return self.net(x)


@register_system("bad")
def bad() -> nn.Module:
    return TrainsBadly()
EOF
printf 'import argparse\n\nparser = argparse.ArgumentParser(prog="argy")\nparser.add_argument("--config", required=True)\nparser.parse_args()\n' >"$W/subs7/argy.py"
printf 'import sys\nsys.exit(2)\n' >"$W/subs7/exits.py"
export ASCBENCH_HOME=$W/home7
status 1 "${RUN[@]}" --submissions "$W/subs7" --models bad,cp-mobile
expect "run bad split25 seed0 failed: AttributeError" "$W/out.txt"
expect "from $W/subs7/bad.py:12" "$W/out.txt"
expect "^ 1 +cp-mobile" "$W/out.txt"
status 0 ascbench systems --submissions "$W/subs7"
expect "plugin problem: .*(argy|exits).py: failed to import: SystemExit: 2" "$W/out.txt"
status 0 "${RUN[@]}" --submissions "$W/subs7" --models cp-mobile
expect "complete record found" "$W/out.txt"

step "8. two identical runs at once: one trains, the other waits and reuses"
export ASCBENCH_HOME=$W/home8
"${RUN[@]}" --models cp-mobile --seeds 0 >"$W/out8a.txt" 2>&1 &
first=$!
sleep 1
"${RUN[@]}" --models cp-mobile --seeds 0 >"$W/out8b.txt" 2>&1
wait "$first"
cat "$W/out8a.txt" "$W/out8b.txt" >"$W/out.txt"
expect "another process is running it; waiting" "$W/out.txt"
expect "complete record found, skipped" "$W/out.txt"

step "9. an interrupted training resumes in a copy of its home"
export ASCBENCH_HOME=$W/home9
interrupt INT "$ASCBENCH_HOME/checkpoints/$DS/cp-mobile/split25/smoke/seed0/train-*/train/train_state.pt" \
    "${RUN[@]}" --models cp-mobile --seeds 0
expect "interrupted:" "$W/out.txt"
cp -a "$W/home9" "$W/home9-copy"
mv "$W/home9" "$W/home9-moved"
export ASCBENCH_HOME=$W/home9-copy
status 0 "${RUN[@]}" --models cp-mobile --seeds 0
python -c "import json, sys; print('resumed_from_epoch', json.load(open(sys.argv[1]))['notes']['resumed_from_epoch'])" \
    "$ASCBENCH_HOME/records/$DS/cp-mobile/split25/smoke/seed0.json" | tee "$W/out.txt"
expect "resumed_from_epoch 1" "$W/out.txt"

step "10. a disk too small for the feature cache: one error with the path and the bytes"
mkdir -p "$W/small"
if mount -t tmpfs -o size=1m tmpfs "$W/small" 2>/dev/null; then
    trap 'umount "$W/small"' EXIT
    ASCBENCH_HOME=$W/small/home status 1 "${RUN[@]}" --models cp-mobile --seeds 0
    umount "$W/small"
    trap - EXIT
    expect "not enough free space for the feature cache" "$W/out.txt"
else
    echo "cannot mount a tmpfs here: see tests/test_faults_data.py::test_free_space_is_checked_at_its_boundary"
fi

step "minor: a float wav holding NaN; stale record temporaries"
cp -r "$DATA" "$W/data-nan"
python - "$W/data-nan/audio/airport-barcelona-431-1837-2-a.wav" <<'EOF'
import sys, numpy as np, soundfile as sf
path = sys.argv[1]
samples, rate = sf.read(path, dtype="float32")
samples[100] = np.nan
sf.write(path, samples, rate, subtype="FLOAT")
EOF
status 1 ascbench data check "$W/data-nan"
expect "non-finite sample" "$W/out.txt"
export ASCBENCH_HOME=$W/home
echo '{"half a rec' >"$CP/.seed0.json.x1y2z3.tmp"
touch -d '2 hours ago' "$CP/.seed0.json.x1y2z3.tmp"
status 0 "${RUN[@]}" --models cp-mobile --seeds 0 --force
[ ! -e "$CP/.seed0.json.x1y2z3.tmp" ] && echo "stale .seed0.json.x1y2z3.tmp removed"

step "all steps gave the expected lines"
