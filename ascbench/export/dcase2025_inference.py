"""DCASE 2025 Task 1 inference module (the official package API), shipped verbatim by ascbench.

``ascbench.export.dcase2025.write_inference_package`` copies this file, unchanged, into every
package it writes as ``<Lastname>_<INST>_task1/<Lastname>_<INST>_task1_<n>.py``. It depends on
torch and torchaudio only -- never on ascbench or on the code of the system that was trained --
because the organizers install the package in an environment that has nothing else. The module
finds its data from its own file name: ``..._task1_<n>.py`` reads ``submission_<n>/`` beside it.

What ``submission_<n>/`` holds, and why:

- ``config.json``: class names, the frontend's sample rate, the clip length the programs take,
  and which model file serves which device id.
- ``frontend.pt2``: a ``torch.export`` program, waveform at the frontend's rate [batch, samples]
  -> model input [batch, ...] (e.g. a log-mel spectrogram with its channel axis).
- ``general.pt2``, ``a.pt2``, ``s1.pt2``, ...: one program per model, model input -> logits
  [batch, n_classes]. Saved programs run without the Python source of the network.
- ``complexity.json``, ``test_accuracy.json``, ``provenance.json``, ``README.md``.

Audio is decoded here, not with ``torchaudio.load``: from torchaudio 2.9 on that function needs
torchcodec, which is not a dependency of the package. :func:`read_wav` reads RIFF/WAVE files
(PCM 8/16/24/32-bit, IEEE float 32/64-bit, also in WAVE_FORMAT_EXTENSIBLE headers) and converts
samples to float32 exactly as libsndfile's ``sf_read_float`` does (integer / 2^(bits-1)), which
is what the models were trained on. Resampling to the frontend's rate uses torchaudio's
``Resample`` with its default kernel, as in training.

Device ids: a clip whose id has a model of its own (``a``, ``b``, ``c``, ``s1``, ``s2``, ``s3``:
the training devices) goes through that model; any other id (``s4`` ... ``s10``, or an id never
seen) goes through the general model. Ids are compared after ``strip().lower()``.

Parameter dtypes: with float16 weights the programs hold their parameters (and float buffers) as
float16 and cast them to float32 right before use, so ``numel x 2`` bytes is both what is stored
and what ``sum(p.numel() * p.element_size())`` reports, while the arithmetic is float32 on every
device. :func:`get_model_for_device` returns a module whose convolutions, linear layers and batch
norms are real submodules (``Conv``, ``Linear``, ``BatchNorm``) holding their weights, so that
torchinfo (the organizers' MAC counter, which hooks submodules) counts them; an exported program
as loaded would count as one opaque module with 0 MACs.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import types
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FORMAT = "ascbench.dcase2025/1"
"""The ``format`` field of ``config.json`` this module reads."""

_HERE = Path(__file__).resolve().parent
_INDEX = Path(__file__).stem.rsplit("_", 1)[-1]
DATA_DIR = _HERE / f"submission_{_INDEX}"
"""This submission's packaged data: config.json and the .pt2 programs."""

_WAVE_PCM = 0x0001
_WAVE_FLOAT = 0x0003
_WAVE_EXTENSIBLE = 0xFFFE


class AudioFileError(ValueError):
    """A file that cannot be used as a clip (not a WAV this module decodes, not mono, empty,
    or of another length than the models take); the message names the file."""


# --- audio ------------------------------------------------------------------------------------


def read_wav(path: str | os.PathLike[str]) -> tuple[Tensor, int]:
    """Decode a mono RIFF/WAVE file to a float32 waveform [samples] and its sample rate.

    Integer PCM becomes ``value / 2^(bits-1)`` (8-bit: ``(value - 128) / 128``), as libsndfile
    converts to float; float files are read as stored (float64 rounded to float32).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such audio file")
    with open(path, "rb") as handle:
        blob = handle.read()
    if len(blob) < 12 or blob[:4] != b"RIFF" or blob[8:12] != b"WAVE":
        raise AudioFileError(f"{path}: not a RIFF/WAVE file (this package reads .wav files only)")
    fmt: tuple[int, int, int, int] | None = None  # format tag, channels, rate, bits per sample
    data: bytes | None = None
    offset = 12
    while offset + 8 <= len(blob):
        chunk_id, size = blob[offset : offset + 4], struct.unpack_from("<I", blob, offset + 4)[0]
        body = blob[offset + 8 : offset + 8 + size]  # a streamed file may declare more than it holds
        if chunk_id == b"fmt ":
            if len(body) < 16:
                raise AudioFileError(f"{path}: truncated fmt chunk")
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", body)
            if tag == _WAVE_EXTENSIBLE:
                if len(body) < 26:
                    raise AudioFileError(f"{path}: truncated WAVE_FORMAT_EXTENSIBLE header")
                tag = struct.unpack_from("<H", body, 24)[0]  # the sub-format GUID starts with the tag
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            data = body
            if fmt is not None:
                break
        offset += 8 + size + (size & 1)  # chunks are padded to an even size
    if fmt is None or data is None:
        raise AudioFileError(f"{path}: no {'fmt' if fmt is None else 'data'} chunk")
    tag, channels, rate, bits = fmt
    if channels != 1:
        raise AudioFileError(f"{path}: {channels} channels; expected a mono clip")
    if rate <= 0:
        raise AudioFileError(f"{path}: sample rate {rate}")
    wave = _decode(path, data, tag, bits)
    if wave.numel() == 0:
        raise AudioFileError(f"{path}: holds no samples")
    return wave, rate


def _decode(path: str, data: bytes, tag: int, bits: int) -> Tensor:
    width = bits // 8
    if bits % 8 or width == 0:
        raise AudioFileError(f"{path}: {bits}-bit samples are not supported")
    data = data[: len(data) - len(data) % width]
    if sys.byteorder != "little" and width > 1:
        raise AudioFileError(f"{path}: decoding WAV needs a little-endian machine")
    raw = torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.zeros(0, dtype=torch.uint8)
    if tag == _WAVE_FLOAT and bits in (32, 64):
        return raw.view(torch.float32 if bits == 32 else torch.float64).to(torch.float32)
    if tag != _WAVE_PCM or bits not in (8, 16, 24, 32):
        kind = {_WAVE_PCM: "PCM", _WAVE_FLOAT: "IEEE float"}.get(tag, f"format tag 0x{tag:04x}")
        raise AudioFileError(f"{path}: {kind} with {bits}-bit samples is not supported (PCM 8/16/24/32-bit or float 32/64-bit)")
    if bits == 8:
        return (raw.to(torch.int32) - 128).to(torch.float32) / 128.0
    if bits == 16:
        return raw.view(torch.int16).to(torch.float32) / 32768.0
    if bits == 32:
        return raw.view(torch.int32).to(torch.float32) / 2147483648.0  # int -> float rounds, as in C
    triples = raw.view(-1, 3).to(torch.int32)
    value = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
    value = value - ((value & 0x800000) << 1)  # sign-extend 24 -> 32 bits
    return value.to(torch.float32) / 8388608.0


_RESAMPLERS: dict[tuple[int, int, str], nn.Module] = {}


def resample(waveform: Tensor, orig: int, new: int) -> Tensor:
    """torchaudio's band-limited sinc resampling with its default kernel (as in training)."""
    if orig == new:
        return waveform
    key = (orig, new, str(waveform.device))
    if key not in _RESAMPLERS:
        import torchaudio  # imported here: reading and running the models do not need it

        _RESAMPLERS[key] = torchaudio.transforms.Resample(orig_freq=orig, new_freq=new).to(waveform.device)
    return _RESAMPLERS[key](waveform)


# --- models -----------------------------------------------------------------------------------


class Submission(nn.Module):
    """All models of one submission: the frontend, the general model and one per training device.

    ``forward(features, device_ids)`` runs each clip through its device's model; ``class_names``
    is the order of the logits.
    """

    def __init__(self, frontend: nn.Module, general: nn.Module, devices: dict[str, nn.Module], config: dict[str, Any]) -> None:
        super().__init__()
        self.frontend = frontend
        self.general = general
        self.devices = nn.ModuleDict(devices)
        self.config = config
        self.class_names: list[str] = list(config["class_names"])
        self.sample_rate: int = int(config["sample_rate"])
        self.clip_samples: int = int(config["clip_samples"])

    @property
    def device(self) -> torch.device:
        tensors = [*self.general.parameters(), *self.general.buffers()]
        return tensors[0].device if tensors else torch.device("cpu")

    def model_for(self, device_id: str) -> nn.Module:
        key = _device_key(device_id)
        return self.devices[key] if key in self.devices else self.general

    def forward(self, features: Tensor, device_ids: Sequence[str]) -> Tensor:
        if len(device_ids) != len(features):
            raise ValueError(f"{len(features)} inputs but {len(device_ids)} device ids")
        keys = [_device_key(d) for d in device_ids]
        out: Tensor | None = None
        for key in dict.fromkeys(keys):
            rows = [i for i, k in enumerate(keys) if k == key]
            logits = self.model_for(key)(features[rows])
            if out is None:
                out = logits.new_empty((len(features), logits.shape[1]))
            out[rows] = logits
        assert out is not None, "an empty batch has no logits"
        return out


def _device_key(device_id: str) -> str:
    if not isinstance(device_id, str):
        raise TypeError(f"device id {device_id!r}: expected a string such as 'a' or 's4'")
    return device_id.strip().lower()


def load_model(model_file_path: str | None = None, *, device: str | torch.device = "cpu") -> Submission:
    """The packaged models (``model_file_path`` None), or those of another folder written the
    same way (``model_file_path``: that folder, or its ``config.json``), on ``device``."""
    folder = DATA_DIR if model_file_path is None else Path(model_file_path)
    if folder.is_file() and folder.name == "config.json":
        folder = folder.parent
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{config_file}: no such file (model_file_path must name a submission folder or its config.json)")
    config = json.loads(config_file.read_text(encoding="utf-8"))
    if config.get("format") != FORMAT:
        raise ValueError(f"{config_file}: format {config.get('format')!r}; this module reads {FORMAT!r}")
    device = torch.device(device)
    models = {name: _load_program(folder / file, device) for name, file in config["models"].items()}
    frontend = _load_program(folder / config["frontend"]["file"], device, as_layers=False)
    general = models.pop("general")
    return Submission(frontend, general, models, config).eval()


def _load_program(path: Path, device: torch.device, as_layers: bool = True) -> nn.Module:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file missing from the package")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given buffer is not writable")
        try:
            program = torch.export.load(str(path))
        except Exception as exc:  # an older torch cannot read a newer program: say which torch wrote it
            raise RuntimeError(
                f"{path}: torch {torch.__version__} cannot load this program ({type(exc).__name__}: {exc}); "
                f"it was written with torch {_config_torch(path)}"
            ) from exc
    if device.type != "cpu":
        from torch.export.passes import move_to_device_pass

        program = move_to_device_pass(program, device)
    module = _inference_only(program.module())
    return _as_layers(module) if as_layers else module


def _inference_only(module: nn.Module) -> nn.Module:
    """Let ``eval()`` work on a loaded program (torch makes it raise); ``train()`` still raises.

    A program is captured in inference mode -- batch norm uses its running statistics whatever
    the module's flag says -- so ``eval()`` only sets the flag, and callers that put every model
    in eval mode (most evaluation scripts) keep working.
    """

    def train(self: nn.Module, mode: bool = True) -> nn.Module:
        if mode:
            raise RuntimeError("this model is an exported inference program: it cannot be put in training mode")
        return nn.Module.train(self, False)

    module.train = types.MethodType(train, module)  # type: ignore[method-assign]
    module.__dict__.pop("eval", None)  # nn.Module.eval calls self.train(False)
    return module


def _config_torch(path: Path) -> str:
    try:
        return json.loads((path.parent / "config.json").read_text(encoding="utf-8"))["torch_version"]
    except (OSError, KeyError, ValueError):
        return "(unknown)"


# --- layers for MAC counters ------------------------------------------------------------------


class Conv(nn.Module):
    """A convolution of the program as a submodule of its own. Its weights keep their stored
    dtype and are cast to the input's dtype on use, exactly as the program's graph did."""

    def __init__(self, fn: Callable[..., Tensor], weight: Tensor, bias: Tensor | None, stride: Any, padding: Any, dilation: Any, groups: int) -> None:
        super().__init__()
        self.fn = fn
        _register(self, "weight", weight)
        _register(self, "bias", bias)
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x, _cast(self.weight, x), _cast(self.bias, x), self.stride, self.padding, self.dilation, self.groups)


class Linear(nn.Module):
    """A linear layer of the program (see :class:`Conv`)."""

    def __init__(self, weight: Tensor, bias: Tensor | None) -> None:
        super().__init__()
        _register(self, "weight", weight)
        _register(self, "bias", bias)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, _cast(self.weight, x), _cast(self.bias, x))


class BatchNorm(nn.Module):
    """An inference-mode batch norm of the program (see :class:`Conv`)."""

    def __init__(self, weight: Tensor | None, bias: Tensor | None, running_mean: Tensor | None, running_var: Tensor | None, eps: float) -> None:
        super().__init__()
        _register(self, "weight", weight)
        _register(self, "bias", bias)
        _register(self, "running_mean", running_mean)
        _register(self, "running_var", running_var)
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return F.batch_norm(
            x, _cast(self.running_mean, x), _cast(self.running_var, x), _cast(self.weight, x), _cast(self.bias, x), False, 0.0, self.eps
        )


def _register(module: nn.Module, name: str, tensor: Tensor | None) -> None:
    if isinstance(tensor, nn.Parameter):
        module.register_parameter(name, tensor)
    else:
        module.register_buffer(name, tensor)


def _cast(tensor: Tensor | None, like: Tensor) -> Tensor | None:
    return None if tensor is None else tensor.to(like.dtype)


_aten = torch.ops.aten
_CONVS = {
    _aten.conv1d.default: F.conv1d,
    _aten.conv2d.default: F.conv2d,
    _aten.conv1d.padding: F.conv1d,
    _aten.conv2d.padding: F.conv2d,
}
_CASTS = (_aten.to.dtype, _aten._to_copy.default)


def _as_layers(graph_module: nn.Module) -> nn.Module:
    """Move every conv / linear / inference batch-norm call of a loaded program into a submodule
    holding its tensors; the arithmetic is unchanged. A call whose tensors are not plain stored
    tensors (optionally cast to float32) stays a call."""
    if not isinstance(graph_module, torch.fx.GraphModule):
        return graph_module
    graph = graph_module.graph
    names: set[str] = set()
    changed = False
    for node in list(graph.nodes):
        if node.op != "call_function":
            continue
        layer = _layer_for(graph_module, node)
        if layer is None:
            continue
        name = _unique_name(_layer_name(node), names, graph_module)
        graph_module.add_submodule(name, layer)
        with graph.inserting_before(node):
            call = graph.call_module(name, (node.args[0],))
        call.meta.update(node.meta)
        node.replace_all_uses_with(call)
        inputs = list(node.all_input_nodes)
        graph.erase_node(node)
        _drop_unused(graph_module, inputs)
        changed = True
    if changed:
        graph_module.delete_all_unused_submodules()
        graph.lint()
        graph_module.recompile()
    return graph_module


def _arguments(node: torch.fx.Node) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for i, argument in enumerate(node.target._schema.arguments):
        if i < len(node.args):
            values[argument.name] = node.args[i]
        elif argument.name in node.kwargs:
            values[argument.name] = node.kwargs[argument.name]
        elif argument.has_default_value():
            values[argument.name] = argument.default_value
        else:
            values[argument.name] = None
    return values


def _source(node: Any) -> str | None:
    """The attribute a stored tensor comes from: ``get_attr``, or a float32 cast of one."""
    if not isinstance(node, torch.fx.Node):
        return None
    if node.op == "get_attr":
        return node.target
    if node.op == "call_function" and node.target in _CASTS and node.args and isinstance(node.args[0], torch.fx.Node):
        dtype = node.args[1] if node.target is _aten.to.dtype and len(node.args) > 1 else node.kwargs.get("dtype")
        if node.args[0].op == "get_attr" and dtype == torch.float32:
            return node.args[0].target
    return None


def _tensor(graph_module: nn.Module, node: Any) -> Tensor | None:
    target = _source(node)
    return None if target is None else _fetch(graph_module, target)


def _fetch(graph_module: nn.Module, target: str) -> Tensor:
    owner, _, leaf = target.rpartition(".")
    return getattr(graph_module.get_submodule(owner) if owner else graph_module, leaf)


def _layer_for(graph_module: nn.Module, node: torch.fx.Node) -> nn.Module | None:
    target = node.target
    if target not in _CONVS and target not in (_aten.linear.default, _aten.batch_norm.default):
        return None
    args = _arguments(node)
    names = ["weight", "bias"] + (["running_mean", "running_var"] if target is _aten.batch_norm.default else [])
    tensors: dict[str, Tensor | None] = {}
    for name in names:
        value = args.get(name)
        tensors[name] = None if value is None else _tensor(graph_module, value)
        if value is not None and tensors[name] is None:
            return None  # computed, not stored: leave the call as it is
    if target in _CONVS:
        if tensors["weight"] is None:
            return None
        return Conv(_CONVS[target], tensors["weight"], tensors["bias"], args["stride"], args["padding"], args["dilation"], args["groups"])
    if target is _aten.linear.default:
        return None if tensors["weight"] is None else Linear(tensors["weight"], tensors["bias"])
    if args.get("training") or tensors["running_mean"] is None or tensors["running_var"] is None:
        return None
    return BatchNorm(tensors["weight"], tensors["bias"], tensors["running_mean"], tensors["running_var"], float(args["eps"]))


def _layer_name(node: torch.fx.Node) -> str:
    args = _arguments(node)
    target = _source(args.get("weight")) or _source(args.get("running_mean")) or node.name
    owner = target.rpartition(".")[0] or node.name
    return owner.replace(".", "_")


def _unique_name(name: str, used: set[str], graph_module: nn.Module) -> str:
    """``name``, or ``name_2``, ... -- never an attribute the program already has (a layer
    ``head`` must not replace the container ``head`` that holds its weights until they move)."""
    candidate, k = name, 1
    while candidate in used or hasattr(graph_module, candidate):
        k += 1
        candidate = f"{name}_{k}"
    used.add(candidate)
    return candidate


def _drop_unused(graph_module: torch.fx.GraphModule, nodes: list[torch.fx.Node]) -> None:
    """Erase casts and ``get_attr`` nodes nothing reads any more (and the attributes they named)."""
    graph = graph_module.graph
    pending = list(nodes)
    while pending:
        node = pending.pop()
        if node.users or node.graph is not graph:
            continue
        if node.op == "call_function" and node.target in _CASTS:
            pending.extend(node.all_input_nodes)
            graph.erase_node(node)
        elif node.op == "get_attr":
            target = node.target
            graph.erase_node(node)
            if not any(n.op == "get_attr" and n.target == target for n in graph.nodes):
                owner, _, leaf = target.rpartition(".")
                delattr(graph_module.get_submodule(owner) if owner else graph_module, leaf)


# --- the official API -------------------------------------------------------------------------


def load_inputs(file_paths: Sequence[str], device_ids: Sequence[str], model: Submission, batch_size: int = 64) -> list[Tensor]:
    """One model input per file, [1, ...] (e.g. [1, 1, 256, 65] for a 1-s clip and the baseline
    log-mel): the file decoded, resampled to the frontend's rate, through the frontend program."""
    _check_pairs(file_paths, device_ids)
    waves: list[Tensor] = []
    for path in file_paths:
        wave, rate = read_wav(path)
        wave = resample(wave.to(model.device)[None], rate, model.sample_rate)[0]
        if wave.shape[0] != model.clip_samples:
            raise AudioFileError(
                f"{path}: {wave.shape[0] / model.sample_rate:.4g} s ({wave.shape[0]} samples at {model.sample_rate} Hz "
                f"after resampling); the models of this package take {model.clip_samples / model.sample_rate:.4g}-s clips "
                f"({model.clip_samples} samples)"
            )
        waves.append(wave)
    inputs: list[Tensor] = []
    step = max(1, batch_size)
    with torch.no_grad():
        for start in range(0, len(waves), step):
            features = model.frontend(torch.stack(waves[start : start + step]))
            inputs.extend(f[None].cpu() for f in features)
    return inputs


def get_model_for_device(model: Submission, device_id: str) -> nn.Module:
    """The model of ``device_id``'s own, or the general model for a device without one."""
    return model.model_for(device_id)


def predict(
    file_paths: Sequence[str],
    device_ids: Sequence[str],
    model_file_path: str | None = None,
    use_cuda: bool = True,
    batch_size: int = 64,
) -> tuple[list[Tensor], list[str]]:
    """Logits [n_classes] of every file, in input order, and the class names in logit order.

    Files are read ``batch_size`` at a time (every path is checked to exist first, so a typo
    fails at once); each clip goes through the model of its device id.
    """
    _check_pairs(file_paths, device_ids)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    missing = [p for p in file_paths if not os.path.isfile(p)]
    if missing:
        more = f" (and {len(missing) - 1} more missing)" if len(missing) > 1 else ""
        raise FileNotFoundError(f"{missing[0]}: no such audio file{more}")
    device = torch.device("cuda" if use_cuda and torch.cuda.is_available() else "cpu")
    model = load_model(model_file_path, device=device)
    outputs: list[Tensor] = []
    with torch.no_grad():
        for start in range(0, len(file_paths), batch_size):
            paths, ids = file_paths[start : start + batch_size], device_ids[start : start + batch_size]
            features = torch.cat(load_inputs(paths, ids, model, batch_size)).to(device)
            outputs.extend(model(features, ids).float().cpu())
    return outputs, list(model.class_names)


def _check_pairs(file_paths: Sequence[str], device_ids: Sequence[str]) -> None:
    if isinstance(file_paths, (str, bytes)) or isinstance(device_ids, (str, bytes)):
        raise TypeError("file_paths and device_ids must be lists (one entry per clip), not a single string")
    if len(file_paths) != len(device_ids):
        raise ValueError(f"{len(file_paths)} file paths but {len(device_ids)} device ids: give one device id per file")
