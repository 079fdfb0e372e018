"""The Typer CLI. Command modules import only typer at module level; work happens in functions."""
