"""Leaderboard figures (matplotlib, no pyplot state): accuracy vs MACs, per-device bars, confusions.

Figures are built with :class:`matplotlib.figure.Figure` directly, so nothing depends on a GUI
backend or on global pyplot state, and rendered to PNG without a timestamp so that re-exporting
unchanged records gives byte-identical files.
"""

from __future__ import annotations

import base64
import io
import math

import numpy as np
from matplotlib.figure import Figure

from ascbench.data.layout import DEVICES, SCENES, UNSEEN_DEVICES
from ascbench.leaderboard.build import DCASE_MAX_MACS, Leaderboard

PNG_METADATA = {"Software": None}


def pareto_front(macs: np.ndarray, accuracy: np.ndarray) -> np.ndarray:
    """Boolean mask of the systems no other system beats on both (fewer or equal MACs, higher
    or equal accuracy, one of them strictly)."""
    macs = np.asarray(macs, dtype=float)
    accuracy = np.asarray(accuracy, dtype=float)
    on_front = np.ones(len(macs), dtype=bool)
    for i in range(len(macs)):
        dominated = (macs <= macs[i]) & (accuracy >= accuracy[i]) & ((macs < macs[i]) | (accuracy > accuracy[i]))
        on_front[i] = not dominated.any()
    return on_front


def accuracy_vs_macs(board: Leaderboard) -> Figure:
    """Accuracy (mean ± std over seeds) against MACs on a log axis, the Pareto front and the
    DCASE 30 M MAC limit."""
    table = board.table.dropna(subset=["accuracy"])
    macs = table["macs"].to_numpy(dtype=float)
    acc = table["accuracy"].to_numpy(dtype=float) * 100
    std = table["accuracy_std"].astype(float).fillna(0.0).to_numpy() * 100
    fig = Figure(figsize=(10, 4.8), layout="constrained")
    ax = fig.add_subplot()
    ax.set_xscale("log")
    front = pareto_front(macs, acc)
    verdict = table["dcase_pass"]  # True, False, or None/NaN (unknown: an incomplete MAC count)
    colours = np.array(["0.6" if _unknown(v) else "tab:blue" if bool(v) else "tab:red" for v in verdict.astype(object)])
    ax.errorbar(macs, acc, yerr=std, fmt="none", ecolor="0.5", capsize=3, zorder=2)
    ax.scatter(macs, acc, c=colours, s=48, zorder=3, edgecolors="black", linewidths=0.5)
    order = np.argsort(macs[front])
    ax.step(macs[front][order], acc[front][order], where="post", color="tab:green", lw=1.5, label="Pareto front", zorder=1)
    # rank numbers beside the points (staggered so near neighbours stay legible), names in the legend
    offsets = [(6, 4), (6, -12), (-16, 4), (-16, -12)]
    for rank, ((system, row), x, y) in enumerate(zip(table.iterrows(), macs, acc), start=1):
        ax.annotate(str(rank), (x, y), xytext=offsets[(rank - 1) % len(offsets)], textcoords="offset points",
                    fontsize=8, fontweight="bold")  # fmt: skip
        label = f"{rank}  {system}" + (f" [{row['paper_label']}]" if row["paper_label"] else "")
        ax.plot([], [], ls="none", label=label)
    low = min(macs.min(initial=DCASE_MAX_MACS), DCASE_MAX_MACS) / 3
    high = max(macs.max(initial=DCASE_MAX_MACS), DCASE_MAX_MACS) * 3
    ax.set_xlim(low, high)
    ax.axvline(DCASE_MAX_MACS, color="tab:red", ls="--", lw=1, label="DCASE limit: 30 M MACs")
    ax.axvspan(DCASE_MAX_MACS, high, color="tab:red", alpha=0.06)
    if len(acc):
        span = max(acc.max() - acc.min(), 5.0)
        ax.set_ylim(acc.min() - std.max() - 0.25 * span, acc.max() + std.max() + 0.25 * span)
    ax.set_xlabel("MACs per 1-s clip (log scale)")
    ax.set_ylabel("Macro class-wise accuracy (%)")
    ax.set_title("Accuracy vs complexity (red: outside DCASE limits)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, handlelength=1, frameon=False)
    return fig


def _unknown(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def per_device_bars(board: Leaderboard) -> Figure:
    """Grouped bars: macro accuracy per device, one bar per system; unseen devices shaded."""
    frame = board.per_device()
    systems = list(frame.index)
    fig = Figure(figsize=(10, 4.6), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(DEVICES))
    width = 0.8 / max(1, len(systems))
    first_unseen = DEVICES.index(UNSEEN_DEVICES[0])
    ax.axvspan(first_unseen - 0.5, len(DEVICES) - 0.5, color="0.85", alpha=0.6, label="unseen devices (S4–S6)")
    for i, system in enumerate(systems):
        values = frame.loc[system].to_numpy(dtype=float) * 100
        positions = x - 0.4 + width * (i + 0.5)
        ax.bar(positions, values, width, label=str(system))  # a device without test clips has no bar, not a 0 % one
        for position in positions[np.isnan(values)]:
            ax.text(position, 1, "n/a", rotation=90, ha="center", va="bottom", fontsize=6, color="0.4")
    ax.set_xticks(x, DEVICES)
    ax.set_xlim(-0.5, len(DEVICES) - 0.5)
    ax.set_ylim(0, 100)
    ax.set_xlabel("Recording device")
    ax.set_ylabel("Macro class-wise accuracy (%)")
    ax.set_title("Accuracy per device (mean over seeds)", fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return fig


def confusion_grid(board: Leaderboard, columns: int = 3) -> Figure:
    """Row-normalised confusion matrix (recall, %) of each system, summed over its seeds."""
    systems = list(board.table.index)
    rows = math.ceil(len(systems) / columns)
    cols = min(columns, len(systems))
    fig = Figure(figsize=(4.3 * cols + 0.8, 4.2 * rows), layout="constrained")
    short = [s.replace("street_", "st_").replace("_station", "_st").replace("shopping_mall", "mall")
             .replace("public_square", "square") for s in SCENES]  # fmt: skip
    image = None
    for i, system in enumerate(systems):
        ax = fig.add_subplot(rows, cols, i + 1)
        counts = board.confusion(system).astype(float)
        totals = counts.sum(axis=1, keepdims=True)
        recall = np.divide(counts, totals, out=np.full_like(counts, np.nan), where=totals > 0) * 100
        image = ax.imshow(recall, cmap="Blues", vmin=0, vmax=100)
        for t in range(len(SCENES)):
            for p in range(len(SCENES)):
                if not np.isnan(recall[t, p]) and recall[t, p] >= 0.5:
                    ax.text(p, t, f"{recall[t, p]:.0f}", ha="center", va="center", fontsize=6,
                            color="white" if recall[t, p] > 60 else "black")  # fmt: skip
        ax.set_xticks(range(len(SCENES)), short, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(SCENES)), short, fontsize=7)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("true", fontsize=8)
        ax.set_title(f"{system} (n seeds = {len(board.records[system])})", fontsize=9)
    if image is not None:
        fig.colorbar(image, ax=fig.axes, shrink=0.6, label="% of true class")
    return fig


def png_base64(fig: Figure, dpi: int = 110) -> str:
    """The figure as a base64 PNG (for a data: URI), without timestamps or software tags."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata=PNG_METADATA)
    return base64.b64encode(buffer.getvalue()).decode("ascii")
