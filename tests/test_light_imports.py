"""`import ctxdata` and `ctxdata --help` must not import heavy ML libraries."""

import json
import subprocess
import sys

HEAVY = ["torch", "transformers", "faiss", "open_clip", "diffusers", "trl", "sentence_transformers", "cv2", "datasets", "ray"]

PROBE = """
import json, sys
{body}
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


def _loaded(body: str) -> list[str]:
    code = PROBE.format(body=body, heavy=HEAVY)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_ctxdata_is_light():
    assert _loaded("import ctxdata, ctxdata.schema, ctxdata.io, ctxdata.pipeline") == []


def test_cli_help_is_light():
    body = (
        "import sys\n"
        "from ctxdata.cli.main import app\n"
        "from typer.testing import CliRunner\n"
        "r = CliRunner().invoke(app, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "for cmd in [c for c in app.registered_commands]: pass\n"
    )
    assert _loaded(body) == []


def test_every_subcommand_help_is_light():
    from typer.main import get_command

    from ctxdata.cli.main import app

    names = list(get_command(app).commands)
    body = (
        "from ctxdata.cli.main import app\n"
        "from typer.testing import CliRunner\n"
        f"for name in {names!r}:\n"
        "    r = CliRunner().invoke(app, name.split() + ['--help'])\n"
        "    assert r.exit_code == 0, (name, r.output)\n"
    )
    assert _loaded(body) == []


# Every command the README documents; wired explicitly in cli/main.py, so losing one fails here.
COMMANDS = ["build-coding", "build-vision", "synth", "inspect", "view", "export", "push", "train", "probe", "quickstart", "audit"]


def test_every_documented_command_is_registered():
    from typer.main import get_command

    from ctxdata.cli.main import app

    group = get_command(app)
    missing = [name for name in COMMANDS if name not in group.commands]
    assert not missing, f"commands missing from ctxdata.cli.main: {missing}"
    assert sorted(group.commands["synth"].commands) == ["task", "traces"]
