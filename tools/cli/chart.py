"""PNG charts for `tvmdeploy compare`: latency per target with p10–p90 error bars, and the per-kernel breakdown."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

_COLORS = {"tvm": "#1f77b4", "onnxruntime": "#7f7f7f", "pytorch": "#ee4c2c"}
_CLASS_COLORS = {"stem": "#8c564b", "depthwise": "#2ca02c", "pointwise": "#1f77b4", "head": "#ff7f0e", "other": "#9467bd", "vm": "#c7c7c7"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI; must precede importing pyplot
    import matplotlib.pyplot as plt

    return plt


def latency_chart(rows: Sequence[Mapping[str, Any]], path: Path, title: str = "") -> Path:
    """Horizontal bars of median latency per competitor, one panel per batch size; rows are `Row.to_dict()`s.

    Failed and skipped rows appear as a labelled gap so the chart lists every target asked for;
    emulated rows are hatched and say so, their numbers being no measure of real hardware.
    """
    plt = _pyplot()
    batches = sorted({int(r["batch"]) for r in rows})
    if not batches:
        raise ValueError("no rows to plot")
    per_batch = [[r for r in rows if int(r["batch"]) == b] for b in batches]
    heights = [max(1.0, 0.42 * len(g)) for g in per_batch]
    fig, axes = plt.subplots(
        len(batches), 1, figsize=(9, sum(heights) + 1.2 * len(batches) + 0.4), squeeze=False, gridspec_kw={"height_ratios": heights}
    )
    for ax, batch, group in zip(axes[:, 0], batches, per_batch):
        names = [r["label"] + (" (emulated)" if r.get("emulated") else "") for r in group]
        medians = [r["median_ms"] or 0.0 for r in group]
        lower = [max(0.0, (r["median_ms"] - r["p10_ms"])) if r["median_ms"] is not None else 0.0 for r in group]
        upper = [max(0.0, (r["p90_ms"] - r["median_ms"])) if r["median_ms"] is not None else 0.0 for r in group]
        ys = list(range(len(group)))[::-1]
        bars = ax.barh(
            ys,
            medians,
            xerr=[lower, upper],
            capsize=3,
            height=0.6,
            color=[_COLORS.get(r["kind"], "#17becf") for r in group],
            edgecolor="black",
            linewidth=0.5,
        )
        measured = [m for m in medians if m > 0]
        # Emulated boards can be 100x slower than the host: a log axis keeps both readable.
        log_axis = bool(measured) and max(measured) / min(measured) > 30
        if log_axis:
            ax.set_xscale("log")
        right = max([r["p90_ms"] for r in group if r["median_ms"] is not None] or [1.0])
        ax.set_xlim(min(measured) / 3 if log_axis else 0, right * (12 if log_axis else 1.5))
        for bar, r, y in zip(bars, group, ys):
            if r.get("emulated"):
                bar.set_hatch("//")
            if r["median_ms"] is None:
                ax.text(
                    0.01,
                    y,
                    f"{r['status']}: {(r.get('error') or '')[:70]}",
                    transform=ax.get_yaxis_transform(),
                    va="center",
                    fontsize=7,
                    color="firebrick",
                    clip_on=True,
                )
            else:
                ratio = f"  ({r['ratio_to_ort']:.2f}x ORT)" if r.get("ratio_to_ort") is not None else ""
                ax.text(r["p90_ms"], y, f"  {r['median_ms']:.2f} ms{ratio}", va="center", fontsize=7, clip_on=True)
        ax.set_yticks(ys, names, fontsize=8)
        ax.set_xlabel(f"batch {batch}: ms per batch (median; bars p10-p90)", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(axis="x", alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=11)
    return _save(plt, fig, path)


def breakdown_chart(by_class_us: Mapping[str, float], path: Path, title: str = "") -> Path:
    """One stacked bar: where an inference's kernel time goes, per kernel class."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 1.9))
    total = sum(by_class_us.values()) or 1.0
    left = 0.0
    for op_class, us in by_class_us.items():
        ms = us / 1e3
        ax.barh(
            [0],
            [ms],
            left=left,
            color=_CLASS_COLORS.get(op_class, "#17becf"),
            edgecolor="white",
            label=f"{op_class} {us / total * 100:.0f}%",
        )
        left += ms
    ax.set_yticks([])
    ax.set_xlabel("kernel time per inference, ms")
    ax.legend(ncol=min(6, len(by_class_us)), fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.45), frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    return _save(plt, fig, path)


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
