"""`ctxdata`: the CLI entry point. One clean error type becomes a message and exit code 1."""

from __future__ import annotations

import os
import signal
import threading

import typer
from typer.core import TyperGroup

from ctxdata import __version__

# transformers/huggingface_hub tqdm bars would interleave with ours; rich progress covers long work.
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
from ctxdata.errors import CtxdataError


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the main thread is, so it unwinds (and stops workers) as Ctrl-C does."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


class CtxdataGroup(TyperGroup):
    """Turns CtxdataError and OSError (exit 1), Ctrl-C (exit 130) and SIGTERM (exit 143) into one clean line.

    CTXDATA_DEBUG=1 shows the traceback.
    """

    def invoke(self, ctx):  # type: ignore[override]
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _raise_terminated)
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
        except KeyboardInterrupt as exc:
            if os.environ.get("CTXDATA_DEBUG") == "1":
                raise
            from ctxdata.console import error

            what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
            error(f"{what}. Rerun the same command: build-coding, build-vision, synth task and push "
                  "resume from their finished work.")
            raise typer.Exit(143 if isinstance(exc, Terminated) else 130) from None

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


# Every command, wired explicitly: a missing module is an ImportError here, and a test lists the commands.
from ctxdata.cli import audit, coding, export, hub, inspect, probe, quickstart, synth, train, view, vision  # noqa: E402

coding.register(app)
vision.register(app)
synth.register(app)
inspect.register(app)
view.register(app)
export.register(app)
hub.register(app)
train.register(app)
probe.register(app)
quickstart.register(app)
audit.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
