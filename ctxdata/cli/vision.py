"""`ctxdata build-vision`: contrastive image pairs from an image pool (edits + neighbour retrieval)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ctxdata.cli._options import (
    AuditMode, BatchSize, Concurrency, Engine, HashInputs, NumGpus, Out, Overwrite, RayAddress, Seed, ShardSize,
)


def _floats(text: str, what: str) -> tuple[float, float]:
    from ctxdata.errors import ConfigError

    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"{what} takes two comma-separated numbers like 0.9,0.995, got {text!r}") from None
    return lo, hi


def build_vision_cmd(
    out: Out,
    pool: Annotated[Optional[Path], typer.Option("--pool", help="Folder with qa.jsonl, a .parquet file, or a datasets folder. Default: the built-in demo pool.")] = None,
    strategy: Annotated[str, typer.Option("--strategy", help="Comma list of candidate sources: edit, retrieval.")] = "edit,retrieval",
    edit_model: Annotated[str, typer.Option("--edit-model", help="auto | procedural | classical | sdxl | instruct-pix2pix.")] = "auto",
    edit_model_path: Annotated[Optional[Path], typer.Option("--edit-model-path", help="Local diffusers folder for sdxl / instruct-pix2pix (else the local HF cache).")] = None,
    edit_steps: Annotated[Optional[int], typer.Option("--edit-steps", min=1, help="Diffusion inference steps.")] = None,
    instructions: Annotated[Optional[Path], typer.Option("--instructions", help="JSONL of {image, question, instruction, new_answer} overriding the templates.")] = None,
    edits_per_image: Annotated[int, typer.Option("--edits-per-image", min=1, help="At most this many edit candidates per pool image.")] = 2,
    embedder: Annotated[str, typer.Option("--embedder", help="efficientnet-lite0 | open_clip:<arch>[:<ckpt>] | hf:<path>.")] = "efficientnet-lite0",
    index: Annotated[str, typer.Option("--index", help="auto | flat | ivf | hnsw | numpy.")] = "auto",
    index_path: Annotated[Optional[Path], typer.Option("--index-path", help="Save the index here, or reload it when it exists.")] = None,
    neighbours: Annotated[int, typer.Option("--neighbours", "-k", min=1, help="Neighbours examined per image when mining.")] = 10,
    sim_band: Annotated[str, typer.Option(
        "--sim-band", help="Cosine band lo,hi the confounder must lie in (to the anchor); pixels decide duplicates.")] = "0.9,1",
    near_copy: Annotated[float, typer.Option(
        "--near-copy", min=0.0, max=1.0,
        help="Same-size images with at most this fraction of pixels changed pass below the band (0: off).")] = 0.25,
    blind_cosine: Annotated[float, typer.Option(
        "--blind-cosine", help="Pairs at or above this cosine are counted as embedder-blind (MMVP).")] = 0.995,
    answerer: Annotated[Optional[str], typer.Option("--answerer", help="VQA model answering neighbours that lack the question: hf:<path> | openai:<base-url>.")] = None,
    blind_embedder: Annotated[Optional[str], typer.Option("--blind-embedder", help="Second embedder for MMVP-style blind pairs.")] = None,
    blind_thresholds: Annotated[str, typer.Option("--blind-thresholds", help="hi1,lo2: cosine above hi1 under --embedder, below lo2 under the blind one.")] = "0.95,0.6",
    verifier: Annotated[str, typer.Option("--verifier", help="none | hf:<path> | openai:<base-url>: VQA judge of both answers.")] = "none",
    difficulty: Annotated[Optional[str], typer.Option("--difficulty", help="Target VQA model for the pass@8 band filter (hf:<path> | openai:<base-url>).")] = None,
    difficulty_band: Annotated[str, typer.Option("--difficulty-band", help="Keep pairs the target solves in this fraction of samples.")] = "0.25,0.63",
    max_pixels: Annotated[int, typer.Option("--max-pixels", min=1, help="Images above this many pixels are rejected as decompression bombs.")] = 64_000_000,
    audit: AuditMode = "fast",
    max_pool_pixels: Annotated[int, typer.Option("--max-pool-pixels", min=1, help="Decoded pixels the whole pool may hold (~3 bytes each); images past it are rejected as pixel_budget.")] = 1_000_000_000,
    hash_inputs: HashInputs = False,
    seed: Seed = 0,
    shard_size: ShardSize = 64,
    overwrite: Overwrite = False,
    engine: Engine = "local",
    workers: Annotated[int, typer.Option("--workers", "-j", help="--engine ray: parallel tasks, and the CPUs of a local cluster (0 = every core).")] = 0,
    ray_address: RayAddress = None,
    num_gpus: NumGpus = 0.0,
    concurrency: Concurrency = 0,
    batch_size: BatchSize = 32,
) -> None:
    """Build vision pairs: edited and retrieved near-identical images with different answers.

    Examples:

        ctxdata build-vision --out pairs/vision-demo

        ctxdata build-vision --pool my_pool/ --strategy edit --edit-model sdxl --edit-model-path ./sdxl-inpaint --out pairs/v

        ctxdata build-vision --pool vqa.parquet --strategy retrieval --index hnsw --sim-band 0.85,0.99 --out pairs/r

        ctxdata build-vision --pool big/ --engine ray --ray-address auto --num-gpus 1 --concurrency 8 --out pairs/v
    """
    from ctxdata.console import print_report, print_table, progress
    from ctxdata.vision.build import VisionConfig, build_vision

    config = VisionConfig(
        pool=str(pool) if pool else None, strategies=tuple(s.strip() for s in strategy.split(",") if s.strip()),
        edit_model=edit_model, edit_model_path=str(edit_model_path) if edit_model_path else None, edit_steps=edit_steps,
        instructions=str(instructions) if instructions else None, edits_per_image=edits_per_image, embedder=embedder, index=index, k=neighbours,
        index_path=str(index_path) if index_path else None, sim_band=_floats(sim_band, "--sim-band"),
        near_copy=near_copy, embedder_blind=blind_cosine, answerer=answerer,
        blind_embedder=blind_embedder, blind_thresholds=_floats(blind_thresholds, "--blind-thresholds"), verifier=verifier,
        difficulty=difficulty, difficulty_band=_floats(difficulty_band, "--difficulty-band"), max_pixels=max_pixels,
        max_pool_pixels=max_pool_pixels, hash_inputs=hash_inputs, seed=seed, shard_size=shard_size, audit=audit,
        out=str(out), overwrite=overwrite, batch_size=batch_size,
        engine=engine, workers=workers, ray_address=ray_address, num_gpus=num_gpus, concurrency=concurrency,
    )
    with progress() as bar:
        report = build_vision(config, progress=bar)
    print_report(report)
    rows = [[s["strategy"], s["candidates"], s["kept"], s["embedder_blind"],
             ", ".join(f"{k}={v}" for k, v in sorted(s["rejected"].items())) or "-"] for s in report["strategies"]]
    print_table("per strategy", ["strategy", "candidates", "kept", "embedder-blind", "rejected by reason"], rows)
    from ctxdata.audit.report import print_audit

    if "audit" in report:
        print_audit(report["audit"])


def register(app: typer.Typer) -> None:
    app.command("build-vision")(build_vision_cmd)
