#!/usr/bin/env bash
# The `dcase` profile's checks that need a CUDA GPU, in one short run:
#   1. a CUDA run of the `dcase` profile records fp32 (its record's notes.precision);
#   2. tests/test_precision.py passes on that machine;
#   3. the `dcase` step's clips/s on the GPU, waveform roll and frame roll (the records'
#      notes.clips_per_second, last epoch).
#
# Made for a GPU machine that has PyTorch but no network: the few packages ascbench needs beyond
# PyTorch's usual company travel as wheels in .whl/ (not committed; fetch them where pip works,
# for the machine's Python, 3.12 here):
#
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform any -d .whl \
#       fvcore==0.1.5.post20221221 iopath yacs termcolor soundfile cffi pycparser
#   (cd .whl && python3 -m pip wheel -q --no-deps -w . ./*.tar.gz && rm ./*.tar.gz)
#
# then, on the GPU machine, from the repository root (OUT keeps the home and the log):
#
#   OUT=/some/dir bash benchmarks/gpu_check.sh
#
# DEVICE=cpu runs the same steps on a CPU, to try the script where no GPU is.
set -euo pipefail
OUT=${OUT:-$(mktemp -d)}
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
SITE=${SITE:-/tmp/ascbench-site}
mkdir -p "$OUT" "$SITE"
if compgen -G ".whl/*.whl" > /dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl
fi
"$PY" -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir --upgrade --target "$SITE" .
export PYTHONPATH="$SITE" ASCBENCH_HOME="$OUT/home" PYTHONUNBUFFERED=1
ascbench() { "$PY" -c 'from ascbench.cli.main import app; app()' "$@"; }

"$PY" - "$DEVICE" <<'EOF'
import sys, torch
device = sys.argv[1]
if device == "cuda":
    assert torch.cuda.is_available(), "no CUDA device visible"
    print("torch", torch.__version__, "on", torch.cuda.get_device_name())
else:
    print("torch", torch.__version__, "on the CPU")
EOF

for roll in waveform frames; do
    ascbench run --models cp-mobile --profile dcase --fraction 0.25 --epochs 3 --device "$DEVICE" \
        --set "roll=$roll" --no-progress 2>&1 | tee "$OUT/run-$roll.log"
done

"$PY" - "$ASCBENCH_HOME" <<'EOF'
import json, pathlib, sys
for path in sorted(pathlib.Path(sys.argv[1], "records").rglob("seed*.json")):
    record = json.loads(path.read_text())
    notes = record["notes"]
    print(f"{path.relative_to(sys.argv[1])}: device {notes['device']}, precision {notes['precision']}, "
          f"{notes['clips_per_second']} clips/s (last epoch), accuracy {record['metrics']['accuracy']:.4f}")
    assert notes["precision"] == "fp32", f"{path}: the dcase profile trained in {notes['precision']}, not fp32"
EOF

"$PY" -m pytest -q -p no:cacheprovider tests/test_precision.py 2>&1 | tee "$OUT/test_precision.log"
