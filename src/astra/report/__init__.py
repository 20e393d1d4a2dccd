"""The run report: one self-contained HTML file per run directory (``astra report``)."""

from astra.report.html import build_context, render_report, write_report

__all__ = ["build_context", "render_report", "write_report"]
