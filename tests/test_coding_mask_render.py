from ctxdata.coding.mask import LINE_MASK, PATCH_MASK, leaked_lines, mask_trajectory, significant_lines
from ctxdata.coding.render import render_trajectory
from ctxdata.coding.trajectory import Step, Trajectory

PATCH = """diff --git a/pkg/validators.py b/pkg/validators.py
index 1111111..2222222 100644
--- a/pkg/validators.py
+++ b/pkg/validators.py
@@ -10,7 +10,7 @@ class URLValidator(RegexValidator):
     regex = compile(
-        r'(?:\\S+(?::\\S*)?@)?'  # user:pass authentication
+        r'(?:[^\\s:@/]+(?::[^\\s:@/]*)?@)?'  # user:pass authentication
     )
+    return None
"""
OTHER = PATCH.replace("[^\\s:@/]+", "[^\\s@]+")


def _traj():
    added = "        r'(?:[^\\s:@/]+(?::[^\\s:@/]*)?@)?'  # user:pass authentication"
    return Trajectory(id="django__django-10097", format="synth", source="x", repo="django/django", issue="fix", steps=[
        Step("look at it", "grep -n regex pkg/validators.py", "12:  regex = compile(", 0),
        Step("edit with sed", f"sed -i 's/old/new/' pkg/validators.py && cat <<'EOF' > fix.py\n{added}\nEOF", "", 0),
        Step("show the file", "cat pkg/validators.py", f"class URLValidator:\n{added}\n    pass", 0),
        Step("see my diff", "git diff", PATCH, 0),
        Step("ticket", "echo done", "see https://code.djangoproject.com/ticket/10097 and django__django-10097", 0),
        Step("submit", "echo MINI_SWE_AGENT_FINAL_OUTPUT && git diff --cached", "MINI_SWE_AGENT_FINAL_OUTPUT\n" + PATCH, 0),
    ], patch=PATCH)


def test_significant_lines_skip_trivial_added_lines():
    lines = significant_lines(PATCH)
    assert any("user:pass" in line for line in lines)
    assert "return None" in lines  # 10 non-space characters: significant
    trivial = significant_lines("--- a/x.py\n+++ b/x.py\n@@ -1 +1,4 @@\n+    )\n+    pass\n+        }];\n+x = compute_total(a)\n")
    assert trivial == ["x = compute_total(a)"]


def test_masking_removes_every_significant_added_line_of_both_patches():
    traj = _traj()
    masked = mask_trajectory(traj, [PATCH, OTHER], [traj.id])
    text = render_trajectory(masked, 10_000)
    assert leaked_lines(text, [PATCH, OTHER]) == []
    assert PATCH_MASK in text and LINE_MASK in text
    assert "django__django-10097" not in text and "10097" not in text
    assert "grep -n regex pkg/validators.py" in text  # the rest of the context survives
    # the unmasked render does leak, so the check above can fail
    assert leaked_lines(render_trajectory(traj, 10_000), [PATCH])


def test_render_format_and_budget():
    traj = _traj()
    text = render_trajectory(traj, 10_000)
    assert text.startswith("## Step 1\nTHOUGHT: look at it\n$ grep -n regex")
    assert text.count("## Step ") == 6 and "(exit 0)" in text
    long = Trajectory(id="t", format="synth", source="x", steps=[Step("t" * 50, f"cmd {i}", "o" * 5000, i % 2) for i in range(60)])
    for budget in (256, 1024, 4096):
        rendered = render_trajectory(long, budget)
        assert len(rendered) <= budget * 4 + 200
        assert "## Step 1\n" in rendered and "## Step 60\n" in rendered
    assert "steps elided" in render_trajectory(long, 256)
    assert "chars elided" in render_trajectory(long, 4096)


def test_short_observations_stay_whole_when_long_ones_are_cut():
    steps = [Step("", f"cmd{i}", ("short output %d" % i) if i % 2 else "L" * 20000, 0) for i in range(30)]
    text = render_trajectory(Trajectory(id="t", format="synth", source="x", steps=steps), 2048)
    assert all(f"short output {i}" in text for i in range(1, 30, 2))
    assert "chars elided" in text and len(text) <= 2048 * 4 + 200


def _mask_field_by_field(traj, patches, ids):
    """The reference: each text masked on its own (what mask_trajectory's joined pass must equal)."""
    from ctxdata.coding.mask import mask_diff_blocks, mask_ids, mask_lines

    needles = sorted({line for p in patches for line in significant_lines(p)}, key=len, reverse=True)
    clean = lambda t: mask_ids(mask_lines(mask_diff_blocks(t), needles), ids)  # noqa: E731
    return [(clean(s.thought), clean(s.action), clean(s.observation)) for s in traj.steps]


def test_joined_masking_equals_masking_each_field():
    traj = _traj()
    # Ids and issue numbers at field edges, inside longer numbers and versions, and a text holding
    # the separator character itself (which must fall back to field-by-field masking).
    traj.steps.append(Step("10097", "django__django-10097", "v1.10097 110097 10097.", 1))
    for steps in (traj.steps, traj.steps + [Step("a\x1eb", "", "\n\x1e\n10097", 0)]):
        t = Trajectory(id=traj.id, format="synth", source="x", repo=traj.repo, issue="fix", steps=steps, patch=PATCH)
        got = mask_trajectory(t, [PATCH, OTHER], [t.id, "astropy__astropy-7606"])
        assert [(s.thought, s.action, s.observation) for s in got.steps] == _mask_field_by_field(t, [PATCH, OTHER], [t.id, "astropy__astropy-7606"])
        assert got.steps[-1 if steps is traj.steps else -2].observation == "v1.10097 110097 [INSTANCE]."
