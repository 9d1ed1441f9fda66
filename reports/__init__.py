"""Report writers: each renders a run's results as one file (JSON, Markdown, HTML with
inline SVG plots, JUnit XML).

They are plug-ins of the harness: ``pyproject.toml`` registers each under the
entry-point group ``gossipcert.reports``, and :func:`harness.run.reporting.write_all` calls
them; none is imported by the harness itself.
"""
