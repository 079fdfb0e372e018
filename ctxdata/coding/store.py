"""Rendered contexts, written once in phase 1 and read back per pair in phase 2.

Phase 1 parses every trajectory exactly once. What a pair will need of it (issue, patch, the
steps rendered under the token budget with diff blocks already masked) goes to an append-only
file per slice of input files under `out/_work/contexts/`; the in-memory `Signature` keeps only
a `ContextRef` (file, offset, length). Phase 2 then reads two contexts with one seek and read each
instead of re-reading and re-parsing two trajectories, and masks only what depends on the pair:
the lines of both patches and both instance ids.

Files are written under a temporary name and renamed when the slice is complete, so a killed
run never leaves a half-written store behind a finished name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator, NamedTuple

import orjson

from ctxdata.coding.cascade import Candidate, Signature
from ctxdata.coding.mask import mask_diff_blocks
from ctxdata.coding.render import render_trajectory
from ctxdata.coding.similarity import line_minhash
from ctxdata.coding.trajectory import Step, Trajectory
from ctxdata.errors import CtxdataError
from ctxdata.io import named_os_error
from ctxdata.pipeline import RunContext, Stage
from ctxdata.tokens import TokenCounter


class ContextRef(NamedTuple):
    """Where one stored context lives: file name in the store folder, byte offset, byte length."""

    file: str
    offset: int
    length: int


@dataclass
class StoredContext:
    """What phase 2 needs of one trajectory; `text` is rendered, diff blocks masked, lines not yet."""

    id: str
    source: str
    format: str
    issue: str
    patch: str
    n_steps: int
    text: str


def prepare_context(traj: Trajectory, max_tokens: int, count_tokens: Callable[[str], int] | None = None) -> StoredContext:
    """Mask every diff block (pair-independent), then render under the budget (real tokens with `count_tokens`)."""
    steps = [Step(mask_diff_blocks(s.thought), mask_diff_blocks(s.action), mask_diff_blocks(s.observation), s.returncode) for s in traj.steps]
    text = render_trajectory(replace(traj, steps=steps), max_tokens, count_tokens)
    return StoredContext(traj.id, traj.source, traj.format, traj.issue, traj.patch, len(traj.steps), text)


class ContextWriter:
    """Appends contexts to one store file; `close()` makes the file visible under its final name."""

    def __init__(self, folder: str | Path, name: str) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.name = name
        self._tmp = self.folder / f".{name}.tmp-{os.getpid()}"
        self._fh = open(self._tmp, "wb")
        self._offset = 0

    def add(self, ctx: StoredContext) -> ContextRef:
        blob = orjson.dumps([ctx.id, ctx.source, ctx.format, ctx.issue, ctx.patch, ctx.n_steps, ctx.text])
        try:
            self._fh.write(blob)
        except OSError as exc:  # e.g. a full disk: name the file (the build removes the store on the way out)
            raise named_os_error(exc, self._tmp) from None
        ref = ContextRef(self.name, self._offset, len(blob))
        self._offset += len(blob)
        return ref

    def close(self) -> None:
        try:
            self._fh.close()
        except OSError as exc:  # buffered bytes that did not fit
            raise named_os_error(exc, self._tmp) from None
        os.replace(self._tmp, self.folder / self.name)


class ContextReader:
    """Reads stored contexts back by their `ContextRef`; keeps one open file per store file."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._files: dict[str, BinaryIO] = {}

    def get(self, ref: ContextRef) -> StoredContext:
        fh = self._files.get(ref.file)
        if fh is None:
            path = self.folder / ref.file
            try:
                fh = self._files[ref.file] = open(path, "rb")
            except OSError as exc:  # the store belongs to this run: losing it is not a data problem
                raise CtxdataError(f"context store {path} is missing ({exc}); rerun the command") from exc
        fh.seek(ref.offset)
        blob = fh.read(ref.length)
        if len(blob) != ref.length:
            raise CtxdataError(f"context store {self.folder / ref.file} is truncated; rerun the command")
        return StoredContext(*orjson.loads(blob))

    def __getstate__(self) -> dict:  # shipped to workers: open files do not travel
        return {"folder": self.folder, "_files": {}}


class StoreContexts(Stage):
    """Signature (holding its trajectory) -> Signature with a `context` ref; the trajectory is let go."""

    name = "store"

    def __init__(self, writer: ContextWriter, max_context_tokens: int, tokenizer: str | None = None) -> None:
        self.writer = writer
        self.max_context_tokens = max_context_tokens
        self.tokenizer = tokenizer  # a ctxdata.tokens spec; None: ~4 characters per token

    def run(self, records: Iterable[Signature], ctx: RunContext) -> Iterator[Signature]:
        count = TokenCounter(self.tokenizer).count if self.tokenizer else None
        for sig in records:
            if sig.trajectory is None:
                raise ValueError("StoreContexts needs SignTrajectories(keep_trajectory=True) before it")
            stored = prepare_context(sig.trajectory, self.max_context_tokens, count)
            sig.context = self.writer.add(stored)
            sig.context_minhash = line_minhash(stored.text)  # for choosing the most confusable sibling
            sig.trajectory = None
            yield sig


class LoadContexts(Stage):
    """Candidate -> (candidate, anchor context, confounder context), read from the store."""

    name = "load"

    def __init__(self, folder: str | Path) -> None:
        self.reader = ContextReader(folder)

    def run(
        self, records: Iterable[Candidate], ctx: RunContext
    ) -> Iterator[tuple[Candidate, StoredContext, StoredContext]]:
        for cand in records:
            yield (
                cand,
                self.reader.get(ContextRef(*cand.anchor_context)),
                self.reader.get(ContextRef(*cand.confounder_context)),
            )
