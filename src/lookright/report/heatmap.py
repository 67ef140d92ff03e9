"""Heat maps of a two-setting grid: mean over seeds of shifted-test and validation accuracy per
grid point (Learning to Look's lambda x E_attn study).

A *grid* is the finished runs of one (dataset, model) whose configs differ only in two keys
(``x``, ``y``; the run name and seed aside). :func:`find_grids` finds them, either for the two keys
given or for the two keys that vary when exactly two do. Each cell is ``mean`` over the seeds of
that point; a point without runs stays empty (drawn grey, ``n/a`` in the table).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

from lookright.errors import LookrightError
from lookright.runs.folder import flatten
from lookright.runs.summary import markdown

#: config keys that never make two runs different points of a grid
NOT_SETTINGS = ("name", "out_dir")
METRICS = (("shifted test acc (%)", "shifted_test_acc"), ("val acc (%)", "val_acc"))


@dataclass
class Grid:
    """Runs of one (dataset, model) over ``x`` x ``y``; ``fixed``: the other keys that set this grid
    apart from other grids of the same two keys (empty when there is one)."""

    dataset: str
    model: str
    x: str
    y: str
    fixed: dict = field(default_factory=dict)
    runs: dict = field(default_factory=dict)  # (x value, y value) -> [metrics rows]

    @property
    def xs(self) -> list:
        return sorted({k[0] for k in self.runs}, key=_order)

    @property
    def ys(self) -> list:
        return sorted({k[1] for k in self.runs}, key=_order)

    def mean(self, metric: str, x, y) -> float | None:
        values = [r[metric] for r in self.runs.get((x, y), []) if r.get(metric) is not None]
        return statistics.fmean(values) if values else None

    def seeds(self) -> int:
        return min(len(v) for v in self.runs.values())

    @property
    def title(self) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in self.fixed.items())
        return f"{self.dataset} / {self.model}" + (f" ({extra})" if extra else "")


def _order(value):
    return (0, value, "") if isinstance(value, (int, float)) and not isinstance(value, bool) else (1, 0, str(value))


def _settings(row: dict) -> dict:
    flat = flatten(row.get("_config") or {})
    return {k: v for k, v in flat.items() if k not in NOT_SETTINGS}


def find_grids(rows: list[dict], axes: tuple[str, str] | None = None) -> list[Grid]:
    """The grids among ``rows`` (finished supervised runs with ``_config``). With ``axes``, every
    (dataset, model) whose runs have both keys gives grids over them, one per combination of the
    other keys that vary; without, a (dataset, model) whose runs vary in exactly two keys, each
    with two or more values, gives one grid."""
    by_group: dict[tuple, list[tuple[dict, dict]]] = {}
    for row in rows:
        by_group.setdefault((str(row.get("dataset")), str(row.get("model", "?"))), []).append((row, _settings(row)))
    grids = []
    for (dataset, model), members in by_group.items():
        keys = set().union(*(s.keys() for _, s in members))
        varying = sorted(k for k in keys if len({repr(s.get(k)) for _, s in members}) > 1)
        if axes is None:
            if len(varying) != 2:
                continue
            x, y = varying
        else:
            x, y = axes
            if not all(x in s and y in s for _, s in members):
                continue
        rest = [k for k in varying if k not in (x, y)]
        split: dict[tuple, Grid] = {}
        for row, s in members:
            fixed = tuple((k, s.get(k)) for k in rest)
            grid = split.setdefault(fixed, Grid(dataset, model, x, y, dict(fixed)))
            grid.runs.setdefault((s[x], s[y]), []).append(row)
        grids += [g for g in split.values() if len(g.xs) > 1 or len(g.ys) > 1]
    return grids


def grid_table(grid: Grid, metric: str = "shifted_test_acc") -> str:
    """Markdown: one row per ``y`` value, one column per ``x`` value, the mean over seeds."""
    body = [[str(y), *("n/a" if (m := grid.mean(metric, x, y)) is None else f"{m:.2f}" for x in grid.xs)]
            for y in grid.ys]
    return markdown([f"{grid.y} \\ {grid.x}", *map(str, grid.xs)], body)


def save_heatmap(grid: Grid, path: str | Path) -> Path:
    """Two panels (shifted-test and validation accuracy, mean over seeds) as a PNG at ``path``."""
    import matplotlib
    import numpy as np
    from matplotlib.figure import Figure

    from lookright.report.figures import save_figure

    xs, ys = grid.xs, grid.ys
    fig = Figure(figsize=(2.5 + 1.2 * len(xs), 1.5 + 0.45 * len(ys)))
    for ax, (title, metric) in zip(fig.subplots(1, 2), METRICS):
        values = np.array([[np.nan if (m := grid.mean(metric, x, y)) is None else m for x in xs] for y in ys])
        cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#dddddd")
        image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, aspect="auto", origin="lower")
        ax.set_xticks(range(len(xs)), [str(x) for x in xs], rotation=45 if len(xs) > 6 else 0)
        ax.set_yticks(range(len(ys)), [str(y) for y in ys])
        ax.set_xlabel(grid.x)
        ax.set_ylabel(grid.y)
        ax.set_title(title)
        if len(xs) * len(ys) <= 150:
            for (i, j), v in np.ndenumerate(values):
                if not np.isnan(v):
                    ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=7, color="white")
        fig.colorbar(image, ax=ax, fraction=0.046)
    fig.suptitle(f"{grid.title}: mean over {grid.seeds()}+ seeds per point")
    fig.tight_layout()
    return save_figure(fig, path)


def parse_axes(text: str) -> tuple[str, str]:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or not all(parts) or parts[0] == parts[1]:
        raise LookrightError(f"--heatmap takes two different config keys separated by a comma, e.g. "
                             f"--heatmap loss.lambda0,train.attn_epochs; got {text!r}")
    return parts[0], parts[1]


def heatmap_section(rows: list[dict], folder: str | Path, axes: tuple[str, str] | None = None) -> tuple[str, list[Path]]:
    """Markdown tables and PNG heat maps (written into ``folder``) of every grid in ``rows``;
    ``("", [])`` when there is none. With ``axes`` given and no grid over them, a LookrightError."""
    grids = find_grids(rows, axes)
    if axes is not None and not grids:
        raise LookrightError(f"no grid over {axes[0]} x {axes[1]}: no (dataset, model) has finished runs with "
                             "two or more values of either key; check the key names against a run's config.yaml")
    text, paths = [], []
    for i, grid in enumerate(grids):
        stem = f"heatmap-{grid.dataset}-{grid.model}" + (f"-{i}" if len(grids) > 1 else "")
        path = save_heatmap(grid, Path(folder) / f"{stem}.png")
        paths.append(path)
        text.append(f"\n### {grid.title}\n\n![heat map]({path.name})\n\n"
                    + "".join(f"\n{title}, mean over seeds:\n\n{grid_table(grid, metric)}" for title, metric in METRICS))
    return "".join(text), paths
