"""Readable reports (HTML + Markdown) of run and benchmark folders."""

from ambient_omni.report.page import write_report

__all__ = ["write_report"]
