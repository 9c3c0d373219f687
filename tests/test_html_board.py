"""The HTML board at 17 rows and more: placed labels in accuracy vs MACs, the per-device heatmap,
the legend, table sections and the whole DCASE verdict.

Label geometry is measured on the drawn figure (pixel extents from matplotlib's renderer), on
the committed 17-row split board, on a 3-row board and on random boards."""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.text import Text

from ascbench.data.layout import DEVICES
from ascbench.leaderboard.build import DCASE_MAX_MACS, Leaderboard, build_leaderboards
from ascbench.leaderboard.export import group_of
from ascbench.leaderboard.html import html_page
from ascbench.leaderboard.plots import accuracy_vs_macs, per_device_heatmap, row_kind, section_order, spread
from ascbench.leaderboard.render import dcase_verdict
from records_factory import make_record

SPLIT_BOARD = Path(__file__).resolve().parents[1] / "leaderboards" / "synth-tau22-small-split25-quick.json"


class ExportedBoard(Leaderboard):
    """A board read back from an exported JSON file (its rows and per-device means; no records)."""

    per_device_means: dict[str, dict[str, float]] = {}

    def per_device(self) -> pd.DataFrame:
        return pd.DataFrame(self.per_device_means).T.loc[self.table.index, list(DEVICES)].astype(float)


def exported_board(path: Path) -> ExportedBoard:
    entry = json.loads(path.read_text(encoding="utf-8"))["leaderboards"][0]
    table = pd.DataFrame(entry["rows"])
    table.index = pd.Index(table["system"].tolist())
    board = ExportedBoard(group_of(entry), table, {})
    board.per_device_means = entry["per_device"]
    return board


def table_board(rows: list[tuple[str, float, float, bool | None]], std: float = 0.01) -> Leaderboard:
    """A board from (system, MACs, accuracy, DCASE pass) rows, best first: enough for the plots."""
    table = pd.DataFrame([{"system": s, "macs": m, "accuracy": a, "accuracy_std": std, "paper_label": "",
                           "dcase_pass": ok} for s, m, a, ok in rows])  # fmt: skip
    table = table.sort_values("accuracy", ascending=False)
    table.index = pd.Index(table["system"].tolist())
    return Leaderboard(exported_board(SPLIT_BOARD).group, table, {})


@pytest.fixture(scope="module")
def split_board() -> ExportedBoard:
    board = exported_board(SPLIT_BOARD)
    assert len(board.table) >= 17  # the board these figures have to read at
    return board


def labels_of(fig) -> dict[str, object]:
    return {a.get_gid().removeprefix("label:"): a for ax in fig.axes for a in ax.texts if (a.get_gid() or "").startswith("label:")}


def text_extent(label, renderer=None):
    """The box of a label's text (an annotation's own extent would include its leader line)."""
    return Text.get_window_extent(label, renderer)


def check_labels(fig, board: Leaderboard) -> dict[str, object]:
    """Every system is named once, on the dot of its own numbers, and no label box overlaps
    another label, any other text of its panel, or any dot; all of it inside the panel."""
    renderer = fig.canvas.get_renderer()
    fig.canvas.draw()
    labels = labels_of(fig)
    assert sorted(labels) == sorted(map(str, board.table.index))
    extents = {s: text_extent(a, renderer) for s, a in labels.items()}
    for (a, box_a), (b, box_b) in itertools.combinations(extents.items(), 2):
        assert not box_a.overlaps(box_b), f"labels of {a} and {b} overlap"
    for system, label in labels.items():
        row = board.table.loc[system]
        assert label.xy == pytest.approx((row["macs"], row["accuracy"] * 100))  # points at its own numbers
        ax = label.axes
        box = extents[system]
        assert ax.bbox.x0 <= box.x0 and box.x1 <= ax.bbox.x1 and ax.bbox.y0 <= box.y0 and box.y1 <= ax.bbox.y1, system
        dot = ax.transData.transform(label.xy)
        assert box.x0 > dot[0], f"{system}: label left of its dot"
        centre_y = (box.y0 + box.y1) / 2
        if abs(centre_y - dot[1]) > 3 or box.x0 - dot[0] > 15:  # away from its dot: a leader line must lead there
            assert label.arrow_patch is not None, f"{system}: label away from its dot without a leader line"
        for other in ax.texts:
            if other is not label and other.get_visible() and other.get_text() and other not in labels.values():
                assert not box.overlaps(text_extent(other, renderer)), f"{system}'s label covers {other.get_text()!r}"
        for collection in ax.collections:
            if isinstance(collection, PathCollection):
                for centre in ax.transData.transform(collection.get_offsets()):
                    assert not box.contains(*centre), f"{system}'s label covers a dot"
    return labels


def legend_texts(fig) -> list[str]:
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def test_split_board_labels_are_placed_without_collisions(split_board: ExportedBoard) -> None:
    fig = accuracy_vs_macs(split_board)
    labels = check_labels(fig, split_board)
    overview, zoom = fig.axes[:2]
    under = [s for s, m in split_board.table["macs"].items() if m <= DCASE_MAX_MACS]
    # the crowded cluster under the limit is named in the zoomed panel, the rest in the overview
    assert {s for s, a in labels.items() if a.axes is zoom} == set(under)
    assert {s for s, a in labels.items() if a.axes is overview} == set(split_board.table.index) - set(under)
    # the zoom pulls points a fraction of a point apart: 0.3 points of accuracy span more than a dot
    y0, y1 = zoom.get_ylim()
    assert 0.3 / (y1 - y0) * zoom.bbox.height > 10
    # label names carry the board rank, as the table's # column does
    assert labels["cp-mobile"].get_text().startswith(f"{list(split_board.table.index).index('cp-mobile') + 1} cp-mobile")
    # tied accuracies: the labels stack in rank order, the better rank on top
    tie = split_board.table[split_board.table["accuracy"].round(3).duplicated(keep=False)].index
    if len(tie) >= 2:
        a, b = tie[:2]
        assert text_extent(labels[a]).y0 > text_extent(labels[b]).y0


def test_small_board_keeps_labels_beside_their_dots() -> None:
    board = table_board([("hubert-mobilenetv2", 26_000_000, 0.82, True), ("cp-mobile", 29_419_156, 0.70, True),
                         ("efficientnet-b0", 401_000_000, 0.66, False)])  # fmt: skip
    fig = accuracy_vs_macs(board)
    labels = check_labels(fig, board)
    assert len(fig.axes) == 1  # nothing crowded: no zoomed panel
    for label in labels.values():  # room beside every dot: no label had to move
        assert label.arrow_patch is None


@pytest.mark.parametrize("seed, n", [(0, 12), (1, 25), (2, 40), (3, 17)])
def test_random_boards_place_every_label(seed: int, n: int) -> None:
    """Crowded and spread, over and under the limit, long and short names: no collisions."""
    rng = np.random.default_rng(seed)
    macs = np.where(rng.random(n) < 0.6, rng.choice([5e6, 26.9e6, 29.4e6], n), 10 ** rng.uniform(5.5, 9, n))
    names = [f"sys{i}" + "~no-" * int(rng.integers(0, 2)) + "x" * int(rng.integers(0, 30)) for i in range(n)]
    rows = [(name, float(m), float(rng.uniform(0.2, 0.6)), bool(rng.random() < 0.5)) for name, m in zip(names, macs)]
    board = table_board(rows)
    check_labels(accuracy_vs_macs(board), board)


def test_spread_keeps_order_gaps_and_nearness() -> None:
    placed = spread([10.0, 10.0, 10.0, 50.0], 4.0, 0.0, 100.0)
    assert placed[:3] == pytest.approx([14.0, 10.0, 6.0])  # a tie fans out around its value, the first on top
    assert placed[3] == 50.0  # a lone label is not moved
    assert spread([1.0, 2.0], 4.0, 0.0, 100.0) == pytest.approx([0.0, 4.0])  # pushed up off the bottom edge


def test_x_axis_is_fitted_to_the_data(split_board: ExportedBoard) -> None:
    fig = accuracy_vs_macs(split_board)
    overview, zoom = fig.axes[:2]
    macs = split_board.table["macs"]
    lo, hi = overview.get_xlim()
    assert min(macs.min(), DCASE_MAX_MACS) / 1.3 <= lo < min(macs.min(), DCASE_MAX_MACS)
    assert hi < macs.max() * 5  # room for the last label, not a decade of empty axis
    under = macs[macs <= DCASE_MAX_MACS]
    z_lo, z_hi = zoom.get_xlim()
    assert zoom.get_xscale() == "linear" and under.min() - 0.1 * (under.max() - under.min()) < z_lo < under.min()
    # far from the limit: the overview does not stretch to show it
    board = table_board([("a", 1e6, 0.5, True), ("b", 2e6, 0.4, True)])
    fig = accuracy_vs_macs(board)
    check_labels(fig, board)
    lo, hi = fig.axes[0].get_xlim()
    assert hi < 5e6 and lo >= 1e6 / 1.3
    assert [t for t in legend_texts(fig) if "DCASE limit" in t] == ["DCASE limit (30 M MACs): off the axis, to the right"]


def test_legend_explains_colours_and_lists_the_front_only_when_drawn(split_board: ExportedBoard) -> None:
    fig = accuracy_vs_macs(split_board)
    texts = legend_texts(fig)
    assert any(t.startswith("meets the DCASE rules") for t in texts)
    fail = next(t for t in texts if t.startswith("fails a DCASE rule"))
    assert "left of the MAC line" in fail and "outside the split" in fail  # why a red dot can sit under the limit
    assert not any("unknown" in t for t in texts)  # no such row on this board
    # the best row has the fewest MACs too: a front of one point, neither drawn nor listed
    assert not any("Pareto" in t for t in texts)
    assert not any(line.get_color() == "tab:green" for ax in fig.axes for line in ax.get_lines())
    # the kinds of row, one marker each (colours would repeat past ten systems)
    assert {"system", "ablation (~no-…)", "variant or control (@…)"} <= set(texts)

    two = table_board([("small", 5e6, 0.5, True), ("big", 20e6, 0.6, None)])
    fig = accuracy_vs_macs(two)
    texts = legend_texts(fig)
    assert any(t.startswith("Pareto front") for t in texts)
    assert any(line.get_color() == "tab:green" for line in fig.axes[0].get_lines())
    assert any(t.startswith("unknown") for t in texts) and not any(t.startswith("fails") for t in texts)
    assert "system" not in texts  # one kind of row: no marker legend


def test_markers_tell_the_kinds_of_row_apart(split_board: ExportedBoard) -> None:
    fig = accuracy_vs_macs(split_board)
    zoom = fig.axes[1]
    dots = [c for c in zoom.collections if isinstance(c, PathCollection)]
    kinds = {row_kind(s) for s in split_board.table.index if split_board.table.loc[s, "macs"] <= DCASE_MAX_MACS}
    assert len(dots) == len(kinds) == 3
    assert len({tuple(map(tuple, c.get_paths()[0].vertices.round(3))) for c in dots}) == 3  # three marker shapes


def test_row_kinds_follow_the_names() -> None:
    assert row_kind("hubert-mobilenetv2") == "system"
    assert row_kind("hubert-mobilenetv2~no-fms+qat") == "ablation"
    assert row_kind("hubert-mobilenetv2~no-hier@pool-kd4") == "ablation"
    assert row_kind("beats-mobilenetv2@epochs40") == "variant"
    assert row_kind("cp-mobile#3f9a0c21") == "system"
    assert section_order(["a@x", "b~no-y", "c", "d@z", "e"]) == ["c", "e", "b~no-y", "a@x", "d@z"]


def test_heatmap_has_a_row_per_system_and_a_column_per_device(split_board: ExportedBoard) -> None:
    order = section_order(list(split_board.table.index))
    fig = per_device_heatmap(split_board, order)
    ax = fig.axes[0]
    values = np.asarray(ax.images[0].get_array())
    assert values.shape == (len(split_board.table), len(DEVICES))
    expected = split_board.per_device().loc[order, list(DEVICES)].to_numpy() * 100
    np.testing.assert_allclose(values, expected)
    ranks = {s: i for i, s in enumerate(split_board.table.index, start=1)}
    assert [t.get_text() for t in ax.get_yticklabels()] == [f"{ranks[s]} {s}" for s in order]
    assert [t.get_text().split("\n")[0] for t in ax.get_xticklabels()] == list(DEVICES)
    cells = [t.get_text() for t in ax.texts if re.fullmatch(r"\d+\.\d", t.get_text())]
    assert cells == [f"{v:.1f}" for v in expected.ravel()]  # every value printed, row by row
    assert {t.get_text() for t in ax.texts} >= {"systems", "ablations", "variants"}


def test_heatmap_shows_a_device_without_clips_as_missing() -> None:
    board = exported_board(SPLIT_BOARD)
    board.per_device_means = {s: dict(v) for s, v in board.per_device_means.items()}
    board.per_device_means["cp-mobile"]["s5"] = None
    fig = per_device_heatmap(board)
    ax = fig.axes[0]
    row = list(board.table.index).index("cp-mobile")
    assert np.ma.is_masked(ax.images[0].get_array()[row, DEVICES.index("s5")])
    assert [t for t in ax.texts if t.get_text() == "n/a"][0].get_position() == (DEVICES.index("s5"), row)


SPLIT_ROWS = {  # name: (skill, MACs, trained on audio outside the split)
    "beats-mobilenetv2@epochs40": (0.45, 26_899_000, True), "mobilenetv2@epochs40": (0.45, 26_899_000, False),
    "beats-mobilenetv2@pool-kd1": (0.44, 26_899_000, True), "hubert-mobilenetv2~no-front+hier+kd": (0.44, 26_899_000, False),
    "hubert-mobilenetv2~no-kd": (0.43, 26_899_000, True), "cp-mobile": (0.43, 29_419_156, False),
    "mobilenetv2": (0.43, 26_899_000, False), "hubert-mobilenetv2@pool-kd1": (0.42, 26_899_000, True),
    "hubert-mobilenetv2": (0.42, 26_899_000, True), "hubert-mobilenetv2~no-front": (0.42, 26_899_000, True),
    "hubert-mobilenetv2~no-qat": (0.42, 26_899_000, True), "beats-mobilenetv2": (0.42, 26_899_000, True),
    "hubert-mobilenetv2~no-fms": (0.41, 26_899_000, True), "hubert-mobilenetv2~no-hier": (0.41, 26_899_000, True),
    "hubert-mobilenetv2~no-adir+fms+front+hier+qat": (0.41, 26_899_000, True), "hubert-mobilenetv2~no-adir": (0.40, 26_899_000, True),
    "efficientnet-b0": (0.26, 158_100_000, False),
}  # fmt: skip


@pytest.fixture(scope="module")
def split_page_board() -> Leaderboard:
    """The split board rebuilt from records (one seed each): its names, sizes and verdicts."""
    records = []
    for name, (skill, macs, outside) in SPLIT_ROWS.items():
        record, _ = make_record(name, skill=skill, macs=macs, params=4_019_782 if macs > 1e8 else 120_218,
                                dataset="synth-tau22-small", profile="quick")  # fmt: skip
        records.append(dataclasses.replace(record, notes={"teacher_pretraining_audio": "pool"}) if outside else record)
    (board,) = build_leaderboards(records)
    return board


class Cells(HTMLParser):
    """Table cells by class, and the tbody sections with the System cell of each of their rows."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[tuple[str, str]] = []
        self.sections: list[tuple[str, list[str]]] = []
        self._cell: list[str] | None = None
        self._classes = ""
        self._column = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = dict(attrs).get("class") or ""
        if tag == "tbody":
            self.sections.append((classes, []))
        elif tag == "tr":
            self._column = 0
        elif tag == "td":
            self._cell, self._classes = [], classes
            self._column += 1

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            text = "".join(self._cell)
            self.cells.append((self._classes, text))
            if self._column == 2 and self.sections:
                self.sections[-1][1].append(text)
            self._cell = None


def test_page_shows_every_verdict_whole_and_sections_apart(split_page_board: Leaderboard) -> None:
    page = html_page([split_page_board], "ascbench leaderboard --format html")
    parser = Cells()
    parser.feed(page)
    verdicts = [text for classes, text in parser.cells if "verdict" in classes.split()]
    expected = [dcase_verdict(row) for _, row in split_page_board.table.iterrows()]
    assert sorted(verdicts) == sorted(expected)
    assert "FAIL: audio outside the split (teacher pre-training)" in verdicts
    # the verdict cell wraps: no rule in the page keeps it on one line or clips it
    rule = re.search(r"td\.verdict\s*\{([^}]*)\}", page).group(1)
    assert "white-space: normal" in rule
    assert "text-overflow" not in page and "nowrap" not in rule
    # systems, ablations and variants in their own sections, each best first
    sections = {classes: rows for classes, rows in parser.sections}
    assert list(sections) == ["system", "ablation", "variant"]
    board_order = list(split_page_board.table.index)
    for kind, rows in sections.items():
        assert rows == [s for s in board_order if row_kind(s) == kind]
    assert "# and Δ vs best rank every row of the board together" in page
    # 17 systems: the confusion matrices start folded, the other figures are shown
    assert re.search(r"<details><summary>Confusion matrices", page)
    assert len(re.findall(r'src="data:image/png;base64,', page)) == 3


def test_page_of_one_kind_has_no_sections() -> None:
    records = [make_record(name, skill=skill)[0] for name, skill in (("a", 0.7), ("b", 0.6), ("c", 0.5))]
    page = html_page(build_leaderboards(records), "ascbench leaderboard --format html")
    assert 'class="section"' not in page and "sections only group" not in page
    assert re.search(r"<details open><summary>Confusion matrices", page)
    parser = Cells()
    parser.feed(page)
    assert [rows for _, rows in parser.sections] == [["a", "b", "c"]]
