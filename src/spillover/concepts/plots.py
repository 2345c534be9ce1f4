"""PNG figures of a concept analysis, drawn from its summary.json (and correlation.json)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..domains import COLOURS, parse_domain
from ..io import read_json
from .behaviour import BENIGN


def _style(name: str) -> dict:
    if name == BENIGN:
        return {"color": "grey", "linestyle": "--", "label": "benign"}
    try:
        d = parse_domain(name)
        return {"color": COLOURS[d], "label": d.label}
    except ValueError:
        return {"label": name}


def _grid(n: int, max_cols: int = 4) -> tuple[int, int]:
    cols = min(n, max_cols)
    return math.ceil(n / cols), cols


def plot_concepts(out_dir: Path, layer: int | None = None) -> list[Path]:
    """Write histograms (at ``layer``: default 5 when kept, else the middle one), per-layer
    vector-similarity heatmaps, target-to-domain curves and, when ``correlation.json`` exists,
    the correlation-vs-layer curve into ``out_dir/figures``; return the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    s = read_json(out_dir / "summary.json")
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    written = []

    def save(fig, name: str) -> None:
        fig.tight_layout()
        fig.savefig(fig_dir / name, dpi=110)
        plt.close(fig)
        written.append(fig_dir / name)

    targets = list(s["histograms"])
    kept = sorted(int(l) for l in s["histograms"][targets[0]])
    at = layer if layer is not None else (5 if 5 in kept else kept[len(kept) // 2])
    if at not in kept:
        raise ValueError(f"no histograms at layer {at}; kept layers: {kept}")
    rows, cols = _grid(len(targets))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, t in zip(axes.flat, targets):
        for d, values in s["histograms"][t][str(at)].items():
            ax.hist(values, bins=30, histtype="step", density=True, **_style(d))
        ax.set_title(f"{_style(t)['label']} vector, layer {at}")
        ax.set_xlabel("cosine similarity")
    for ax in list(axes.flat)[len(targets):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    save(fig, f"histograms_layer{at}.png")

    sim = np.asarray(s["vector_similarity"])  # (L, K, K)
    labels = [_style(d)["label"] for d in s["domains"]]
    rows, cols = _grid(len(s["layers"]), 6)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.6 * rows), squeeze=False)
    for i, (ax, l, m) in enumerate(zip(axes.flat, s["layers"], sim)):
        im = ax.imshow(m, vmin=-1, vmax=1, cmap="RdBu_r")
        ax.set_title(f"layer {l}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks(range(len(labels)), labels if i % cols == 0 else [], fontsize=6)
    for ax in list(axes.flat)[len(s["layers"]):]:
        ax.axis("off")
    fig.colorbar(im, ax=axes, shrink=0.6, label="cos(vector, vector)")
    fig.savefig(fig_dir / "vector_similarity.png", dpi=110)
    plt.close(fig)
    written.append(fig_dir / "vector_similarity.png")

    rows, cols = _grid(len(targets))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, t in zip(axes.flat, targets):
        for d, values in s["target_to_domain"][t].items():
            ax.plot(s["layers"], values, **_style(d))
        ax.set_title(f"{_style(t)['label']} vector")
        ax.set_xlabel("layer")
        ax.set_ylabel("mean cos to prompts")
    for ax in list(axes.flat)[len(targets):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    save(fig, "target_to_domain.png")

    corr_path = out_dir / "correlation.json"
    if corr_path.exists():
        c = read_json(corr_path)
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for key, label, colour in (("", "pooled", "black"), ("_within_target", "within target", "tab:blue")):
            if "spearman" + key not in c:
                continue
            rho = np.array([np.nan if r is None else r for r in c["spearman" + key]], float)
            p = np.array([np.nan if v is None else v for v in c["p_value" + key]], float)
            ax.plot(c["layers"], rho, color=colour, marker="o", markersize=3, label=label)
            sig = p < 0.05
            ax.scatter(np.asarray(c["layers"])[sig], rho[sig], color="red", zorder=3,
                       label="p < 0.05 (uncorrected)" if key == "" else None)
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.set_xlabel("layer")
        ax.set_ylabel("Spearman(similarity, EMA)")
        ax.set_title(f"{c['n_pairs']} (target, domain) pairs")
        ax.legend(fontsize=7)
        save(fig, "correlation.png")
    return written
