"""`--engine ray` on a local Ray cluster (num_cpus=2): the same bytes as `--engine local`, a killed
worker retried without changing the output, a killed driver resumed from the task markers.

One cluster serves the module; the builds join it (the engine reuses a cluster its process joined).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ctxdata.coding.build import CodingBuildConfig, build_coding
from ctxdata.coding.synth import SynthConfig, write_traces
from ctxdata.engine import EngineOptions, make_engine, run_tasks
from ctxdata.errors import ConfigError, CtxdataError
from ctxdata.io import PairOutput
from ctxdata.pipeline import Stage

ray = pytest.importorskip("ray", reason="needs pip install 'ctxdata[ray]'")
pytest.importorskip("ray.data", reason="needs pip install 'ctxdata[ray]'")


@pytest.fixture(scope="module")
def cluster():
    """A local 2-CPU cluster for the module: its GCS address (for drivers in other processes)."""
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="WARNING",
        _system_config={"worker_niceness": 0},
    )
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def traces(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    write_traces(SynthConfig(n=80, seed=5, kb=6), out, workers=1)
    (out / "trajs" / "broken.traj.json").write_text("{not json")  # so there are rejects to compare too
    return out


def _coding(traces: Path, out: Path, **kw) -> CodingBuildConfig:
    return CodingBuildConfig(
        **{"traces": [str(traces / "trajs")], "results": str(traces / "logs"), "out": str(out), "shard_size": 8,
           "max_shortcut": None, **kw}
    )


def output_bytes(out: Path) -> dict[str, bytes]:
    """What must not depend on the engine: shards, rejects, the report without its resume count."""
    files = {p.name: p.read_bytes() for p in sorted(out.glob("pairs-*.arrow"))}
    files["rejects.jsonl"] = (out / "rejects.jsonl").read_bytes()
    report = json.loads((out / "report.json").read_text())
    report.pop("resumed_tasks", None)
    files["report.json"] = json.dumps(report, sort_keys=True).encode()
    return files


def test_build_coding_on_ray_gives_the_local_bytes(cluster, traces, tmp_path):
    # --max-shortcut: the calibration fitted on the driver travels with the phase-2 stages to the workers
    local = build_coding(_coding(traces, tmp_path / "local", workers=1, max_shortcut=0.8, shortcut_predictors="fast"))
    on_ray = build_coding(_coding(traces, tmp_path / "ray", engine="ray", workers=2, max_shortcut=0.8, shortcut_predictors="fast"))
    assert local["pairs"] > 5 and local["rejected"].get("shortcut")  # pairs and rejects both to compare
    assert output_bytes(tmp_path / "ray") == output_bytes(tmp_path / "local")
    assert on_ray["levels"] == local["levels"]


@pytest.mark.slow
def test_build_vision_on_ray_gives_the_local_bytes(cluster, tmp_path):
    pytest.importorskip("torch")
    from ctxdata.vision.build import VisionConfig, build_vision

    # A small demo pool (40 rows, 20 candidates in 4 tasks); a band floor of 0.94 with few near-copies rescued
    # makes the per-task checks (cosines of edits embedded on the actors) reject some candidates too.
    config = VisionConfig(
        demo_families=3, shard_size=6, seed=2, batch_size=4, sim_band=(0.94, 1.0), near_copy=0.05, audit="off"
    )
    local = build_vision(dataclasses.replace(config, out=str(tmp_path / "local")))
    build_vision(dataclasses.replace(config, out=str(tmp_path / "ray"), engine="ray", workers=2))
    assert local["pairs"] >= 10 and local["rejected"] and len(local["methods"]) == 3
    assert output_bytes(tmp_path / "ray") == output_bytes(tmp_path / "local")


class KillWorkerOnce(Stage):
    """Kills its own worker process (SIGKILL, no clean-up) the first time it sees task `victim`."""

    name = "kill_once"

    def __init__(self, flag: Path, victim: str) -> None:
        self.flag, self.victim = flag, victim

    def run(self, records, ctx):
        for pair in records:
            if pair.query == self.victim and not self.flag.exists():
                self.flag.write_text(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)
            yield pair


@pytest.mark.parametrize("models", [False, True], ids=["task", "actor"])
def test_a_killed_worker_is_retried_and_the_output_does_not_change(cluster, tmp_path, pair_factory, models):
    import ray.cloudpickle

    from ctxdata.pipeline import RunContext

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the stage is defined here, not in ctxdata
    tasks = [[pair_factory(query=f"q{t}-{i}", label="AB"[i % 2]) for i in range(3)] for t in range(6)]
    flag = tmp_path / "killed"
    stages = [KillWorkerOnce(flag, victim="q3-1")]
    flag.write_text("not here")  # the local reference runs in this process: it must not kill it
    local = PairOutput(tmp_path / "local", {"seed": 0}, command="test")
    run_tasks(local, tasks, stages)
    local.finalize(len(tasks), inputs=18, global_ctx=RunContext())
    flag.unlink()
    on_ray = PairOutput(tmp_path / "ray", {"seed": 0}, command="test")
    with make_engine(EngineOptions(engine="ray", workers=2)) as engine:
        run_tasks(on_ray, tasks, stages, engine=engine, models=models)
    on_ray.finalize(len(tasks), inputs=18, global_ctx=RunContext())
    assert flag.read_text() not in ("not here", str(os.getpid()))  # a worker process was killed mid-task
    assert output_bytes(tmp_path / "ray") == output_bytes(tmp_path / "local")


def test_a_killed_driver_resumes_from_the_task_markers(cluster, traces, tmp_path):
    out = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "ctxdata",
        "build-coding",
        "--traces",
        str(traces / "trajs"),
        "--results",
        str(traces / "logs"),
        "--out",
        str(out),
        "--shard-size",
        "1",
        "--engine",
        "ray",
        "--ray-address",
        cluster,
        "-j",
        "2",
        "--max-shortcut",
        "off",
    ]
    env = {**os.environ, "CTXDATA_PROGRESS": "0", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    driver = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(list((out / "_work").glob("task-*.done"))) < 3 and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    driver.kill()
    driver.wait()
    done = len(list((out / "_work").glob("task-*.done")))
    assert done >= 3 and not (out / "report.json").exists(), driver.stderr.read().decode()[-2000:]
    resumed = build_coding(_coding(traces, out, shard_size=1, engine="ray", workers=2))
    clean = build_coding(_coding(traces, tmp_path / "clean", shard_size=1))
    assert resumed["resumed_tasks"] >= done > 0 and resumed["pairs"] == clean["pairs"]
    assert output_bytes(out) == output_bytes(tmp_path / "clean")


def _reject_item(item: int) -> int:
    if item == 2:
        raise ConfigError(f"item {item}: a bad setting found on the worker")
    return item


@pytest.mark.parametrize("models", [False, True], ids=["task", "actor"])
def test_a_ctxdata_error_on_a_worker_stays_one_on_the_driver(cluster, models):
    """The CLI turns a CtxdataError into one clean line; on Ray it must not arrive as some other type."""
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with make_engine(EngineOptions(engine="ray", workers=2)) as engine, pytest.raises(CtxdataError) as raised:
        list(engine.map(_reject_item, [0, 1, 2, 3], models=models))
    assert type(raised.value) is ConfigError and str(raised.value) == "item 2: a bad setting found on the worker"
