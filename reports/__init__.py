"""Renders a run's verdicts as JSON, Markdown and (later) HTML and JUnit XML."""
