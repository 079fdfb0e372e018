import random
import re

from ctxdata.coding.mask import ID_MASK, ISSUE_MASK, ISSUE_WORD_MASK, LINE_MASK, PATCH_MASK, distinctive_words, leaked_lines, mask_context, significant_lines, word_starts
from ctxdata.coding.render import render_trajectory
from ctxdata.coding.store import prepare_context
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
    stored = prepare_context(traj, 10_000)
    assert PATCH_MASK in stored.text and leaked_lines(stored.text, [PATCH])  # diff blocks go first; edits still leak
    text = mask_context(stored.text, [PATCH, OTHER], [traj.id])
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


def test_ids_are_masked_as_whole_words_only():
    text = "10097 django__django-10097 v1.10097 110097 10097. 10097_x (10097)"
    assert mask_context(text, [], ["django__django-10097"]) == f"{ID_MASK} {ID_MASK} v1.10097 110097 {ID_MASK}. 10097_x ({ID_MASK})"


def test_word_starts_agrees_with_the_regex_it_replaces():
    rng = random.Random(0)
    alphabet = ["10097", "1", "0", ".", "_", "a", " ", "\n", "-", "é", "٣"]  # includes a non-ASCII digit
    for _ in range(5000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        for token in ("10097", "1"):
            pattern = re.compile(rf"(?<![\w.]){re.escape(token)}(?!\w)")
            assert word_starts(text, token) == [m.start() for m in pattern.finditer(text)], (text, token)


def test_a_patch_line_at_a_cut_is_masked_whole_not_left_as_a_fragment():
    added = "        r'(?:[^\\s:@/]+(?::[^\\s:@/]*)?@)?'  # user:pass authentication"
    filler = "\n".join(f"line {i:04d} of a long listing" for i in range(400))
    for offset in range(0, 1200, 7):  # slide the answer line across the head/tail cut of the observation
        obs = filler[:offset] + "\n" + added + "\n" + filler[offset:]
        traj = Trajectory(id="t-1", format="synth", source="x", steps=[Step("cat it", "cat pkg/validators.py", obs, 0)], patch=PATCH)
        text = mask_context(prepare_context(traj, 300).text, [PATCH], ["t-1"])
        assert "chars elided" in text
        assert "[^\\s:@/]+" not in text and "user:pass auth" not in text, offset


def test_cuts_fall_on_line_boundaries():
    obs = "\n".join(f"output line {i}" for i in range(1000))
    text = render_trajectory(Trajectory(id="t", format="synth", source="x", steps=[Step("", "ls", obs, 0)]), 256)
    body = text.split("\n")[2:-1]  # between the action and the exit line
    assert all(line.startswith("output line ") or line.startswith("[... ") for line in body)


BASES = """--- a/m.py
+++ b/m.py
@@ -1,4 +1,5 @@
 def rebuild(self):
-    return Model(name=self.name)
+    return Model(name=self.name,
+                 bases=self.bases,
+                 options=dict(self.options))
"""
BASES_OTHER = """--- a/m.py
+++ b/m.py
@@ -1,3 +1,3 @@
 def rebuild(self):
     return Model(name=self.name,
-                 bases=self.bases,
+                 bases=tuple(self.bases),
"""


def test_an_added_line_that_is_also_code_before_either_patch_is_not_masked():
    # One patch adds `bases=self.bases,`, but the other shows it as code the repository already
    # holds (removed there), as it does `return Model(name=self.name,` (unchanged): both agents read it.
    view = "$ cat m.py\n    return Model(name=self.name,\n                 bases=self.bases,\n                 options=dict(self.options))"
    masked = mask_context(view, [BASES, BASES_OTHER], [])
    assert masked.split("\n")[:3] == view.split("\n")[:3]
    assert masked.split("\n")[3] == LINE_MASK  # a line only a fix adds is masked
    assert leaked_lines(masked, [BASES, BASES_OTHER]) == []
    assert mask_context(view, [BASES], []).split("\n")[1:] == [LINE_MASK] * 3  # with one patch alone all three are answer lines


ADD_NONE = "--- a/x.py\n+++ b/x.py\n@@ -1,2 +1,3 @@\n def f():\n+    if value == 1:\n+    return None\n"


def test_a_line_is_masked_where_it_stands_as_code_not_where_it_matches_incidentally():
    text = "\n".join([
        "## Step 1",
        "THOUGHT: The branch should return None here, not raise.",  # prose that uses the same words
        "I will add `return None` after the check.",  # quoted in a thought: the agent states the fix
        "$ grep -n 'elif value == 1:' x.py",  # inside a longer keyword: `elif` is not `if`
        "3:    elif value == 1:",
        "(exit 0)",
        "## Step 2",
        "THOUGHT: return None",  # a thought line that is the line itself
        "$ sed -i '2a\\    return None' x.py",  # an edit command: code, masked
        "(exit 0)",
    ])
    lines = mask_context(text, [ADD_NONE], []).split("\n")
    assert lines[1] == "THOUGHT: The branch should return None here, not raise."
    assert lines[2] == LINE_MASK
    assert lines[3:5] == ["$ grep -n 'elif value == 1:' x.py", "3:    elif value == 1:"]
    assert lines[7] == "THOUGHT: " + LINE_MASK  # the thought keeps its prefix
    assert lines[8] == LINE_MASK
    # the leak check agrees with masking: it flags quoted and code occurrences, not the prose one
    assert leaked_lines(text, [ADD_NONE]) == ["return None"]
    assert leaked_lines("THOUGHT: The branch should return None here.\n3:    elif value == 1:", [ADD_NONE]) == []


ISSUE_A = """Point distance ignores the third dimension when the points are zipped together

```python
>>> Point(2, 0).distance(Point(1, 0, 2))
1
```
The 3rd dimension is being ignored when the Points are zipped together, so `sqrt((2-1)**2 + (0-0)**2)` is computed.
"""
ISSUE_B = "Point.midpoint returns a float for integer coordinates; it should keep `Rational(1, 2)` exact values."


def test_restatements_of_both_issues_are_masked_in_both_contexts_the_same_way():
    anchor = "\n".join([
        "## Step 1",
        "THOUGHT: The issue says the 3rd dimension is being ignored when the Points are zipped together, so I look.",
        "$ python -c 'print(Point(2, 0).distance(Point(1, 0, 2)))'",
        "1",
        "(exit 0)",
    ])
    confounder = "## Step 1\nTHOUGHT: midpoint should keep `Rational(1, 2)` exact values, so I check.\n$ grep -n midpoint point.py\n(exit 0)"
    masked = [mask_context(t, [], [], [ISSUE_A, ISSUE_B], "spans") for t in (anchor, confounder)]
    assert "is being ignored when the Points are zipped together" not in masked[0] and ISSUE_MASK in masked[0]
    assert masked[0].split("\n")[1:4] == [f"THOUGHT: The issue says {ISSUE_MASK} I look.", ISSUE_MASK, "1"]  # a span, a quoted snippet
    assert "Rational(1, 2)" not in masked[1] and "grep -n midpoint point.py" in masked[1]
    # the rule is symmetric: the order of the issues does not matter, and neither does which side is the anchor
    assert [mask_context(t, [], [], [ISSUE_B, ISSUE_A], "spans") for t in (anchor, confounder)] == masked
    # without the issues nothing is masked, so the assertions above can fail
    assert mask_context(anchor, [], []) == anchor


def test_code_an_issue_quotes_that_the_repository_already_holds_is_not_masked():
    issue = "The loop `for a, b in zip(self.args, p.args):` drops a coordinate."
    patch = "--- a/p.py\n+++ b/p.py\n@@ -1,2 +1,2 @@\n def distance(self, p):\n-    for a, b in zip(self.args, p.args):\n+    for a, b in zip_longest(self.args, p.args, fillvalue=0):\n"
    view = "$ cat -n p.py\n     1\tdef distance(self, p):\n     2\t    for a, b in zip(self.args, p.args):"
    assert mask_context(view, [patch], [], [issue], "spans") == view
    assert mask_context(view, [], [], [issue], "spans").endswith(ISSUE_MASK)


def test_words_only_one_issue_uses_are_masked_everywhere_in_both_contexts():
    words = distinctive_words([ISSUE_A, ISSUE_B])
    assert {"distance", "dimension", "zipped", "midpoint", "rational"} <= set(words)
    assert "point" not in words  # both issues use it: it tells them apart no more than it tells the contexts apart
    assert not {"the", "when", "should", "for", "none"} & set(words)  # plain words name no topic
    anchor = "## Step 1\nTHOUGHT: Distance drops the last dimension.\n$ grep -n 'def distance' point.py\n41:    def distance(self, p):"
    confounder = "## Step 1\nTHOUGHT: midpoint loses Rational precision.\n$ grep -n midpoint point.py\n50:    def midpoint(self, p):"
    masked = [mask_context(t, [], [], [ISSUE_A, ISSUE_B]) for t in (anchor, confounder)]
    assert masked[0].split("\n")[1:] == [f"THOUGHT: {W} drops the last {W}.", f"$ grep -n 'def {W}' point.py", f"41:    def {W}(self, p):"]
    assert masked[1].split("\n")[1:] == [f"THOUGHT: {W} loses {W} precision.", f"$ grep -n {W} point.py", f"50:    def {W}(self, p):"]
    assert [mask_context(t, [], [], [ISSUE_B, ISSUE_A]) for t in (anchor, confounder)] == masked
    # a mask marker's own words are never masked inside it
    assert "patch" not in distinctive_words(["the patch line is masked", "an unrelated report"])


W = ISSUE_WORD_MASK


def test_a_word_both_contexts_use_alike_is_left_alone():
    from ctxdata.coding.mask import mask_pair

    issues = ["The django admin drops the query string", "Points lose a coordinate in distance"]
    texts = ["$ python django/admin.py\ndjango django django query string", "$ python django/x.py\ndjango django distance"]
    a, b = mask_pair(texts, [], [], issues)
    assert "django" in a and "django" in b  # four and three uses: alike, so no topic cue
    assert "query" not in a and "distance" not in b and ISSUE_WORD_MASK in a and ISSUE_WORD_MASK in b
    assert "django" not in mask_pair(["django", "django django django django"], [], [], issues)[1]  # 1 vs 4 uses: a cue
