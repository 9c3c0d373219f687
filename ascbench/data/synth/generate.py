"""Write a synthetic data set to disk: plan, csv files, audio (in worker processes), synth_info.json.

The directory is built next to its destination and renamed into place only when complete, so
an interrupted run (Ctrl-C, a crash) never leaves a half-written data set where a benchmark
would pick it up. Every recording is rendered from its own random stream, so the bytes do not
depend on the number of workers or the order in which they finish.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ascbench.data.layout import (
    CLIP_SAMPLES,
    DEVICES,
    META_FILE,
    META_HEADER,
    SAMPLE_RATE,
    SPLIT_DIR,
    SPLIT_HEADER,
    TEST_FILE,
)
from ascbench.data.reader import SYNTH_INFO_FILE
from ascbench.data.synth.config import SynthConfig
from ascbench.data.synth.devices import capture, device_channels
from ascbench.data.synth.plan import CAPTURE_STREAM, Plan, Recording, make_plan
from ascbench.data.synth.scenes import MARGIN, render_scene
from ascbench.paths import datasets_dir

SUBTYPE = "PCM_24"
"""As the real TAU22 wavs."""
RECORDINGS_PER_TASK = 4


def default_synth_dir(size: str, seed: int, home: Path | str | None = None) -> Path:
    """``<home>/datasets/synth-tau22-<size>-seed<seed>``: where the CLI and :func:`ensure_synth` keep a set."""
    return datasets_dir(home) / f"synth-tau22-{size}-seed{seed}"


def is_complete(root: Path, config: SynthConfig) -> bool:
    """True if ``root`` holds a finished data set generated from ``config`` by this generator version.

    synth_info.json is written last inside the temporary directory, and the directory only
    appears under its final name when complete, so its presence and content are the test.
    """
    try:
        info = json.loads((Path(root) / SYNTH_INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return info == config.info() and (Path(root) / META_FILE).is_file()


def ensure_synth(
    size: str = "small", seed: int = 0, home: Path | str | None = None, progress: bool = True, log: Callable[[str], None] | None = None
) -> Path:
    """The synthetic data set ``size``/``seed`` under ``home``, generated first if missing or
    outdated (said through ``log``: the progress bar alone vanishes when it ends)."""
    config = SynthConfig.preset(size, seed)
    root = default_synth_dir(size, seed, home)
    if is_complete(root, config):
        return root
    if log is not None:
        log(f"generating synth-tau22-{size} (seed {seed}) in {root}: first use, once per home")
    return generate(config, root, progress=progress)


def generate(config: SynthConfig, out: Path | str, progress: bool = True) -> Path:
    """Write the data set described by ``config`` to ``out`` and return its resolved path.

    An existing ``out`` is replaced only if it is a synthetic data set (it has synth_info.json)
    or empty; anything else is refused rather than deleted.
    """
    out = Path(out).expanduser().resolve()
    if out.exists() and not (out / SYNTH_INFO_FILE).is_file() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not a synthetic data set (no {SYNTH_INFO_FILE}); refusing to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(out)
    building = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    try:
        plan = make_plan(config)
        (building / "audio").mkdir(parents=True)
        _write_tables(building, plan)
        _write_audio(building, config, plan, progress)
        (building / SYNTH_INFO_FILE).write_text(json.dumps(config.info(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        _publish(building, out)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return out


def _write_tables(root: Path, plan: Plan) -> None:
    clips = plan.clips()
    scene_of = {c.filename: c.scene for c in clips}
    _write_tsv(root / META_FILE, META_HEADER, [(c.filename, c.scene, c.identifier, c.device) for c in clips])
    for name, files in (*plan.splits.items(), (TEST_FILE, plan.test)):
        _write_tsv(root / SPLIT_DIR / name, SPLIT_HEADER, [(f, scene_of[f]) for f in files])


def _write_tsv(path: Path, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join("\t".join(row) + "\n" for row in (header, *rows)), encoding="utf-8")


def render_recording(config: SynthConfig, recording: Recording, root: str) -> int:
    """Render one recording, capture it with each of its devices, write its clips; returns the clip count."""
    scene = render_scene(recording, config.seed)
    devices = device_channels(config.seed)
    first = recording.span[0]
    margin = int(MARGIN * SAMPLE_RATE)
    written = 0
    for device, segments in recording.captures:
        rng = np.random.default_rng([config.seed, CAPTURE_STREAM, recording.index, DEVICES.index(device)])
        lo = (segments[0] - first) * CLIP_SAMPLES
        hi = (segments[-1] + 1 - first) * CLIP_SAMPLES + 2 * margin
        audio = capture(devices[device], scene[lo:hi], rng)[margin:-margin]
        for k, clip in enumerate(c for c in recording.clips() if c.device == device):
            write_wav(os.path.join(root, clip.filename), audio[k * CLIP_SAMPLES : (k + 1) * CLIP_SAMPLES])
            written += 1
    return written


def write_wav(path: str, samples: np.ndarray) -> None:
    """A 24-bit PCM wav, encoded in memory: writing straight to a file makes libsndfile fsync
    every clip on close, which costs more than rendering the clip."""
    buffer = io.BytesIO()
    sf.write(buffer, samples, SAMPLE_RATE, subtype=SUBTYPE, format="WAV")
    with open(path, "wb") as handle:
        handle.write(buffer.getbuffer())


def _render_many(config: SynthConfig, recordings: list[Recording], root: str) -> int:
    return sum(render_recording(config, r, root) for r in recordings)


def _write_audio(root: Path, config: SynthConfig, plan: Plan, progress: bool) -> None:
    recordings = list(plan.recordings)
    tasks = [recordings[i : i + RECORDINGS_PER_TASK] for i in range(0, len(recordings), RECORDINGS_PER_TASK)]
    total = sum(len(r.clips()) for r in recordings)
    with _progress(progress) as bar, _executor(config.workers) as pool:
        task = bar.add_task(f"synth-tau22-{config.size}: writing clips", total=total)
        with _workers_ignore_sigint():  # the pool starts its processes on these submits
            futures = [pool.submit(_render_many, config, chunk, str(root)) for chunk in tasks]
        try:
            for future in futures:
                bar.advance(task, future.result())
        except BaseException:  # Ctrl-C: what has not started never will; the running tasks end in
            pool.shutdown(wait=True, cancel_futures=True)  # seconds, before the partial folder is removed
            raise


class _InProcess(Executor):
    """An executor that runs each task when submitted: ``workers=1`` without a process pool."""

    def submit(self, fn, /, *args, **kwargs):
        from concurrent.futures import Future

        future: Future = Future()
        future.set_result(fn(*args, **kwargs))
        return future


def _executor(workers: int) -> Executor:
    if workers <= 1:
        return _InProcess()
    # spawn: a forked child of a process with torch/OpenMP threads running can deadlock.
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=_exit_with_parent, initargs=(os.getpid(),)
    )


PR_SET_PDEATHSIG = 1
"""``prctl`` option (linux/prctl.h): the signal this process receives when its parent dies."""
PARENT_POLL_S = 1.0
"""How often a worker checks its parent where the kernel cannot tell it (not Linux)."""


def _exit_with_parent(parent: int) -> None:
    """Worker initializer: end this worker when the generating process dies.

    Why: a parent killed with SIGKILL cannot shut its pool down, and its workers would go on
    rendering into a folder nobody publishes, then wait forever for tasks. On Linux the kernel
    sends SIGTERM at the parent's death (``PR_SET_PDEATHSIG``; the default action ends the worker
    at once, and is unaffected by the ignored SIGINT). The parent may have died before the call,
    so the parent is checked right after it. The kernel ties the signal to the parent *thread*
    that started the worker: that is the thread that submits the tasks and waits for them, which
    outlives the pool. Elsewhere a daemon thread polls the parent's pid.
    """
    if sys.platform.startswith("linux") and _set_parent_death_signal(signal.SIGTERM):
        if os.getppid() != parent:
            os._exit(1)
        return
    threading.Thread(target=_watch_parent, args=(parent,), name="ascbench-parent-watch", daemon=True).start()


def _set_parent_death_signal(signum: int) -> bool:
    """``prctl(PR_SET_PDEATHSIG, signum)``; False when libc or the call is unavailable."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(1)


@contextmanager
def _workers_ignore_sigint() -> Iterator[None]:
    """Processes (and threads) started inside never receive Ctrl-C: SIGINT is *blocked* while
    they start, and a blocked signal stays blocked across fork and exec, so it stays pending in
    them unseen. The parent unblocks it on leaving, and a Ctrl-C that arrived meanwhile is then
    delivered to it.

    Why: the terminal sends Ctrl-C to the whole process group. A worker interrupted while it
    started or rendered could leave the pool waiting for it forever; now only the parent is
    interrupted, cancels the queued tasks and waits the seconds the running ones take. Ignoring
    SIGINT in the parent instead (as this did before) also lost a Ctrl-C pressed while the pool
    was starting, which under load lasts seconds: the generation then ran to its end. Outside the
    main thread the mask of the signal-handling thread cannot be set, and nothing changes."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=not enabled,
    )


def _publish(building: Path, out: Path) -> None:
    """Move the finished directory into place; an old data set there is swapped out, then deleted."""
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        out.rename(old)
    building.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def _remove_stale(out: Path) -> None:
    """Delete partial/old siblings left by a generator process that no longer runs (killed, not interrupted)."""
    for path in out.parent.glob(f".{out.name}.*-*"):
        pid = path.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
