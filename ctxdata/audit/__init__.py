"""Shortcut audit: how well cheap, meaning-blind predictors name the anchor of each pair.

A consumer of an output folder, like `export` and `view`. `PREDICTORS` (in `predictors.py`) is the
registry; `audit_rows` / `audit_output` (in `run.py`) run it; `report.py` turns the result into the
tables the CLI, the dataset card and the HTML viewer show. See docs/audit.md.
"""

# `--audit` of the builds: fast (default: no MiniLM), full (also MiniLM), off. Kept here so --help stays light.
AUDIT_MODES = ("fast", "full", "off")
