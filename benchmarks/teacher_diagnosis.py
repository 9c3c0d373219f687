"""Why do the harness's self-supervised teachers not beat the students? Two measurements.

``probe``: a linear probe (standardised, L2 logistic regression) on frozen teacher features,
mean+std over time of the front end and of every transformer layer, trained on the split's
labelled clips and scored (macro class-wise accuracy) on test.csv. Comparing a pre-trained
encoder with a randomly initialised one says what self-supervised pre-training added.

``pretrain``: the small teacher's self-supervised pre-training on the split's unlabeled pool (its
``small`` config, not ``quick``'s shortened one), fields overridden by ``--pretrain-set`` (e.g.
``epochs=8`` against ``quick``'s 1 for HuBERT), saved to the
directory given as ``weights`` for ``probe`` and ``finetune`` to read.

``finetune``: :func:`ascbench.distill.teachers.finetune.finetune_teacher` of a pre-trained (or random)
encoder with the system's fine-tuning config, fields overridden by ``--set``; prints seconds,
final training accuracy and test accuracy.

Both read the data set and caches of an ascbench home, and a pre-training stage directory
(``$ASCBENCH_HOME/teachers/<teacher>-pretrain-...``) or ``random``::

    python benchmarks/teacher_diagnosis.py probe beats HOME/teachers/beats-small-pretrain-... --home HOME
    python benchmarks/teacher_diagnosis.py finetune beats random --home HOME --set epochs=40
    python benchmarks/teacher_diagnosis.py finetune beats HOME/teachers/beats-small-pretrain-... --home HOME --set epochs=40 --precision bf16
    python benchmarks/teacher_diagnosis.py finetune beats random --home HOME --set epochs=40 --model encoder_layers=4 --model encoder_embed_dim=192
    python benchmarks/teacher_diagnosis.py finetune hubert HOME/teachers/hubert-small-pretrain-... --home HOME --set epochs=12 --set min_steps=250 --freeze-frontend
    python benchmarks/teacher_diagnosis.py finetune beats random --home HOME --set epochs=40 --frontend log-mel --seed 1
    python benchmarks/teacher_diagnosis.py pretrain hubert /tmp/hubert-8ep --home HOME --pretrain-set epochs=8

``--model`` changes the teacher's architecture (a ``BEATsConfig`` field, or a ``HubertConfig`` field
for HuBERT), so only with ``random`` weights; ``--freeze-frontend`` fine-tunes with HuBERT's conv
feature encoder frozen, as the published HuBERT fine-tuning does (BEATs: its patch embedding).
``--frontend log-mel`` feeds BEATs (``random`` weights) torchaudio's log-mel on the grid of its Kaldi
fbank instead of the fbank itself, to measure what the official preprocessing costs on this data;
``--seed`` draws another initialisation and fine-tuning order.

Not a test and not collected by pytest (no ``bench_`` prefix).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ascbench.data.reader import load_dataset, load_split
from ascbench.evaluation.metrics import macro_class_accuracy
from ascbench.features.cache import load_features
from ascbench.features.frontends import BaselineMel
from ascbench.distill.teacher_recipe import new_encoder, teacher_frontend
from ascbench.distill.teachers.base import TeacherClassifier
from ascbench.distill.teachers.finetune import finetune_teacher
from ascbench.distill.teachers.beats import BEATsTeacher
from ascbench.distill.teachers.beats_pretrain import pretrain_beats
from ascbench.distill.teachers.hubert import HubertTeacher
from ascbench.distill.teachers.hubert_pretrain import pretrain_hubert
from ascbench.distill.teachers.stages import load_state, save_state


@dataclass(frozen=True)
class BEATsGridLogMel(BaselineMel):
    """The baseline's ``log(mel + 1e-5)`` on the grid of BEATs' Kaldi fbank (16 kHz, 25 ms windows,
    10 ms hop, 128 bins), time-major as BEATs takes it, shifted and scaled to the normalised
    fbank's range (mean about 0.2, std about 0.4 on synth-tau22). The two differ in the Kaldi steps (povey window, DC
    removal, pre-emphasis, 20-Hz low edge) and, above all, in the log floor: machine epsilon on
    the x 2^15 waveform against the baseline's 1e-5 on the unit-scale one."""

    shift: float = 4.0
    scale: float = 6.0

    @property
    def name(self) -> str:
        return "beats-grid-log-mel"

    def compute(self, waveform: torch.Tensor, sample_rate: int) -> torch.Tensor:
        return ((super().compute(waveform, sample_rate) + self.shift) / self.scale).transpose(-1, -2)


BEATS_GRID_LOG_MEL = BEATsGridLogMel(sample_rate=16_000, n_fft=512, win_length=400, hop_length=160, n_mels=128)


def teacher_config(kind: str):
    if kind == "hubert":
        from baselines.hubert_mobilenetv2 import hubert_teacher

        return hubert_teacher("small")
    from baselines.beats_mobilenetv2 import beats_teacher

    return beats_teacher("small")


def parse_overrides(items: list[str]) -> dict:
    return {k: ast.literal_eval(v) for k, v in (item.split("=", 1) for item in items)}


def with_model_overrides(config, overrides: dict):
    """``config`` with its encoder architecture changed by ``overrides``."""
    if not overrides:
        return config
    pretrain = config.pretrain
    if config.kind == "hubert":
        pretrain = dataclasses.replace(pretrain, model_overrides=tuple({**dict(pretrain.model_overrides), **overrides}.items()))
    else:
        pretrain = dataclasses.replace(pretrain, model=dataclasses.replace(pretrain.model, **overrides))
    return dataclasses.replace(config, pretrain=pretrain)


def pretrain(config, features, split, out: Path, overrides: dict) -> None:
    """Self-supervised pre-training on the split's unlabeled pool, saved as a stage directory."""
    pretrain_config = dataclasses.replace(config.pretrain, **overrides)
    rows = np.sort(features.rows([c.filename for c in split.unlabeled]))
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if config.kind == "hubert":
        model = HubertTeacher(pretrain_hubert(features, rows, pretrain_config, out / "work", config.seed, progress=False))
    else:
        model = BEATsTeacher(pretrain_beats(features, rows, pretrain_config, out / "work", config.seed, progress=False))
    save_state(model, out)
    print(f"pre-trained on {len(rows)} unlabeled clips in {time.perf_counter() - started:.0f} s: {out}")


def freeze_frontend(encoder) -> None:
    """No gradients into HuBERT's conv feature encoder (BEATs: the patch embedding and its norm)."""
    if hasattr(encoder.model, "feature_extractor"):
        encoder.model.feature_extractor._freeze_parameters()
    else:
        encoder.model.patch_embedding.requires_grad_(False)
        encoder.model.layer_norm.requires_grad_(False)


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
    parser.add_argument("what", choices=["probe", "finetune", "pretrain"])
    parser.add_argument("teacher", choices=["hubert", "beats"])
    parser.add_argument("weights", help="a pre-training stage directory (with weights.pt) or 'random'; for pretrain, where to save")
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--data", default="synth-tau22-small-seed0", help="data set folder under HOME/datasets")
    parser.add_argument("--fraction", type=float, default=0.25)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="FinetuneConfig override")
    parser.add_argument("--pretrain-set", action="append", default=[], metavar="FIELD=VALUE",
                        help="pre-training config override (pretrain only)")
    parser.add_argument("--model", action="append", default=[], metavar="FIELD=VALUE",
                        help="architecture override (BEATsConfig or HubertConfig field); needs 'random' weights")
    parser.add_argument("--freeze-frontend", action="store_true", help="fine-tune with the front end frozen")
    parser.add_argument("--frontend", choices=["kaldi-fbank", "log-mel"], default="kaldi-fbank",
                        help="BEATs' input (log-mel: random weights only; see BEATsGridLogMel)")
    parser.add_argument("--seed", type=int, default=0, help="initialisation and fine-tuning seed")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="autocast of the fine-tuning steps")
    args = parser.parse_args()

    dataset = load_dataset(args.home / "datasets" / args.data)
    split = load_split(dataset, args.fraction)
    config = with_model_overrides(teacher_config(args.teacher), parse_overrides(args.model))
    if args.model and args.weights != "random":
        parser.error("--model changes the architecture: pre-trained weights would not fit it; use 'random'")
    log_mel = args.frontend == "log-mel"
    if log_mel and (args.teacher != "beats" or args.weights != "random" or args.what == "pretrain"):
        parser.error("--frontend log-mel is for BEATs with 'random' weights (pre-training stages learned Kaldi fbank)")
    frontend = BEATS_GRID_LOG_MEL if log_mel else teacher_frontend(args.teacher)
    features = load_features(dataset, frontend, home=args.home, progress=False)
    if args.what == "pretrain":
        pretrain(config, features, split, Path(args.weights), parse_overrides(args.pretrain_set))
        return
    torch.manual_seed(args.seed)  # a random-init encoder is one fixed draw per seed, so its figures reproduce
    encoder = new_encoder(config)
    encoder.frontend = frontend
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
        overrides = parse_overrides(args.set)
        classifier = TeacherClassifier(encoder)
        if args.freeze_frontend:
            freeze_frontend(encoder)
        history: list[dict] = []
        finetune_teacher(classifier, features, train_rows, y_train, dataclasses.replace(config.finetune, **overrides),
                         seed=args.seed, progress=False, history=history,
                         precision=torch.bfloat16 if args.precision == "bf16" else None)  # fmt: skip
        with torch.inference_mode():
            logits = torch.cat([classifier(features.batch(test_rows[s : s + 128]))[0] for s in range(0, len(test_rows), 128)])
        print(f"train accuracy {history[-1]['accuracy']:.4f}, test {macro_class_accuracy(y_test, logits.argmax(1).numpy()):.4f}")
    parameters = sum(p.numel() for p in encoder.parameters())
    print(f"{time.perf_counter() - started:.0f} s, {len(train_rows)} training clips, {len(test_rows)} test clips, encoder {parameters:,} parameters")


if __name__ == "__main__":
    main()
