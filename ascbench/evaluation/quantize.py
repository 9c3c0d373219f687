"""int8: quantize a deployable model, save it as a real file, and check that it still agrees.

The path: **PT2E** -- ``torch.export`` captures the model as an aten graph, ``prepare_pt2e``
inserts observers where :class:`X86InductorQuantizer` says (per-channel symmetric int8
weights, uint8 activations, batch norm folded into the convolutions), calibration runs, and
``convert_pt2e`` replaces weights by int8 tensors with quantize/dequantize around each op. The
result is exported again and written with ``torch.export.save`` as a self-contained ``.pt2``
program: int8 weights, their scales, the graph; ``torch.export.load`` runs it without the
plugin's source code, and AOTInductor / ``torch.compile`` can lower it to int8 CPU kernels.

Why this path, on the pinned torch 2.9.1:

- it needs no model changes: the residual adds of CP-Mobile and timm networks are quantized as
  they are, where eager-mode quantization needs QuantStub/DeQuantStub and FloatFunctional
  rewrites of every plugin's network;
- all of ``torch.ao.quantization`` (eager, FX and PT2E) warns that it is deprecated in favour of
  torchao; PT2E is the one API torchao keeps unchanged (``torchao.quantization.pt2e``:
  ``prepare_pt2e``, ``convert_pt2e``, ``X86InductorQuantizer``), so moving on is an import change.
  torchao is not a dependency yet (a large one for three functions), so the torch copy is used
  and its deprecation warning is silenced here -- on purpose, with this note as the reason;
- the same graph gives quantization-aware training (:func:`prepare_qat`, :func:`convert_qat`), so
  a model trained with fake quantization and one quantized after training are saved alike;
- the ONNX Runtime quantizer would add onnx + onnxruntime and a second model format.

Two details of torch 2.9's PT2E that this module works around, each named where it is done:
the quantizer finds conv/linear layers through ``source_fn_stack`` metadata that only *strict*
(dynamo) export records -- a non-strict export would silently quantize nothing, so capture is
strict and a result without int8 weights is an error; and ``prepare_qat_pt2e`` fails with a
``KeyError`` when a conv-BN pair feeds pooling directly (CP-Mobile's head), so QAT preparation
repeats its steps with the stale annotation fixed.

QAT entry point (for recipes that train with fake quantization in the late epochs)::

    qat = prepare_qat(model, example)         # fake-quantized graph, train mode; train qat.parameters()
    set_qat_mode(qat, training=False)         # not .eval()/.train(): exported graphs swap BN/dropout ops
    int8_model = convert_qat(qat)             # int8 graph
    artifact = save_int8(int8_model, example, out_dir / "model-int8.pt2")

The QAT graph computes ``model.forward`` only (its outputs); losses on intermediate features need
a forward that returns them.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import torch
from torch import nn

DEPRECATION_PREFIX = "torch.ao.quantization is deprecated"
ARTIFACT_NAME = "model-int8.pt2"
"""File name used when the artifact's destination is a folder."""


class QuantizationError(Exception):
    """The model cannot be quantized to int8 by this path; the message says at which step and why."""


@dataclass
class Int8Artifact:
    """A saved int8 model file and the loaded model it holds."""

    path: Path
    bytes: int
    """Real size of the file on disk (graph + tensors)."""
    model: nn.Module
    int8_params: int
    """Number of values stored as int8 (the quantized weights)."""
    tensor_bytes: int
    """Bytes of all tensors in the file: int8 weights, float32 biases and scales, int64 zero points."""


@dataclass
class Int8Result:
    """Outcome of the int8 step of a complexity measurement: an artifact, or why there is none."""

    artifact: Int8Artifact | None
    agreement: float | None
    n_inputs: int = 0
    error: str | None = None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the torch.ao deprecation notice (see the module docstring) and PT2E's BN-folding chatter."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=DEPRECATION_PREFIX)
        warnings.filterwarnings("ignore", message=r"erase_node\(.*\) on an already erased node")
        warnings.filterwarnings("ignore", message="The given buffer is not writable")
        yield


def _batch_dims(example: torch.Tensor) -> tuple[dict[int, torch.export.Dim]]:
    return ({0: torch.export.Dim("batch", min=1, max=65536)},)


def _capture(model: nn.Module, example: torch.Tensor) -> torch.fx.GraphModule:
    """Strict export with a dynamic batch (strict: the quantizer needs ``source_fn_stack``)."""
    if example.dim() < 2 or example.shape[0] < 2:
        raise QuantizationError(f"example input must hold at least 2 clips (a batch), got shape {list(example.shape)}")
    # Strict export runs dynamo. For an nn.Sequential (a common plugin model) its cache kept one
    # entry per model exported in this process, dead or alive, and the 9th capture of a grid hit
    # ``recompile_limit``, failing every capture after it (timm's and CP-Mobile's classes did not,
    # over 11). Each capture is a one-off, so it starts from an empty cache.
    torch.compiler.reset()
    try:
        with _quiet():
            return torch.export.export(model, (example,), dynamic_shapes=_batch_dims(example), strict=True).module()
    except Exception as exc:
        raise QuantizationError(
            f"torch.export could not capture {type(model).__name__} for a batch of {list(example.shape[1:])} "
            f"inputs: {type(exc).__name__}: {_first_line(exc)}"
        ) from exc


def _quantizer(is_qat: bool):  # -> X86InductorQuantizer; imported lazily (torch.ao is slow to import)
    """x86's default recipe with weights on the restricted symmetric grid [-127, 127].

    Scale max|W|/127 per output channel (not x86's default max|W|/127.5): the grid that weight
    fake-quantization during training (``ascbench.distill.qat``, symmetric mode) puts weights on,
    so a model trained that way is stored without a second rounding. BN folding scales each
    channel by one factor, which keeps its weights on that channel's grid.
    """
    from torch.ao.quantization.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer,
        get_default_x86_inductor_quantization_config,
    )

    config = get_default_x86_inductor_quantization_config(is_qat=is_qat)
    config = dataclasses.replace(config, weight=dataclasses.replace(config.weight, quant_min=-127, quant_max=127))
    quantizer = X86InductorQuantizer()
    quantizer.set_global(config)
    return quantizer


def quantize_int8(model: nn.Module, calibration: torch.Tensor, out: Path | str) -> Int8Artifact:
    """Post-training static int8 quantization of ``model``, calibrated on ``calibration`` [N, ...].

    Writes the int8 program to ``out`` -- a ``.pt2`` file, or a folder that receives
    :data:`ARTIFACT_NAME` -- and returns it reloaded from disk, so the returned model is what the
    file holds. ``model`` itself is not changed; weight parametrizations (fake quantization from
    training, weight norm) are baked into plain weights on a copy first. Raises
    :class:`QuantizationError` naming the step that failed.
    """
    from torch.ao.quantization.quantize_pt2e import convert_pt2e, prepare_pt2e

    float_model = _bake_parametrizations(copy.deepcopy(model)).eval()
    graph = _capture(float_model, calibration[:2])
    try:
        with _quiet():
            prepared = prepare_pt2e(graph, _quantizer(is_qat=False))
            with torch.no_grad():
                for chunk in calibration.split(64):
                    prepared(chunk)
            int8_model = _strip_unused(convert_pt2e(prepared))
    except Exception as exc:
        raise QuantizationError(f"PT2E quantization of {type(model).__name__} failed: {type(exc).__name__}: {_first_line(exc)}") from exc
    return save_int8(int8_model, calibration[:2], out)


def save_int8(int8_model: nn.Module, example: torch.Tensor, out: Path | str) -> Int8Artifact:
    """Export a converted int8 graph and save it with ``torch.export.save``; reload it from disk.

    Example inputs and source stack traces are left out of the file: they are not the model, and
    the traces would put local paths into a file meant to be shared.
    """
    out = Path(out)
    if out.suffix != ".pt2":
        out = out / ARTIFACT_NAME
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _quiet():
            program = torch.export.export(int8_model, (example,), dynamic_shapes=_batch_dims(example))
    except Exception as exc:
        raise QuantizationError(f"the int8 graph could not be exported for saving: {type(exc).__name__}: {_first_line(exc)}") from exc
    program.example_inputs = None
    for node in program.graph.nodes:
        for key in ("stack_trace", "nn_module_stack", "source_fn_stack", "from_node", "torch_fn"):
            node.meta.pop(key, None)
    tensors = [*program.state_dict.values(), *program.constants.values()]
    tensors = [t for t in tensors if isinstance(t, torch.Tensor)]
    int8_params = sum(t.numel() for t in tensors if t.dtype == torch.int8)
    if int8_params == 0:
        raise QuantizationError(
            "no layer was quantized: the quantizer found no conv or linear layer it could annotate "
            "(the graph holds no int8 tensor)"
        )
    # beside its final name, then renamed: a reader never sees a half-written program (two
    # processes saving one path once interleaved their bytes into an unreadable archive); the
    # temporary name ends in .pt2 too, or torch.export.save logs a warning for every artifact
    partial = out.with_name(f".{out.stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{out.suffix}")
    try:
        torch.export.save(program, partial)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return Int8Artifact(
        path=out,
        bytes=out.stat().st_size,
        model=load_int8(out),
        int8_params=int8_params,
        tensor_bytes=sum(t.numel() * t.element_size() for t in tensors),
    )


def load_int8(path: Path | str) -> nn.Module:
    """Load a saved int8 program as a callable module (no plugin code needed)."""
    with _quiet():
        return torch.export.load(str(path)).module()


def int8_agreement(
    float_model: nn.Module | None,
    int8_model: nn.Module,
    inputs: torch.Tensor,
    batch_size: int = 64,
    float_classes: torch.Tensor | None = None,
) -> float:
    """Fraction of clips in ``inputs`` on which both models predict the same class (argmax).

    ``float_classes`` (the float model's argmax on ``inputs``, when the caller already has it)
    saves running the float model again. Spectrogram batches go in channels-last: the int8
    program's convolutions run about 1.4x faster that way on x86, with the same result.
    """
    if len(inputs) == 0:
        raise ValueError("int8_agreement needs at least one input clip")
    if float_classes is None and float_model is None:
        raise ValueError("int8_agreement needs the float model or its predicted classes")
    if inputs.dim() == 4:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    was_training = float_model.training if float_model is not None else False
    if float_model is not None:
        float_model.eval()
    same = 0
    try:
        with torch.no_grad(), _quiet():
            for start in range(0, len(inputs), batch_size):
                chunk = inputs[start : start + batch_size]
                expected = float_classes[start : start + batch_size] if float_classes is not None else float_model(chunk).argmax(-1)
                same += int((expected == int8_model(chunk).argmax(-1)).sum())
    finally:
        if float_model is not None:
            float_model.train(was_training)
    return same / len(inputs)


def measure_int8(model: nn.Module, calibration: torch.Tensor, inputs: torch.Tensor, out: Path | str) -> Int8Result:
    """Quantize, save and compare; a model this path cannot quantize gives the reason, not a crash."""
    try:
        artifact = quantize_int8(model, calibration, out)
    except QuantizationError as exc:
        return Int8Result(artifact=None, agreement=None, error=str(exc))
    agreement = int8_agreement(model, artifact.model, inputs)
    return Int8Result(artifact=artifact, agreement=agreement, n_inputs=len(inputs))


# --- quantization-aware training ------------------------------------------------------------


def prepare_qat(model: nn.Module, example_input: torch.Tensor) -> torch.fx.GraphModule:
    """A fake-quantized graph of ``model`` for quantization-aware training, in train mode.

    ``example_input`` is a batch of at least 2 clips. ``model`` is not changed; train the returned
    module's parameters, switch modes with :func:`set_qat_mode`, finish with :func:`convert_qat`.
    """
    from torch.ao.quantization.pt2e.prepare import prepare
    from torch.ao.quantization.pt2e.qat_utils import _fuse_conv_bn_qat
    from torch.ao.quantization.pt2e.utils import _disallow_eval_train, _get_node_name_to_scope

    train_model = copy.deepcopy(model).train()
    graph = _capture(train_model, example_input)
    try:
        with _quiet():
            # These are the steps of torch 2.9's prepare_qat_pt2e, plus _repair_stale_inputs: its
            # conv-BN fusion rewrites the BN node but leaves the old node as the key under which
            # a following op (CP-Mobile's pooling head) annotated its input -> KeyError.
            quantizer = _quantizer(is_qat=True)
            meta = graph.meta
            scope = _get_node_name_to_scope(graph)
            graph = quantizer.transform_for_annotation(graph)
            quantizer.annotate(graph)
            quantizer.validate(graph)
            _fuse_conv_bn_qat(graph)
            _repair_stale_inputs(graph)
            prepared = prepare(graph, scope, is_qat=True, obs_or_fq_callback=quantizer.prepare_obs_or_fq_callback)
            prepared.meta.update(meta)
            return _disallow_eval_train(prepared)
    except Exception as exc:
        raise QuantizationError(f"QAT preparation of {type(model).__name__} failed: {type(exc).__name__}: {_first_line(exc)}") from exc


def _repair_stale_inputs(graph: torch.fx.GraphModule) -> None:
    """Re-key annotations that still name a node the conv-BN fusion replaced."""
    for node in graph.graph.nodes:
        annotation = node.meta.get("quantization_annotation")
        if annotation is None:
            continue
        inputs = node.all_input_nodes
        stale = [n for n in annotation.input_qspec_map if n not in inputs]
        fresh = [n for n in inputs if n not in annotation.input_qspec_map]
        if len(stale) == 1 and len(fresh) == 1:
            annotation.input_qspec_map[fresh[0]] = annotation.input_qspec_map.pop(stale[0])
        elif stale:
            raise QuantizationError(f"cannot repair the quantization annotation of {node.name}: stale inputs {stale}")


def set_qat_mode(qat_model: torch.fx.GraphModule, training: bool) -> torch.fx.GraphModule:
    """Train or eval mode for a QAT graph (swaps its batch-norm and dropout ops)."""
    from torch.ao.quantization import move_exported_model_to_eval, move_exported_model_to_train

    with _quiet():
        return (move_exported_model_to_train if training else move_exported_model_to_eval)(qat_model)


def convert_qat(qat_model: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """The int8 graph of a model trained with :func:`prepare_qat` (save it with :func:`save_int8`)."""
    from torch.ao.quantization.quantize_pt2e import convert_pt2e

    set_qat_mode(qat_model, training=False)
    try:
        with _quiet():
            return _strip_unused(convert_pt2e(qat_model))
    except Exception as exc:
        raise QuantizationError(f"converting the QAT model to int8 failed: {type(exc).__name__}: {_first_line(exc)}") from exc


def _bake_parametrizations(model: nn.Module) -> nn.Module:
    """Replace parametrized tensors by their current values (what the deployed model computes with)."""
    from torch.nn.utils import parametrize

    for module in model.modules():
        if parametrize.is_parametrized(module):
            for name in list(module.parametrizations):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    return model


def int8_weights(path: Path | str) -> list[torch.Tensor]:
    """The dequantized weights stored in a saved int8 program, in graph order (for inspection)."""
    with _quiet():
        program = torch.export.load(str(path))
    sig = program.graph_signature
    tensors = {
        **{k: program.state_dict[v] for k, v in sig.inputs_to_parameters.items()},
        **{k: program.state_dict[v] for k, v in sig.inputs_to_buffers.items()},
        **{k: program.constants[v] for k, v in sig.inputs_to_lifted_tensor_constants.items()},
    }
    weights = []
    for node in program.graph.nodes:
        if node.target is torch.ops.quantized_decomposed.dequantize_per_channel.default:
            q, scale, zero_point = (tensors[a.name] for a in node.args[:3])
            view = [-1] + [1] * (q.dim() - 1)
            weights.append((q.float() - zero_point.view(view)) * scale.view(view))
    return weights


def _strip_unused(graph: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Drop float parameters the int8 graph no longer reads (they would be saved beside the int8 ones)."""
    used = {node.target for node in graph.graph.nodes if node.op == "get_attr"}
    for name, _ in [*graph.named_parameters(), *graph.named_buffers()]:
        if name not in used:
            owner, _, leaf = name.rpartition(".")
            delattr(graph.get_submodule(owner) if owner else graph, leaf)
    graph.delete_all_unused_submodules()
    return graph


# --- inputs without a data set ----------------------------------------------------------------


def structured_inputs(shape: Sequence[int], n: int, seed: int = 0, n_prototypes: int = 10) -> torch.Tensor:
    """``n`` random inputs of ``shape`` (one clip, no batch) that look like the frontend's output.

    Random, but with the structure of audio features, so that calibration ranges and the
    agreement of an int8 model are measured on plausible values rather than white noise; see
    :func:`structured_dataset`.
    """
    return structured_dataset(shape, n, seed, n_prototypes)[0]


def structured_dataset(
    shape: Sequence[int], n: int, seed: int = 0, n_prototypes: int = 10
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` labelled inputs: spectrogram-shaped ([C, F, T]) ones drawn around ``n_prototypes``
    smooth spectral envelopes with slow level changes and noise, waveforms ([samples]) as a few
    prototype tones in noise; the label is the prototype. Normalised to zero mean, unit variance.
    """
    g = torch.Generator().manual_seed(seed)
    shape = tuple(int(s) for s in shape)
    labels = torch.randint(0, n_prototypes, (n,), generator=g)
    if len(shape) == 3:
        c, f, t = shape
        envelopes = torch.randn(n_prototypes, c, f, 1, generator=g).cumsum(2) / math.sqrt(f) * 4
        level = torch.randn(n, 1, 1, t, generator=g).cumsum(-1) / math.sqrt(t)
        x = envelopes[labels] + level + 0.5 * torch.randn(n, c, f, t, generator=g)
    elif len(shape) == 1:
        (samples,) = shape
        freqs = torch.rand(n_prototypes, 3, 1, generator=g) * 0.2 + 0.005
        phase = torch.rand(n, 3, 1, generator=g) * 2 * math.pi
        steps = torch.arange(samples, dtype=torch.float32)
        x = torch.sin(2 * math.pi * freqs[labels] * steps + phase).sum(1) + 0.3 * torch.randn(n, samples, generator=g)
    else:
        x = torch.randn(n, *shape, generator=g)
    return ((x - x.mean()) / x.std()).float(), labels


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"
