import pytest

from ctxdata.coding.cascade import CascadeConfig, DropDuplicateRuns, Signature, SignTrajectories, mine_candidates
from ctxdata.coding.similarity import minhash
from ctxdata.coding.trajectory import Outcome, Step, Trajectory
from ctxdata.errors import ConfigError
from ctxdata.pipeline import RunContext, run_stages


def make_sig(
    id,
    repo="o/r",
    files=("a.py",),
    functions=("a.py::f",),
    issue="fix the crash in f when x is none",
    commit="",
    resolved=None,
    patch=None,
    run="",
):
    return Signature(
        id=id,
        location=f"/x/{id}/{run}",
        repo=repo,
        commit=commit,
        files=tuple(files),
        functions=tuple(functions),
        issue_minhash=minhash(issue),
        patch_digest=patch or id,
        resolved=resolved,
        run=run,
    )


def test_pairs_come_from_the_deepest_shared_level():
    sigs = [
        make_sig("f1", functions=("a.py::f",), issue="alpha beta gamma delta epsilon"),
        make_sig("f2", functions=("a.py::f",), issue="one two three four five six"),
        make_sig("g1", functions=("a.py::g",), issue="zeta eta theta iota kappa"),
        make_sig("h1", files=("b.py",), functions=("b.py::h",), issue="lambda mu nu xi omicron"),
        make_sig("h2", files=("b.py",), functions=("b.py::k",), issue="pi rho sigma tau upsilon"),
    ]
    cands = mine_candidates(sigs, CascadeConfig(levels=("repo", "file", "function", "issue")))
    levels = {frozenset((c.anchor_id, c.confounder_id)): c.level for c in cands}
    assert levels == {frozenset({"f1", "f2"}): "function", frozenset({"h1", "h2"}): "file"}


def test_related_issues_reach_the_issue_level_and_threshold_matters():
    issue = "the url validator accepts passwords with a slash in the user field and should reject them"
    sigs = [make_sig("a", issue=issue), make_sig("b", issue=issue + " too")]
    assert mine_candidates(sigs, CascadeConfig())[0].level == "issue"
    assert mine_candidates(sigs, CascadeConfig(issue_threshold=1.0))[0].level == "function"
    assert mine_candidates(sigs, CascadeConfig(levels=("repo", "file", "function")))[0].level == "function"


def test_min_level_and_unknown_commit():
    sigs = [make_sig("a", files=("a.py",), functions=()), make_sig("b", files=("b.py",), functions=())]
    assert mine_candidates(sigs, CascadeConfig()) == []  # only share the repo: below the default min level
    cands = mine_candidates(sigs, CascadeConfig(min_level="repo"))
    assert [c.level for c in cands] == ["repo"]  # "commit" is not claimed when commits are unknown
    known = [
        make_sig("a", files=("a.py",), functions=(), commit="abc"),
        make_sig("b", files=("b.py",), functions=(), commit="abc"),
    ]
    assert [c.level for c in mine_candidates(known, CascadeConfig(min_level="repo"))] == ["commit"]


def test_identical_patches_and_different_repos_never_pair():
    sigs = [make_sig("a", patch="same"), make_sig("b", patch="same"), make_sig("c", repo="o/other")]
    assert mine_candidates(sigs, CascadeConfig()) == []


def test_each_trajectory_is_used_at_most_the_cap_and_pairs_are_unique():
    sigs = [make_sig(f"t{i}") for i in range(40)]
    for cap in (1, 3):
        cands = mine_candidates(sigs, CascadeConfig(max_pairs_per_trajectory=cap))
        uses = {}
        for c in cands:
            for t in (c.anchor_id, c.confounder_id):
                uses[t] = uses.get(t, 0) + 1
        assert max(uses.values()) <= cap
        assert len({frozenset((c.anchor_id, c.confounder_id)) for c in cands}) == len(cands)
    assert len(mine_candidates(sigs, CascadeConfig(max_pairs_per_trajectory=1))) == 20


def test_labels_balanced_and_seeded():
    sigs = [make_sig(f"t{i}", functions=(f"a.py::f{i % 10}",)) for i in range(200)]
    a = mine_candidates(sigs, CascadeConfig(seed=1))
    b = mine_candidates(sigs, CascadeConfig(seed=1))
    c = mine_candidates(sigs, CascadeConfig(seed=2))
    labels = [x.label for x in a]
    assert abs(labels.count("A") - labels.count("B")) <= 1
    assert [(x.anchor_id, x.confounder_id, x.label) for x in a] == [(x.anchor_id, x.confounder_id, x.label) for x in b]
    assert [x.label for x in a] != [x.label for x in c]


def test_resolved_trajectory_is_preferred_as_anchor():
    sigs = [make_sig("bad", resolved=False), make_sig("good", resolved=True)]
    assert mine_candidates(sigs, CascadeConfig())[0].anchor_id == "good"


def test_cost_is_bounded_by_the_window_in_one_huge_block(monkeypatch):
    import ctxdata.coding.cascade as cascade

    compared = {"n": 0}
    real = cascade._window_similarities

    def counting(members, window):
        sims = real(members, window)
        compared["n"] += sum(len(s) for s in sims)
        return sims

    monkeypatch.setattr(cascade, "_window_similarities", counting)
    sigs = [make_sig(f"t{i}") for i in range(2000)]
    mine_candidates(sigs, CascadeConfig(window=4, levels=("repo", "function")))
    # one block of 2000 at each of 2 levels: ~2000*4 comparisons per level, never 2000^2/2
    assert 2000 <= compared["n"] <= 2 * 2000 * 4


def test_bad_configs_are_rejected_with_a_helpful_message():
    with pytest.raises(ConfigError, match="valid levels"):
        CascadeConfig(levels=("repo", "module"))
    with pytest.raises(ConfigError, match="start at `repo`"):
        CascadeConfig(levels=("file", "function"))
    with pytest.raises(ConfigError, match="ordered"):
        CascadeConfig(levels=("repo", "function", "file"))
    with pytest.raises(ConfigError, match="min-level"):
        CascadeConfig(levels=("repo", "function"), min_level="file")
    with pytest.raises(ConfigError, match="ordered"):
        CascadeConfig(levels=("repo", "instance", "issue"))
    assert CascadeConfig().levels[-1] == "instance" and CascadeConfig(min_level="instance").min_level == "instance"


PATCH = "diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1,2 +1,2 @@ def f():\n-    return 1\n+    return 2\n"
OTHER_PATCH = "diff --git a/b.py b/b.py\n--- a/b.py\n+++ b/b.py\n@@ -1,2 +1,2 @@ def g():\n-    x = 1\n+    x = 3\n"


def make_run(id="o__r-1001", source="s", patch=PATCH, command="grep -n f a.py", resolved=None):
    steps = [Step("look", command, "a.py:1:def f():", 0), Step("fix it", "sed -i s/1/2/ a.py", "", 0)]
    return Trajectory(
        id=id,
        format="synth",
        source=source,
        repo="o/r",
        issue="f returns 1, it should return 2",
        patch=patch,
        steps=steps,
        outcome=Outcome(resolved=resolved),
    )


def test_sign_stage_drops_unusable_trajectories_with_reasons():
    trajs = [
        Trajectory(
            id="ok", format="synth", source="s1", repo="o/r", issue="bug", patch=PATCH, outcome=Outcome(resolved=True)
        ),
        Trajectory(id="norepo", format="synth", source="s2", issue="bug", patch=PATCH),
        Trajectory(id="nopatch", format="synth", source="s3", repo="o/r", issue="bug"),
        Trajectory(id="noissue", format="synth", source="s4", repo="o/r", patch=PATCH),
        Trajectory(id="garbage", format="synth", source="s5", repo="o/r", issue="bug", patch="not a diff"),
        Trajectory(
            id="ok", format="synth", source="s6", repo="o/r", issue="bug", patch=PATCH
        ),  # the same run, read twice
    ]
    ctx = RunContext()
    sigs = list(run_stages([SignTrajectories(), DropDuplicateRuns()], trajs, ctx))
    assert [s.id for s in sigs] == ["ok"] and sigs[0].location == "s1"
    assert sigs[0].files == ("a.py",) and sigs[0].functions == ("a.py::f",)
    assert ctx.stats["sign"].dropped == {"no_repo": 1, "no_patch": 1, "no_issue": 1, "unparsable_patch": 1}
    assert ctx.stats["dedupe"].dropped == {"duplicate_run": 1}
    assert {r.kind for r in ctx.rejects} == {"record"}
    [dup] = [r for r in ctx.rejects if r.reason == "duplicate_run"]
    assert dup.source == "s6" and "s1" in dup.detail


def test_runs_of_one_task_are_kept_apart_and_only_byte_duplicates_dropped():
    runs = [
        make_run(source="r1"),
        make_run(source="r2", command="grep -rn f ."),
        make_run(source="r1-copy"),
        make_run(source="r3", patch=OTHER_PATCH),
    ]
    ctx = RunContext()
    sigs = list(run_stages([SignTrajectories(), DropDuplicateRuns()], runs, ctx))
    assert [s.location for s in sigs] == ["r1", "r2", "r3"]  # r2 differs from r1 in one command: another run
    assert len({s.run for s in sigs}) == 3 and all(s.id == "o__r-1001" for s in sigs)
    assert ctx.stats["dedupe"].dropped == {"duplicate_run": 1} and ctx.rejects[0].source == "r1-copy"


def test_two_runs_of_one_task_with_different_patches_pair_at_the_instance_level():
    sigs = list(
        run_stages(
            [SignTrajectories()],
            [make_run(source="r1", resolved=False), make_run(source="r2", patch=OTHER_PATCH, resolved=True)],
            RunContext(),
        )
    )
    [cand] = mine_candidates(sigs, CascadeConfig())
    assert cand.level == "instance" and cand.anchor_id == cand.confounder_id == "o__r-1001"
    assert cand.anchor_location == "r2"  # the resolved run is the anchor
    assert cand.meta["anchor_run"] == sigs[1].run and cand.meta["confounder_run"] == sigs[0].run
    assert cand.source == f"o__r-1001@{sigs[1].run}|o__r-1001@{sigs[0].run}"
    # without the level, runs of one task do not pair at all, not even at `repo`
    assert mine_candidates(sigs, CascadeConfig(levels=("repo", "file", "function", "issue"), min_level="repo")) == []


def test_runs_with_the_same_patch_do_not_pair():
    runs = [make_run(source="r1"), make_run(source="r2", command="grep -rn f .")]
    sigs = list(run_stages([SignTrajectories(), DropDuplicateRuns()], runs, RunContext()))
    assert len(sigs) == 2 and mine_candidates(sigs, CascadeConfig(min_level="repo")) == []


def test_instance_pairs_come_first_and_leftover_runs_pair_with_siblings():
    # task t1 has three runs with different patches, sibling task t2 one run; all touch a.py::f
    sigs = [make_sig("t1", run=f"r{k}", patch=f"p{k}") for k in range(3)] + [make_sig("t2", run="r9", patch="q")]
    cands = mine_candidates(sigs, CascadeConfig(levels=("repo", "file", "function", "instance")))
    assert sorted(c.level for c in cands) == ["function", "instance"]
    [inst] = [c for c in cands if c.level == "instance"]
    [func] = [c for c in cands if c.level == "function"]
    assert inst.anchor_id == inst.confounder_id == "t1"
    assert {func.anchor_id, func.confounder_id} == {"t1", "t2"}
    # a task's runs, several per task, never pair at a coarser level with each other
    many = [make_sig("t1", run=f"r{k}", patch=f"p{k}") for k in range(6)]
    assert {c.level for c in mine_candidates(many, CascadeConfig(max_pairs_per_trajectory=3))} == {"instance"}
    assert mine_candidates(many, CascadeConfig(levels=("repo", "file", "function", "issue"))) == []


def test_the_most_confusable_sibling_is_chosen_by_issue_and_context_similarity():
    from ctxdata.coding.similarity import line_minhash

    shared = "\n".join(f"$ sed -n {i},{i + 20}p a.py" for i in range(0, 400, 20))
    contexts = {"a": shared + "\n$ python repro.py", "b": "$ ls\n$ cat README", "c": shared + "\n$ pytest -q", "d": "$ pwd\n$ git log"}
    sigs = [make_sig(k, issue=f"unrelated issue number {k} words") for k in contexts]
    for sig in sigs:
        sig.context_minhash = line_minhash(contexts[sig.id])
    for seed in range(5):  # whatever the seeded order, the two runs that read alike pair up
        pairs = {frozenset((c.anchor_id, c.confounder_id)) for c in mine_candidates(sigs, CascadeConfig(seed=seed))}
        assert frozenset({"a", "c"}) in pairs, seed
    # without stored contexts the choice falls back to issue similarity, then to the ids
    for sig in sigs:
        sig.context_minhash = None
    assert frozenset({"a", "c"}) not in {frozenset((c.anchor_id, c.confounder_id)) for c in mine_candidates(sigs, CascadeConfig(seed=0))}
