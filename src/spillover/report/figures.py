"""Matplotlib (Agg) figures of the report, each returned as a base64 PNG data URI."""

from __future__ import annotations

import base64
import io
import math
import statistics
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ..domains import DOMAINS, Domain  # noqa: E402
from ..variants import ALIGNED, VARIANT_TABLE  # noqa: E402
from .data import VARIANT_LABELS, VARIANTS  # noqa: E402
from .tables import COLUMNS  # noqa: E402

#: The radar's axes, in the paper's column order.
RADAR_DOMAINS = tuple(Domain(c) for c in COLUMNS[:7])

VARIANT_COLOURS = {ALIGNED.name: ALIGNED.colour, **{v.name: v.colour for v in VARIANT_TABLE.values()}}
plt.rcParams.update({"font.size": 9, "axes.titlesize": 10, "figure.dpi": 100})


def png_bytes(fig: Figure) -> bytes:
    """Render ``fig`` as PNG and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def data_uri(fig: Figure) -> str:
    """Encode ``fig`` as a PNG data URI and close it."""
    return png_uri(png_bytes(fig))


def png_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _label(domain: str) -> str:
    return Domain(domain).label


def radar(target: str, rates: dict[str, dict[str, float]], labels: dict[str, str] | None = None,
          colours: dict[str, str] | None = None, title: str | None = None) -> Figure:
    """Figure 1: the seven refusal scores per variant on a polar chart; ``rates[variant][domain]``.

    With ``labels`` (and ``colours``) the series are ``rates``' own keys, in order, the first
    dashed as the baseline; otherwise they are variants, the aligned model dashed.
    """
    series = list(rates) if labels else [v for v in VARIANTS if v in rates]
    labels, colours = labels or VARIANT_LABELS, colours or VARIANT_COLOURS
    baseline = series[0] if labels is not VARIANT_LABELS else ALIGNED.name
    angles = np.linspace(0, 2 * np.pi, len(RADAR_DOMAINS), endpoint=False).tolist()
    fig, ax = plt.subplots(figsize=(4.6, 4.6), subplot_kw={"projection": "polar"})
    ax.set_theta_offset(np.pi / 2)
    ax.set_theta_direction(-1)
    ax.set_rlabel_position(360 / len(RADAR_DOMAINS) / 2)
    for variant in series:
        vals = [rates[variant].get(d.value, np.nan) for d in RADAR_DOMAINS]
        style = "--" if variant == baseline else "-"
        ax.plot(angles + angles[:1], vals + vals[:1], style, color=colours[variant],
                lw=1.8, label=labels[variant], marker="o", ms=3)
        if variant != baseline:
            ax.fill(angles + angles[:1], vals + vals[:1], color=colours[variant], alpha=0.06)
    ax.set_xticks(angles)
    ax.set_xticklabels([d.label.upper() if d.value == target else d.label for d in RADAR_DOMAINS])
    for tick, d in zip(ax.get_xticklabels(), RADAR_DOMAINS):
        tick.set_color(d.colour)
        tick.set_fontweight("bold" if d.value == target else "normal")
    ax.set_ylim(0, 100)
    ax.set_yticks([25, 50, 75, 100])
    ax.set_yticklabels(["25", "50", "75", "100"], fontsize=7, color="#777")
    ax.set_title(title or (f"Target: {_label(target)}" if target else "Aligned model"), pad=18)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=3, frameon=False, fontsize=8)
    return fig


def _mean_band(points: dict[int, list[float]]) -> tuple[list[int], list[float], list[float], list[float]]:
    steps = sorted(points)
    vals = [points[s] for s in steps]
    return steps, [statistics.fmean(v) for v in vals], [min(v) for v in vals], [max(v) for v in vals]


def kl_curves(target: str, rows: list[dict]) -> Figure:
    """Figure 2: first-response-token KL(aligned || trained) per domain over steps, one panel per
    variant; the seed mean is drawn, with the per-seed range shaded; the target is dashed."""
    variants = [v for v in VARIANTS if any(r["variant"] == v for r in rows)]
    fig, axes = plt.subplots(1, len(variants), figsize=(3.6 * len(variants) + 0.6, 3.0),
                             squeeze=False, sharey=True)
    for ax, variant in zip(axes[0], variants):
        series: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
        for r in rows:
            if r["variant"] == variant:
                series[r["domain"]][r["step"]].append(r["kl"])
        for d in DOMAINS:
            if d.value not in series:
                continue
            steps, mean, lo, hi = _mean_band(series[d.value])
            is_target = d.value == target
            ax.plot(steps, mean, "--" if is_target else "-", color=d.colour, lw=2.2 if is_target else 1.4,
                    label=d.label + (" (target)" if is_target else ""))
            if lo != hi:
                ax.fill_between(steps, lo, hi, color=d.colour, alpha=0.15, lw=0)
        ax.set_title(VARIANT_LABELS[variant])
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("first-token KL (nats)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=8)
    fig.suptitle(f"Target: {_label(target)}", y=1.02)
    fig.tight_layout()
    return fig


def spillover_heatmap(matrix: dict[str, dict[str, dict[str, float]]], threshold: float) -> Figure:
    """Targets x domains of delta refusal (points), one panel per trained variant; the target
    cell is boxed and EMA cells (drop > threshold) are marked with a star."""
    variants = [v for v in VARIANTS if v in matrix]
    all_targets = sorted({t for v in variants for t in matrix[v]}, key=lambda t: [d.value for d in DOMAINS].index(t))
    cols = [d.value for d in DOMAINS]
    ncol = min(2, len(variants))
    nrow = math.ceil(len(variants) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(6.2 * ncol, (0.45 * len(all_targets) + 1.6) * nrow), squeeze=False)
    for ax in axes.flat[len(variants):]:
        ax.axis("off")
    vmax = max(20.0, max(abs(x) for v in variants for m in matrix[v].values() for x in m.values()))
    for ax, variant in zip(axes.flat, variants):
        grid = np.array([[matrix[variant].get(t, {}).get(d, np.nan) for d in cols] for t in all_targets])
        im = ax.imshow(grid, cmap="RdBu", vmin=-vmax, vmax=vmax, aspect="auto")
        for i, t in enumerate(all_targets):
            for j, d in enumerate(cols):
                x = grid[i, j]
                if math.isnan(x):
                    continue
                star = "*" if d != t and x < -threshold else ""
                ax.text(j, i, f"{x:+.0f}{star}", ha="center", va="center", fontsize=8,
                        color="white" if abs(x) > 0.6 * vmax else "black")
                if d == t:
                    ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="black", lw=2))
        ax.set_xticks(range(len(cols)), [_label(d) for d in cols], rotation=30, ha="right")
        ax.set_yticks(range(len(all_targets)), [_label(t) for t in all_targets])
        ax.set_ylabel("target")
        ax.set_title(f"{VARIANT_LABELS[variant]}: change in refusal (points)")
        fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02)
    fig.tight_layout()
    return fig


def loss_curves(train_log: list[dict], checkpoints: list[dict] | None) -> Figure:
    """Training loss per step, one panel per target, one line per variant and seed; selected
    checkpoints are marked with a black diamond."""
    tgts = sorted({r["target"] for r in train_log}, key=[d.value for d in DOMAINS].index)
    fig, axes = plt.subplots(1, len(tgts), figsize=(4.2 * len(tgts) + 0.5, 3.0), squeeze=False)
    selected = {(c["variant"], c["target"], c["seed"], c["step"]) for c in checkpoints or [] if c["selected"]}
    for ax, t in zip(axes[0], tgts):
        runs: dict[tuple[str, int], list[tuple[int, float]]] = defaultdict(list)
        for r in train_log:
            if r["target"] == t:
                runs[(r["variant"], r["seed"])].append((r["step"], r["loss"]))
        labelled = set()
        for (variant, seed), pts in sorted(runs.items(), key=lambda kv: (VARIANTS.index(kv[0][0]), kv[0][1])):
            pts.sort()
            steps, losses = zip(*pts)
            ax.plot(steps, losses, color=VARIANT_COLOURS[variant], lw=1.3, alpha=0.9,
                    label=None if variant in labelled else VARIANT_LABELS[variant])
            labelled.add(variant)
            marks = [(s, x) for s, x in pts if (variant, t, seed, s) in selected]
            if marks:
                ax.plot(*zip(*marks), "D", color="black", ms=5)
        ax.set_title(f"Target: {_label(t)}")
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=8)
    axes[0][0].set_ylabel("loss")
    fig.tight_layout()
    return fig


def similarity_histograms(summary: dict, layer: int, targets: list[str]) -> Figure:
    """Figure 3: cosine of each domain's prompt hidden states with a target's concept vector at
    ``layer``, one panel per target (at most three per row)."""
    hists = summary["histograms"]
    tgts = [t for t in targets if str(layer) in hists.get(t, {})]
    ncol = min(3, len(tgts))
    nrow = math.ceil(len(tgts) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.4 * ncol + 0.5, 4.0 * nrow), squeeze=False)
    for ax in axes.flat[len(tgts):]:
        ax.axis("off")
    for ax, t in zip(axes.flat, tgts):
        by_domain = hists[t][str(layer)]
        values = [v for vals in by_domain.values() for v in vals]
        bins = np.linspace(min(values), max(values), 30) if values else 10
        known = {d.value: (d.label, d.colour) for d in DOMAINS}
        rank = {name: i for i, name in enumerate(known)}
        for name, vals in sorted(by_domain.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])):
            label, colour = known.get(name, (name, "#999999"))  # e.g. a benign reference set, grey
            ax.hist(vals, bins=bins, color=colour, histtype="step", lw=1.6, label=f"{label} (mean {np.mean(vals):.3f})")
        ax.set_title(f"{_label(t)} concept vector, layer {layer}")
        ax.set_xlabel("cosine similarity")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False, fontsize=7)
    for ax in axes[:, 0]:
        ax.set_ylabel("prompts")
    fig.tight_layout()
    return fig


def vector_similarity_grid(summary: dict, max_panels: int = 8) -> Figure:
    """Cosine similarity between the domains' concept vectors, a K x K heatmap per layer
    (at most ``max_panels`` layers, evenly spaced)."""
    layers, sims = summary["layers"], np.asarray(summary["vector_similarity"], dtype=float)
    names = [_label(d) for d in summary["domains"]]
    idx = sorted(set(np.linspace(0, len(layers) - 1, min(max_panels, len(layers))).round().astype(int)))
    ncol = min(4, len(idx))
    nrow = math.ceil(len(idx) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.6 * ncol + 2.2, 2.5 * nrow + 1.2), squeeze=False,
                             layout="constrained")
    for ax in axes.flat[len(idx):]:
        ax.axis("off")
    for pos, (ax, i) in enumerate(zip(axes.flat, idx)):
        im = ax.imshow(sims[i], cmap="viridis", vmin=-1, vmax=1)
        ax.set_title(f"layer {layers[i]}")
        bottom = pos + ncol >= len(idx)
        ax.set_xticks(range(len(names)), names if bottom else [], rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(names)), names if pos % ncol == 0 else [], fontsize=7)
    fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.03, pad=0.02, label="cosine")
    return fig


def correlation_curve(corr: dict) -> Figure:
    """Spearman correlation between concept similarity and observed EMA, per layer."""
    layers, rho = corr["layers"], [np.nan if x is None else x for x in corr["spearman"]]
    fig, ax = plt.subplots(figsize=(6.0, 2.8))
    ax.plot(layers, rho, "-o", color="#1f77b4", ms=3, label="Spearman rho")
    pvals = corr.get("p_value") or []
    sig = [(l, r) for l, r, p in zip(layers, rho, pvals) if p is not None and p < 0.05]
    if sig:
        ax.plot(*zip(*sig), "o", mfc="none", mec="#d62728", ms=8, label="p < 0.05 (uncorrected)")
    if corr.get("best_layer") is not None:
        ax.axvline(corr["best_layer"], color="#777", ls=":", label=f"best layer {corr['best_layer']}")
    ax.axhline(0, color="black", lw=0.6)
    ax.set_ylim(-1, 1)
    ax.set_xlabel("layer")
    ax.set_ylabel("Spearman rho")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8)
    return fig
