"""The study report: the paper's tables, figures and one self-contained HTML page."""

from __future__ import annotations

from .html import build_report, render

__all__ = ["build_report", "render"]
