"""`ctxdata`: the CLI entry point. One clean error type becomes a message and exit code 1."""

from __future__ import annotations

import os

import typer
from typer.core import TyperGroup

from ctxdata import __version__

# transformers/huggingface_hub tqdm bars would interleave with ours; rich progress covers long work.
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
from ctxdata.errors import CtxdataError


class CtxdataGroup(TyperGroup):
    """Turns CtxdataError and OSError (exit 1) and Ctrl-C (exit 130) into one clean line (CTXDATA_DEBUG=1 shows the traceback)."""

    def invoke(self, ctx):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except CtxdataError as exc:
            if os.environ.get("CTXDATA_DEBUG") == "1":
                raise
            from ctxdata.console import error

            error(str(exc))
            raise typer.Exit(1) from None
        except OSError as exc:  # the disk, not the data: a full disk, a path that cannot be made, no permission
            if os.environ.get("CTXDATA_DEBUG") == "1":
                raise
            from ctxdata.console import error

            where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f) or "a file"
            error(f"cannot access {where}: {exc.strerror or exc} ({type(exc).__name__})")
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            if os.environ.get("CTXDATA_DEBUG") == "1":
                raise
            from ctxdata.console import error

            error("interrupted. Rerun the same command: build-coding, build-vision, synth task and push resume from their finished work.")
            raise typer.Exit(130) from None

    def list_commands(self, ctx):  # keep the order commands were registered in
        return list(self.commands)


app = typer.Typer(
    cls=CtxdataGroup,
    name="ctxdata",
    help="Build contrastive-context (ContextRL) pair datasets from agent trajectories and images, verify them, and train on them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="markdown",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ctxdata {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit.")) -> None:
    """ctxdata: contrastive-context pair datasets (ContextRL, arXiv 2606.17053)."""


def _register() -> None:
    # Each module defines `register(app)`; a missing module (work in progress) is skipped.
    import importlib

    for name in ("coding", "vision", "synth", "inspect", "audit", "view", "export", "hub", "train", "probe", "quickstart"):
        try:
            module = importlib.import_module(f"ctxdata.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"ctxdata.cli.{name}":
                raise
            continue
        module.register(app)


_register()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
