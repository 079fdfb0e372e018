"""parse_patch: files, hunks, changed lines and the innermost enclosing function, on real SWE-bench
patches and hand-written edge cases."""

from __future__ import annotations

import json

import pytest

from ctxdata.coding.patch import parse_patch

MINI = "mini-swe-agent-swebench/trajs"


def _submission(shared_traces, iid: str) -> str:
    return json.loads((shared_traces / MINI / iid / f"{iid}.traj.json").read_text())["info"]["submission"]


@pytest.mark.parametrize(
    "ids, file, scope",
    [
        (["psf__requests-1724", "psf__requests-2931", "psf__requests-5414"], "requests/models.py", "PreparedRequest"),
        (["django__django-10097", "django__django-13212", "django__django-14349"], "django/core/validators.py", "URLValidator"),
        (["matplotlib__matplotlib-20826", "matplotlib__matplotlib-24177", "matplotlib__matplotlib-24627", "matplotlib__matplotlib-26208"], "lib/matplotlib/axes/_base.py", "_AxesBase"),
    ],
)
def test_real_sibling_groups_share_file_and_class(shared_traces, ids, file, scope):
    for iid in ids:
        info = parse_patch(_submission(shared_traces, iid))
        assert file in info.files, iid
        scopes = {fn.split(".")[0] for f, fn in info.functions if f == file}
        assert scope in scopes, (iid, info.functions)


def test_real_patches_name_methods_when_the_hunk_shows_them(shared_traces):
    assert ("django/core/validators.py", "URLValidator.__call__") in parse_patch(_submission(shared_traces, "django__django-13212")).functions
    assert parse_patch(_submission(shared_traces, "astropy__astropy-7606")).functions == [("astropy/units/core.py", "UnrecognizedUnit.__eq__")]
    info = parse_patch(_submission(shared_traces, "django__django-10097"))
    assert info.added_lines == ["        r'(?:[^\\s:@/]+(?::[^\\s:@/]*)?@)?'  # user:pass authentication"]
    assert info.removed_lines == ["        r'(?:\\S+(?::\\S*)?@)?'  # user:pass authentication"]
    # a module-level change (a regex constant) has no enclosing function
    assert parse_patch(_submission(shared_traces, "django__django-10999")).functions == []


NESTED = """\
diff --git a/pkg/mod.py b/pkg/mod.py
index 1111111..2222222 100644
--- a/pkg/mod.py
+++ b/pkg/mod.py
@@ -10,9 +10,9 @@ class Outer:
     x = 1

     class Inner(Base):
         def method(self, a):
             if a:
-                return 1
+                return 2
             return 0
"""


def test_hunk_inside_nested_method():
    info = parse_patch(NESTED)
    assert info.functions == [("pkg/mod.py", "Outer.Inner.method")]
    assert info.hunks[0].function == "Outer.Inner.method" and info.hunks[0].old_start == 10


def test_hunk_adding_a_new_def_and_class_only_header():
    diff = """\
--- a/a.py
+++ b/a.py
@@ -20,6 +20,10 @@ class Validator(RegexValidator):
         self.flags = flags

+    def __eq__(self, other):
+        return isinstance(other, Validator)
+
     regex = r'abc'
@@ -40,3 +44,3 @@ class Validator(RegexValidator):
         value = value.strip()
-        return value
+        return value.lower()
"""
    info = parse_patch(diff)
    assert [h.function for h in info.hunks] == ["Validator.__eq__", "Validator"]
    assert info.functions == [("a.py", "Validator.__eq__"), ("a.py", "Validator")]
    assert info.files == ["a.py"] and len(info.added_lines) == 4 and info.removed_lines == ["        return value"]


def test_python_driver_header_then_sibling_method_in_hunk():
    diff = """\
--- a/m.py
+++ b/m.py
@@ -5,7 +5,7 @@ def __init__(self, threshold=10):
         self.t = threshold

     def run(self, items):
-        return items
+        return list(items)
"""
    assert parse_patch(diff).functions == [("m.py", "run")]


def test_multiple_files_rename_binary_new_and_deleted():
    diff = """\
diff --git a/src/one.py b/src/one.py
--- a/src/one.py
+++ b/src/one.py
@@ -1,2 +1,2 @@ def first():
-    return 1
+    return 2
diff --git a/old/name.py b/new/name.py
similarity index 95%
rename from old/name.py
rename to new/name.py
--- a/old/name.py
+++ b/new/name.py
@@ -3 +3 @@ def helper():
-    pass
+    return None
diff --git a/img/logo.png b/img/logo.png
index 3333333..4444444 100644
Binary files a/img/logo.png and b/img/logo.png differ
diff --git a/added.py b/added.py
new file mode 100644
--- /dev/null
+++ b/added.py
@@ -0,0 +1,2 @@
+def fresh():
+    return 0
diff --git a/gone.py b/gone.py
deleted file mode 100644
--- a/gone.py
+++ /dev/null
@@ -1 +0,0 @@
-x = 1
"""
    info = parse_patch(diff)
    assert info.files == ["src/one.py", "new/name.py", "img/logo.png", "added.py", "gone.py"]
    assert info.renamed == [("old/name.py", "new/name.py")] and info.binary_files == ["img/logo.png"]
    assert info.functions == [("src/one.py", "first"), ("new/name.py", "helper"), ("added.py", "fresh")]
    assert len(info.hunks) == 4 and info.removed_lines[-1] == "x = 1"


def test_pure_rename_without_hunks():
    diff = "diff --git a/a/x.py b/b/y.py\nsimilarity index 100%\nrename from a/x.py\nrename to b/y.py\n"
    info = parse_patch(diff)
    assert info.files == ["b/y.py"] and info.hunks == [] and info.renamed == [("a/x.py", "b/y.py")]


def test_generic_languages():
    go = """\
--- a/server.go
+++ b/server.go
@@ -30,6 +30,6 @@ import (
 func (s *Server) Handle(w http.ResponseWriter, r *http.Request) {
 	if r == nil {
-		return
+		panic("nil request")
 	}
"""
    js = """\
--- a/lib/app.js
+++ b/lib/app.js
@@ -1,5 +1,5 @@
 export async function loadConfig(path) {
   const data = await read(path);
-  return JSON.parse(data);
+  return JSON.parse(data || "{}");
 }
"""
    java = """\
--- a/src/Main.java
+++ b/src/Main.java
@@ -8,5 +8,5 @@ public class Main {
     public static int compute(int a, int b) {
         if (a > b) {
-            return a;
+            return b;
         }
"""
    assert parse_patch(go).functions == [("server.go", "Server.Handle")]
    assert parse_patch(js).functions == [("lib/app.js", "loadConfig")]
    assert parse_patch(java).functions == [("src/Main.java", "Main.compute")]


@pytest.mark.parametrize("bad", ["", "not a diff at all", "@@ -1,3 +1,3 @@\n-x\n", "--- a/x.py\n+++ b/x.py\n@@ -1,10 +1,10 @@ def f():\n-a\n", "--- a/x.py\n+++ b/x.py\n@@ garbage @@\n-a\n+b\n", None, "diff --git a/x b/x\n\x00\x01"])
def test_malformed_diffs_never_raise(bad):
    info = parse_patch(bad)
    assert isinstance(info.files, list) and isinstance(info.functions, list)


def test_truncated_hunk_keeps_what_it_saw():
    info = parse_patch("--- a/x.py\n+++ b/x.py\n@@ -1,10 +1,10 @@ def f():\n-    a\n+    b\n")
    assert info.files == ["x.py"] and info.removed_lines == ["    a"] and info.added_lines == ["    b"] and info.functions == [("x.py", "f")]
