"""Leaderboard figures (matplotlib, no pyplot state): accuracy vs MACs, per-device heatmap, confusions.

Figures are built with :class:`matplotlib.figure.Figure` directly, so nothing depends on a GUI
backend or on global pyplot state, and rendered to PNG without a timestamp so that re-exporting
unchanged records gives byte-identical files.

A board can hold many rows of nearly one size (a split board has 17, most at one MAC count), so
the accuracy-vs-MACs figure names every point with a label that is placed, not merely offset:
labels stand in columns to the right of their points, never on top of another point or label,
with a leader line when a label had to move away from its dot; a crowded cluster under the MAC
limit gets a zoomed panel of its own. Each point's name is on the figure, so no colour has to
tell systems apart (a colour cycle repeats after ten).
"""

from __future__ import annotations

import base64
import dataclasses
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.text import Annotation
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from ascbench.data.layout import DEVICES, SCENES, UNSEEN_DEVICES
from ascbench.leaderboard.build import DCASE_MAX_MACS, Leaderboard
from ascbench.recipes.options import ABLATION_SEPARATOR, SOURCE_SEPARATOR

PNG_METADATA = {"Software": None}
DPI = 110
"""Every figure is drawn and saved at this resolution, so label placement measured in pixels
while drawing holds in the PNG."""

ROW_KINDS: dict[str, str] = {
    "system": "Systems",
    "ablation": f"Ablations (SYSTEM{ABLATION_SEPARATOR}COMPONENT: the system with components switched off)",
    "variant": f"Variants and controls (SYSTEM{SOURCE_SEPARATOR}…: another teacher source, pool KD, "
    "an epoch-matched control)",
}
"""The parts of a board, in the order they are shown, and their headings."""

SECTION_NAMES = {"system": "systems", "ablation": "ablations", "variant": "variants"}
MARKERS = {"system": "o", "ablation": "^", "variant": "s"}
MARKER_NAMES = {"system": "system", "ablation": f"ablation ({ABLATION_SEPARATOR}…)", "variant": f"variant or control ({SOURCE_SEPARATOR}…)"}
VERDICT_COLOURS = {"pass": "tab:blue", "fail": "tab:red", "unknown": "0.6"}
VERDICT_NAMES = {
    "pass": "meets the DCASE rules",
    "fail": "fails a DCASE rule: memory, MACs or training data\n(red left of the MAC line: trained on audio outside the split)",
    "unknown": "unknown: uncounted operators, MACs a lower bound",
}
LABEL_FONTSIZE = 8
LABEL_PAD_PX = 7.0
"""Gap between the rightmost dot of a label column and its labels."""
LABEL_GAP_PX = 4.0
"""Vertical gap between two stacked labels (more than their white boxes' padding)."""
DOT_SIZE = 42.0


def row_kind(system: str) -> str:
    """``"system"``, ``"ablation"`` or ``"variant"``, read from a board row's name.

    Why: the split board mixes the registered systems with their ablations (``SYSTEM~no-…``) and
    with variants and controls (``SYSTEM@…``: other teachers, pool KD, epoch-matched runs), and a
    reader comparing systems should not have to pick them out of 17 rows. An ablation of a
    variant is an ablation. A ``#label`` suffix (records of one name made by different code) is
    ignored."""
    base = system.split("#", 1)[0]
    if ABLATION_SEPARATOR in base:
        return "ablation"
    if SOURCE_SEPARATOR in base:
        return "variant"
    return "system"


def section_order(systems: Sequence[str]) -> list[str]:
    """``systems`` (best first) regrouped into systems, ablations, variants, each still best first:
    the order of the HTML table's sections and of the per-system figures."""
    return [s for kind in ROW_KINDS for s in systems if row_kind(s) == kind]


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


def _new_figure(width: float, height: float, layout: str | None = "constrained") -> Figure:
    """A figure with an Agg canvas attached, so text can be measured before it is saved."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _verdict(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "unknown"
    return "pass" if bool(value) else "fail"


@dataclass(frozen=True)
class _Point:
    system: str
    label: str
    macs: float
    accuracy: float
    std: float
    verdict: str
    kind: str


def _points(board: Leaderboard) -> list[_Point]:
    ranks = {str(s): i for i, s in enumerate(board.table.index, start=1)}
    table = board.table.dropna(subset=["accuracy", "macs"])
    points = []
    for system, row in table.iterrows():
        std = row["accuracy_std"]
        label = f"{ranks[str(system)]} {system}" + (f" [{row['paper_label']}]" if row["paper_label"] else "")
        points.append(_Point(str(system), label, max(float(row["macs"]), 1.0), float(row["accuracy"]) * 100,
                             0.0 if std is None or math.isnan(float(std)) else float(std) * 100,
                             _verdict(row["dcase_pass"]), row_kind(str(system))))  # fmt: skip
    return points


def _log_range(values: Sequence[float], pad: float = 1.25) -> tuple[float, float]:
    return min(values) / pad, max(values) * pad


def _accuracy_range(points: Sequence[_Point]) -> tuple[float, float]:
    low = min(p.accuracy - p.std for p in points)
    high = max(p.accuracy + p.std for p in points)
    margin = max(0.08 * (high - low), 0.5)
    return low - margin, high + margin


def _zoomed(points: Sequence[_Point]) -> list[bool]:
    """Which points get a zoomed panel: those under the MAC limit when at least three of their
    dots would touch another one in the overview (measured in axis fractions) and at least one
    point lies outside the cluster (otherwise the overview is the zoom)."""
    under = [p.macs <= DCASE_MAX_MACS for p in points]
    if all(under) or sum(under) < 3:
        return [False] * len(points)
    lo, hi = _overview_xlim(points)
    y_lo, y_hi = _accuracy_range(points)
    x = [(math.log(p.macs) - math.log(lo)) / (math.log(hi) - math.log(lo)) for p in points]
    y = [(p.accuracy - y_lo) / (y_hi - y_lo) for p in points]
    crowded = sum(
        any(j != i and under[j] and abs(x[i] - x[j]) < 0.03 and abs(y[i] - y[j]) < 0.04 for j in range(len(points)))
        for i in range(len(points)) if under[i]
    )  # fmt: skip
    return under if crowded >= 3 else [False] * len(points)


def _overview_xlim(points: Sequence[_Point]) -> tuple[float, float]:
    """The data's MAC range, widened to the DCASE limit when the limit is near it (within a factor
    of 4): the limit is the figure's reference line, but a board of 1 M MAC models should not be
    squeezed against the left edge to show it."""
    lo, hi = _log_range([p.macs for p in points])
    if lo / 4 <= DCASE_MAX_MACS <= hi * 4:
        lo, hi = min(lo, DCASE_MAX_MACS / 1.25), max(hi, DCASE_MAX_MACS * 1.25)
    return lo, hi


def _mega(value: float, _position: object = None) -> str:
    return f"{value / 1e6:g} M" if value >= 1e5 else f"{value / 1e3:g} k"


def _mac_ticks(ax: Axes) -> None:
    """Ticks in M MACs at 1-2-5 steps on a log axis (the default labels 10^7, 10^8 would leave
    a two-decade axis with one or two labels), plain M MACs on a linear one."""
    if ax.get_xscale() == "log":
        lo, hi = ax.get_xlim()
        ticks = [m * 10.0**e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1) for m in (1, 2, 5)]
        ticks = [t for t in ticks if not DCASE_MAX_MACS / 1.4 < t < DCASE_MAX_MACS * 1.4] + [DCASE_MAX_MACS]  # the limit is a tick
        ax.xaxis.set_major_locator(FixedLocator(sorted(t for t in ticks if lo <= t <= hi)))
        ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(_mega))


def _draw_points(ax: Axes, points: Sequence[_Point], size: float = DOT_SIZE) -> None:
    if not points:
        return
    ax.errorbar([p.macs for p in points], [p.accuracy for p in points], yerr=[p.std for p in points],
                fmt="none", ecolor="0.55", elinewidth=0.8, capsize=2.5, zorder=2)  # fmt: skip
    for kind, marker in MARKERS.items():
        chosen = [p for p in points if p.kind == kind]
        if chosen:
            ax.scatter([p.macs for p in chosen], [p.accuracy for p in chosen], s=size, marker=marker,
                       c=[VERDICT_COLOURS[p.verdict] for p in chosen], edgecolors="black", linewidths=0.5, zorder=3)  # fmt: skip


def _draw_limit(ax: Axes, hi: float) -> None:
    ax.axvline(DCASE_MAX_MACS, color="tab:red", ls="--", lw=1, zorder=1)
    ax.axvspan(DCASE_MAX_MACS, hi, color="tab:red", alpha=0.06, zorder=0)


def accuracy_vs_macs(board: Leaderboard) -> Figure:
    """Accuracy (mean ± std over seeds) against MACs per clip, every point named.

    The overview has a log MAC axis fitted to the data (and the DCASE 30 M limit when it is
    near). When the points under the limit crowd one spot, as on a split board where most rows
    are one architecture, they get a zoomed panel of their own, on a linear axis when their MACs
    span less than a factor of 3. Colour is the DCASE verdict, the marker the kind of row; the
    Pareto front is drawn when it has two points or more (one point is no front, and the legend
    then does not list it)."""
    points = _points(board)
    zoom = _zoomed(points)
    detail_points = [p for p, z in zip(points, zoom) if z]
    overview_points = [p for p, z in zip(points, zoom) if not z]
    tallest = max(len(detail_points), len(overview_points), 1)
    height = max(5.0, 0.19 * tallest + 2.6)
    fig = _new_figure(12.5 if detail_points else 10.0, height)
    if detail_points:
        overview, detail = fig.subplots(1, 2, width_ratios=[1, 1.7])
    else:
        overview, detail = fig.add_subplot(), None

    overview.set_xscale("log")
    _draw_points(overview, points)
    lo, hi = _overview_xlim(points) if points else (DCASE_MAX_MACS / 3, DCASE_MAX_MACS * 3)
    overview.set_xlim(lo, hi)
    limit_shown = lo <= DCASE_MAX_MACS <= hi
    if limit_shown:
        _draw_limit(overview, hi * 100)  # the span runs past any later widening of the axis
    if points:
        overview.set_ylim(*_accuracy_range(points))
    macs = np.array([p.macs for p in points])
    accuracy = np.array([p.accuracy for p in points])
    front = pareto_front(macs, accuracy) if points else np.zeros(0, dtype=bool)
    if front.sum() >= 2:
        order = np.argsort(macs[front])
        overview.step(macs[front][order], accuracy[front][order], where="post", color="tab:green", lw=1.5, zorder=1)
    overview.set_xlabel("MACs per 1-s clip (log scale)")
    overview.set_ylabel("Macro class-wise accuracy (%), mean ± std over seeds")
    overview.set_title("Accuracy vs complexity" + (": all systems" if detail is not None else ""), fontsize=10)
    overview.grid(True, which="major", alpha=0.3)

    if detail is not None:
        d_lo, d_hi = min(p.macs for p in detail_points), max(p.macs for p in detail_points)
        if d_hi / d_lo > 3:
            detail.set_xscale("log")
            detail.set_xlim(*_log_range([d_lo, d_hi], 1.15))
        else:
            pad = max(0.06 * (d_hi - d_lo), 0.005 * d_hi)
            detail.set_xlim(d_lo - pad, d_hi + pad)
        # fitted to the dots, not their error bars (the overview shows those whole): the zoom is
        # there to pull apart points a fraction of a point apart
        y_lo, y_hi = _accuracy_range([dataclasses.replace(p, std=0.0) for p in detail_points])
        detail.set_ylim(y_lo, y_hi)
        _draw_points(detail, detail_points)
        if front.sum() >= 2:
            zoomed_front = [(p.macs, p.accuracy) for p, f, z in zip(points, front, zoom) if f and z]
            if len(zoomed_front) >= 2:
                xs, ys = zip(*sorted(zoomed_front))
                detail.step(xs, ys, where="post", color="tab:green", lw=1.5, zorder=1)
        overview.add_patch(Rectangle((d_lo / 1.08, y_lo), d_hi * 1.08 - d_lo / 1.08, y_hi - y_lo, fill=False,
                                     ec="0.3", lw=0.8, ls=":", zorder=4))  # fmt: skip
        overview.annotate("zoom", (d_lo / 1.08, y_hi), xytext=(0, 2), textcoords="offset points", fontsize=7,
                          color="0.3", va="bottom")  # fmt: skip
        detail.set_xlabel("MACs per 1-s clip" + (" (log scale)" if detail.get_xscale() == "log" else ""))
        detail.set_ylabel("Macro class-wise accuracy (%)")
        detail.set_title(f"Zoom: the {len(detail_points)} systems within the {_mega(DCASE_MAX_MACS)} MAC limit", fontsize=10)
        detail.grid(True, which="major", alpha=0.3)
        _mac_ticks(detail)

    _legend(fig, points, front.sum() >= 2, limit_shown, "right" if DCASE_MAX_MACS > hi else "left")
    panels = [(overview, overview_points)] + ([(detail, detail_points)] if detail is not None else [])
    # Labels are placed in pixels, so the layout must be settled first and then frozen. Placing
    # them widens the x-axes, which changes the tick labels, which changes the layout: place once,
    # lay out again with the widened axes, then place for good.
    for final in (False, True):
        for ax, _ in panels:
            _mac_ticks(ax)
        fig.canvas.draw()
        if final:
            fig.set_layout_engine("none")
        for ax, chosen in panels:
            labels = place_labels(ax, chosen)
            if not final:
                for label in labels:
                    label.remove()
    for ax, _ in panels:
        _mac_ticks(ax)
    return fig


def _legend(fig: Figure, points: Sequence[_Point], front: bool, limit: bool, side: str) -> None:
    """Only what the figure shows: each verdict present, each kind of row when there are several,
    the front when drawn, the MAC limit's line (or, off the axis, which side it lies on)."""
    handles = [Line2D([], [], ls="none", marker="o", markersize=7, markerfacecolor=VERDICT_COLOURS[v],
                      markeredgecolor="black", markeredgewidth=0.5, label=VERDICT_NAMES[v])
               for v in VERDICT_COLOURS if any(p.verdict == v for p in points)]  # fmt: skip
    kinds = [k for k in MARKERS if any(p.kind == k for p in points)]
    if len(kinds) > 1:
        handles += [Line2D([], [], ls="none", marker=MARKERS[k], markersize=7, markerfacecolor="white",
                           markeredgecolor="black", label=MARKER_NAMES[k]) for k in kinds]  # fmt: skip
    if front:
        handles.append(Line2D([], [], color="tab:green", lw=1.5, label="Pareto front (no system has fewer MACs and higher accuracy)"))
    if limit:
        handles.append(Line2D([], [], color="tab:red", ls="--", lw=1, label=f"DCASE limit: {_mega(DCASE_MAX_MACS)} MACs"))
    elif points:
        handles.append(Line2D([], [], ls="none", label=f"DCASE limit ({_mega(DCASE_MAX_MACS)} MACs): off the axis, to the {side}"))
    fig.legend(handles=handles, loc="outside lower center", ncol=min(3, len(handles)), fontsize=8, frameon=False)


def spread(desired: Sequence[float], height: float, low: float, high: float) -> list[float]:
    """Centres for boxes of ``height`` at least that far apart, each as near its ``desired``
    centre as the others allow (least squares, keeping their order; of equal desires the first
    ends up highest), inside [low, high] when the stack fits there.

    Why least squares by pooling: a label should move only as far as its neighbours force it,
    so a lone point keeps its label level with it while a cluster's labels fan out evenly around
    the cluster's centre."""
    order = sorted(range(len(desired)), key=lambda i: (desired[i], -i))  # a tie: the first one on top
    blocks: list[list[float]] = []  # [base, count, sum of (desired - k * height)]
    for i in order:
        blocks.append([desired[i], 1, desired[i]])
        while len(blocks) > 1 and blocks[-2][0] + blocks[-2][1] * height > blocks[-1][0]:
            top = blocks.pop()
            below = blocks[-1]
            total = below[2] + top[2] - top[1] * below[1] * height
            below[1] += top[1]
            below[2] = total
            below[0] = total / below[1]
    placed = [b[0] + k * height for b in blocks for k in range(int(b[1]))]
    if placed and placed[-1] > high:  # shift down what sticks out at the top, then up at the bottom
        placed[-1] = high
        for k in range(len(placed) - 2, -1, -1):
            placed[k] = min(placed[k], placed[k + 1] - height)
    if placed and placed[0] < low:
        placed[0] = low
        for k in range(1, len(placed)):
            placed[k] = max(placed[k], placed[k - 1] + height)
    result = [0.0] * len(desired)
    for rank, i in enumerate(order):
        result[i] = placed[rank]
    return result


def place_labels(ax: Axes, points: Sequence[_Point]) -> list[Annotation]:
    """Name each point in a column of labels to the right of its cluster.

    Points are grouped from left to right: a point joins the current column when its dot lies
    under the column's labels, so no label ever covers a dot. Within a column the labels are
    stacked apart (:func:`spread`); a label that had to move from beside its dot gets a leader
    line to it. The x-axis is widened on the right until the last column fits. Needs a drawn,
    frozen layout: everything is measured in pixels."""
    if not points:
        return []
    renderer = ax.figure.canvas.get_renderer()
    sizes = []
    for point in points:
        probe = ax.text(0, 0, point.label, fontsize=LABEL_FONTSIZE)
        extent = probe.get_window_extent(renderer)
        sizes.append((extent.width, extent.height))
        probe.remove()
    row = max(h for _, h in sizes) + LABEL_GAP_PX
    radius = math.sqrt(DOT_SIZE) / 2 * DPI / 72
    box = ax.bbox
    for attempt in range(6):  # widening can merge columns, which can call for more room
        pixels = ax.transData.transform([(p.macs, p.accuracy) for p in points])
        columns = _columns(pixels[:, 0], [w for w, _ in sizes], radius)
        overflow = max(x + LABEL_PAD_PX + max(sizes[i][0] for i in members) for x, members in columns) - (box.x1 - 4)
        if overflow <= 0.5 or attempt == 5:
            break
        _widen_right(ax, columns, points, sizes)
    # error bars as vertical pixel spans, obstacles for a label slid back to its dot
    spans = ax.transData.transform([(p.macs, p.accuracy - p.std) for p in points] + [(p.macs, p.accuracy + p.std) for p in points])
    low_ends, high_ends = spans[: len(points), 1], spans[len(points) :, 1]
    labels = []
    for x, members in columns:
        members = sorted(members)  # board order, so that tied points list their labels in rank order
        ys = spread([pixels[i, 1] for i in members], row, box.y0 + row / 2 + 2, box.y1 - row / 2 - 2)
        for i, y in zip(members, ys):
            dot = pixels[i]
            left = x
            # A label may slide left from the column to beside its own dot when nothing lies in the
            # stretch it would newly cover: the column's labels are stacked apart already, and
            # earlier columns end before this column's first dot.
            if dot[0] + radius < x and not any(
                k != i and dot[0] + LABEL_PAD_PX <= pixels[k, 0] <= x + LABEL_PAD_PX + radius
                and min(high_ends[k], pixels[k, 1]) - radius <= y + row / 2 and max(low_ends[k], pixels[k, 1]) + radius >= y - row / 2
                for k in range(len(points))
            ):  # fmt: skip
                left = dot[0] + radius
            position = ax.transData.inverted().transform((left + LABEL_PAD_PX, y))
            moved = left - dot[0] > radius + 1 or abs(y - dot[1]) > 2
            label = ax.annotate(
                points[i].label, (points[i].macs, points[i].accuracy), xytext=tuple(position), textcoords="data",
                fontsize=LABEL_FONTSIZE, ha="left", va="center", zorder=5, annotation_clip=False,
                bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8},
                arrowprops={"arrowstyle": "-", "color": "0.5", "lw": 0.6, "shrinkA": 0, "shrinkB": 2, "relpos": (0, 0.5)}
                if moved else None,
            )  # fmt: skip
            label.set_gid(f"label:{points[i].system}")
            labels.append(label)
    return labels


def _columns(x: np.ndarray, widths: Sequence[float], radius: float) -> list[tuple[float, list[int]]]:
    """(left edge in pixels, member indices) of each label column, left to right."""
    columns: list[tuple[float, list[int]]] = []
    for i in sorted(range(len(x)), key=lambda i: x[i]):
        if columns:
            right, members = columns[-1]
            edge = right + LABEL_PAD_PX + max(widths[j] for j in members) + 3
            if x[i] - radius <= edge:
                columns[-1] = (max(right, x[i] + radius), members + [i])
                continue
        columns.append((x[i] + radius, [i]))
    return columns


def _widen_right(ax: Axes, columns: Sequence[tuple[float, list[int]]], points: Sequence[_Point], sizes: Sequence[tuple[float, float]]) -> None:
    """Move the right x-limit so that each column's labels end inside the axes. Computed in the
    axis's scale space (log MACs on a log axis), where pixels are linear in the value."""
    scale = ax.xaxis.get_transform()
    lo, hi = (float(v) for v in scale.transform(np.array(ax.get_xlim())))
    width = ax.bbox.width
    needed = hi
    for _, members in columns:
        rightmost = max(float(scale.transform(np.array([points[i].macs]))[0]) for i in members)
        room = width - 4 - LABEL_PAD_PX - max(sizes[i][0] for i in members) - math.sqrt(DOT_SIZE) / 2 * DPI / 72
        room = max(room, width * 0.2)  # labels wider than the axes: keep the points in view, let labels run out
        needed = max(needed, lo + (rightmost - lo) * width / room)
    ax.set_xlim(ax.get_xlim()[0], float(scale.inverted().transform(np.array([needed]))[0]))


def per_device_heatmap(board: Leaderboard, order: Sequence[str] | None = None) -> Figure:
    """Macro accuracy per device (mean over seeds): one row per system, one column per device,
    each cell printed; unseen devices set apart.

    Why a heatmap: grouped bars give each device one bar per system, which past a handful of
    systems is a comb of colours no one can match to a legend; a row per system reads at any
    number of rows and needs no colour to tell systems apart."""
    frame = board.per_device()
    systems = list(order) if order is not None else list(frame.index)
    ranks = {str(s): i for i, s in enumerate(board.table.index, start=1)}
    values = frame.loc[systems, list(DEVICES)].to_numpy(dtype=float) * 100
    fig = _new_figure(10.0, 0.3 * len(systems) + 1.9)
    ax = fig.add_subplot()
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 100.0)
    if high - low < 1:
        low, high = low - 0.5, high + 0.5
    cmap = _colormap()
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=low, vmax=high, aspect="auto", interpolation="nearest")
    for r in range(values.shape[0]):
        for c in range(values.shape[1]):
            value = values[r, c]
            if np.isnan(value):
                ax.text(c, r, "n/a", ha="center", va="center", fontsize=7, color="0.35")
                continue
            red, green, blue = to_rgb(cmap((value - low) / (high - low)))
            dark = 0.2126 * red + 0.7152 * green + 0.0722 * blue < 0.45
            ax.text(c, r, f"{value:.1f}", ha="center", va="center", fontsize=7, color="white" if dark else "black")
    ax.set_xticks(range(len(DEVICES)), [f"{d}\nunseen" if d in UNSEEN_DEVICES else d for d in DEVICES])
    ax.xaxis.tick_top()
    ax.set_yticks(range(len(systems)), [f"{ranks[str(s)]} {s}" for s in systems], fontsize=8)
    ax.tick_params(length=0)
    first_unseen = DEVICES.index(UNSEEN_DEVICES[0])
    ax.axvline(first_unseen - 0.5, color="black", lw=1.5)
    kinds = [row_kind(str(s)) for s in systems]
    starts = [r for r in range(len(systems)) if r == 0 or kinds[r] != kinds[r - 1]]
    for r in starts[1:]:
        ax.axhline(r - 0.5, color="black", lw=1.2)
    if len(starts) > 1:  # name each part, as the table's sections do
        for start, end in zip(starts, starts[1:] + [len(systems)]):
            ax.text(len(DEVICES) - 0.5 + 0.12, (start + end - 1) / 2, SECTION_NAMES[kinds[start]], rotation=270,
                    ha="left", va="center", fontsize=8, clip_on=False)  # fmt: skip
    ax.set_title("Macro class-wise accuracy (%) per recording device, mean over seeds", fontsize=10)
    length = min(1.0, 3.0 / (0.3 * max(len(systems), 1)))  # about 3 inches long, whatever the number of rows
    fig.colorbar(image, ax=ax, shrink=length, pad=0.04 if len(starts) > 1 else 0.02, label="accuracy (%)")
    return fig


def _colormap():
    from matplotlib import colormaps

    return colormaps["viridis"].with_extremes(bad="0.92")  # a device without test clips: a grey "n/a" cell


def confusion_grid(board: Leaderboard, columns: int = 3, order: Sequence[str] | None = None) -> Figure:
    """Row-normalised confusion matrix (recall, %) of each system, summed over its seeds."""
    systems = list(order) if order is not None else list(board.table.index)
    rows = math.ceil(len(systems) / columns)
    cols = min(columns, len(systems))
    fig = _new_figure(4.3 * cols + 0.8, 4.2 * rows)
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
        fig.colorbar(image, ax=fig.axes, shrink=min(0.6, 2.5 / rows), label="% of true class")
    return fig


def png_base64(fig: Figure, dpi: float | None = None) -> str:
    """The figure as a base64 PNG (for a data: URI), without timestamps or software tags; at the
    figure's own resolution unless told otherwise, so placed labels stay where they were put."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi or fig.dpi, metadata=PNG_METADATA)
    return base64.b64encode(buffer.getvalue()).decode("ascii")
