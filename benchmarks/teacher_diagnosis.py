"""Why do the harness's self-supervised teachers not beat the students? Two measurements.

``probe``: a linear probe (standardised, L2 logistic regression) on frozen teacher features,
mean+std over time of the front end and of every transformer layer, trained on the split's
labelled clips and scored (macro class-wise accuracy) on test.csv. Comparing a pre-trained
encoder with a randomly initialised one says what self-supervised pre-training added.

``finetune``: :func:`ascbench.teachers.finetune.finetune_teacher` of a pre-trained (or random)
encoder with the system's fine-tuning config, fields overridden by ``--set``; prints seconds,
final training accuracy and test accuracy.

Both read the data set and caches of an ascbench home, and a pre-training stage directory
(``$ASCBENCH_HOME/teachers/<teacher>-pretrain-...``) or ``random``::

    python benchmarks/teacher_diagnosis.py probe beats HOME/teachers/beats-small-pretrain-... --home HOME
    python benchmarks/teacher_diagnosis.py finetune beats random --home HOME --set epochs=40
    python benchmarks/teacher_diagnosis.py finetune beats HOME/teachers/beats-small-pretrain-... --home HOME --set epochs=40 --precision bf16

Not a test and not collected by pytest (no ``bench_`` prefix).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ascbench.data.reader import load_dataset, load_split
from ascbench.evaluation.metrics import macro_class_accuracy
from ascbench.features.cache import load_features
from ascbench.recipes.teachers import new_encoder, teacher_frontend
from ascbench.teachers.base import TeacherClassifier
from ascbench.teachers.finetune import finetune_teacher
from ascbench.teachers.stages import load_state


def teacher_config(kind: str):
    if kind == "hubert":
        from baselines.hubert_mobilenetv2 import hubert_teacher

        return hubert_teacher("small")
    from baselines.beats_mobilenetv2 import beats_teacher

    return beats_teacher("small")


@torch.inference_mode()
def pooled_layers(encoder, features, rows: np.ndarray) -> np.ndarray:
    """``[N, 1 + layers, 2 * width]``: mean and std over time of the front end and each layer (zero-padded)."""
    chunks = []
    for start in range(0, len(rows), 64):
        out = encoder(features.batch(rows[start : start + 64]))
        stats = [torch.cat([h.mean(1), h.std(1)], -1) for h in [out.cnn_features, *out.hidden_states]]
        width = max(s.shape[-1] for s in stats)
        chunks.append(torch.stack([torch.nn.functional.pad(s, (0, width - s.shape[-1])) for s in stats], 1))
    return torch.cat(chunks).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["probe", "finetune"])
    parser.add_argument("teacher", choices=["hubert", "beats"])
    parser.add_argument("weights", help="a pre-training stage directory (with weights.pt) or 'random'")
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--data", default="synth-tau22-small-seed0", help="data set folder under HOME/datasets")
    parser.add_argument("--fraction", type=float, default=0.25)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="FinetuneConfig override")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="autocast of the fine-tuning steps")
    args = parser.parse_args()

    dataset = load_dataset(args.home / "datasets" / args.data)
    split = load_split(dataset, args.fraction)
    config = teacher_config(args.teacher)
    features = load_features(dataset, teacher_frontend(args.teacher), home=args.home, progress=False)
    torch.manual_seed(0)  # a random-init encoder is one fixed draw, so its figures reproduce
    encoder = new_encoder(config)
    if args.weights != "random":
        load_state(encoder, Path(args.weights))
    train_rows = features.rows([c.filename for c in split.train])
    test_rows = features.rows([c.filename for c in split.test])
    y_train = np.array([c.label for c in split.train])
    y_test = np.array([c.label for c in split.test])
    started = time.perf_counter()
    if args.what == "probe":
        encoder.eval()
        x_train, x_test = pooled_layers(encoder, features, train_rows), pooled_layers(encoder, features, test_rows)
        for layer in range(x_train.shape[1]):
            probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=1000))
            probe.fit(x_train[:, layer], y_train)
            name = "front end" if layer == 0 else f"layer {layer}"
            print(f"{name}: {macro_class_accuracy(y_test, probe.predict(x_test[:, layer])):.4f}")
    else:
        overrides = {k: ast.literal_eval(v) for k, v in (item.split("=", 1) for item in args.set)}
        classifier = TeacherClassifier(encoder)
        history: list[dict] = []
        finetune_teacher(classifier, features, train_rows, y_train, dataclasses.replace(config.finetune, **overrides),
                         seed=0, progress=False, history=history,
                         precision=torch.bfloat16 if args.precision == "bf16" else None)  # fmt: skip
        with torch.inference_mode():
            logits = torch.cat([classifier(features.batch(test_rows[s : s + 128]))[0] for s in range(0, len(test_rows), 128)])
        print(f"train accuracy {history[-1]['accuracy']:.4f}, test {macro_class_accuracy(y_test, logits.argmax(1).numpy()):.4f}")
    print(f"{time.perf_counter() - started:.0f} s, {len(train_rows)} training clips, {len(test_rows)} test clips")


if __name__ == "__main__":
    main()
