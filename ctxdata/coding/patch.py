"""Parse a unified diff into files, hunks and the function each hunk changes.

    info = parse_patch(traj.patch)
    info.functions   # [("django/core/validators.py", "URLValidator.__call__"), ...]

The enclosing function of a hunk is found from the hunk header context (`@@ ... @@ class Foo:`,
which git often fills with the enclosing class only) PLUS the `def`/`class` lines inside the hunk
and their indentation, so a change in a method below a visible `def` gets `Class.method`. Python
files use Python rules; other languages use a generic table of `function`/`func`/`fn`/method
signatures with the same indentation stack. Malformed input gives a partial PatchInfo, never an
exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@ ?(.*)$")
_PY_DEF = re.compile(r"^([ \t]*)(?:async[ \t]+)?(def|class)[ \t]+([A-Za-z_]\w*)[ \t]*(?:\(([ \t]*\w*))?")
_GENERIC_DEFS = [
    re.compile(r"^([ \t]*)func[ \t]+(?:\([ \t]*\w*[ \t]*\*?([A-Za-z_]\w*)[^)]*\)[ \t]*)?([A-Za-z_]\w*)"),  # Go (receiver.Name)
    re.compile(r"^([ \t]*)(?:export[ \t]+)?(?:default[ \t]+)?(?:async[ \t]+)?function\b[ \t]*\*?[ \t]*([A-Za-z_$][\w$]*)"),  # JS
    re.compile(r"^([ \t]*)(?:pub(?:\([^)]*\))?[ \t]+)?(?:async[ \t]+)?(?:unsafe[ \t]+)?fn[ \t]+([A-Za-z_]\w*)"),  # Rust
    re.compile(r"^([ \t]*)(?:export[ \t]+)?(?:(?:public|private|protected|internal|abstract|final|static|sealed|partial)[ \t]+)*(?:class|interface|struct|enum|trait|impl|namespace|object)[ \t]+([A-Za-z_]\w*)"),
    re.compile(r"^([ \t]*)(?:export[ \t]+)?(?:const|let|var)[ \t]+([A-Za-z_$][\w$]*)[ \t]*=[ \t]*(?:async[ \t]*)?(?:function\b|\([^)]*\)[ \t]*=>|[A-Za-z_$][\w$]*[ \t]*=>)"),
    # C/C++/Java/C#/JS-method: `[modifiers] [type] name(args) {` but not control flow or calls
    re.compile(r"^([ \t]*)(?:[\w<>\[\],.*&:~]+[ \t]+)*?[*&]*([A-Za-z_~][\w:~]*)[ \t]*\([^;]*\)?[ \t]*(?:const[ \t]*)?(?:throws[ \t][\w., ]+)?\{?[ \t]*$"),
]
_NOT_FUNCTIONS = {"if", "for", "while", "switch", "return", "catch", "else", "new", "sizeof", "do", "try", "elif", "with", "case", "throw", "await", "yield", "typeof", "delete"}
_SOURCE_PREFIXES = ("a/", "b/", "i/", "w/", "c/", "o/")


@dataclass
class Hunk:
    """One `@@` hunk: where it is, what it adds/removes, and the function it changes."""

    file: str
    header: str  # the full `@@ -a,b +c,d @@ context` line
    old_start: int = 0
    new_start: int = 0
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)  # the context lines around the change
    function: str = ""  # innermost enclosing def/class of the first change ("" = module level)
    functions: list[str] = field(default_factory=list)  # one per separate change block, deduplicated


@dataclass
class PatchInfo:
    """A parsed unified diff."""

    files: list[str] = field(default_factory=list)  # new-side paths (old side for deletions)
    hunks: list[Hunk] = field(default_factory=list)
    functions: list[tuple[str, str]] = field(default_factory=list)  # (file, qualname), in order, deduplicated
    added_lines: list[str] = field(default_factory=list)
    removed_lines: list[str] = field(default_factory=list)
    unchanged_lines: list[str] = field(default_factory=list)  # context lines of the hunks
    binary_files: list[str] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)  # (old path, new path)


def _strip_prefix(path: str) -> str:
    path = path.strip()
    if path.startswith('"') and path.endswith('"') and len(path) >= 2:
        path = path[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape").encode("latin-1", "replace").decode("utf-8", "replace")
    path = path.split("\t", 1)[0]
    return path[2:] if path.startswith(_SOURCE_PREFIXES) else path


def _git_header_paths(line: str) -> tuple[str, str]:
    """`diff --git a/x b/y` -> (x, y); handles spaces when both sides name the same path."""
    rest = line[len("diff --git ") :]
    if rest.startswith('"'):
        end = rest.find('"', 1)
        return _strip_prefix(rest[: end + 1]), _strip_prefix(rest[end + 1 :])
    half = (len(rest) - 1) // 2
    if rest[half] == " " and rest[2:half] == rest[half + 3 :]:
        return _strip_prefix(rest[:half]), _strip_prefix(rest[half + 1 :])
    a, _, b = rest.partition(" b/")
    return _strip_prefix(a), b


class _FileState:
    def __init__(self, old: str, new: str) -> None:
        self.old, self.new = old, new

    @property
    def path(self) -> str:
        return self.old if self.new in ("", "/dev/null", "dev/null") else self.new


def parse_patch(diff: str, functions: bool = True) -> PatchInfo:
    """Files, hunks, changed lines and (unless `functions=False`) the innermost enclosing function of each hunk."""
    info = PatchInfo()
    if not isinstance(diff, str) or not diff:
        return info
    lines = diff.split("\n")
    cur: _FileState | None = None
    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        if line.startswith("diff --git "):
            cur = _FileState(*_git_header_paths(line))
            _add_file(info, cur.path)
        elif line.startswith("rename from ") and cur is not None:
            cur.old = line[12:].strip()
        elif line.startswith("rename to ") and cur is not None:
            old_path = cur.path
            cur.new = line[10:].strip()
            info.renamed.append((cur.old, cur.new))
            _replace_file(info, old_path, cur.new)
        elif line.startswith("--- ") and i + 1 < n and lines[i + 1].startswith("+++ "):
            old, new = _strip_prefix(line[4:]), _strip_prefix(lines[i + 1][4:])
            before = cur.path if cur is not None else None
            cur = _FileState(old, new)
            if before is None:
                _add_file(info, cur.path)
            elif before != cur.path:
                _replace_file(info, before, cur.path)
            i += 1
        elif line.startswith(("Binary files ", "GIT binary patch")) and cur is not None:
            if cur.path not in info.binary_files:
                info.binary_files.append(cur.path)
        elif line.startswith("@@") and cur is not None:
            m = _HUNK.match(line)
            if m:
                i = _read_hunk(lines, i, m, cur.path, info, functions)
                continue
        i += 1
    for hunk in info.hunks:
        for fn in hunk.functions:
            if (hunk.file, fn) not in info.functions:
                info.functions.append((hunk.file, fn))
    return info


def _add_file(info: PatchInfo, path: str) -> None:
    if path and path not in info.files:
        info.files.append(path)


def _replace_file(info: PatchInfo, old: str, new: str) -> None:
    if old in info.files:
        info.files[info.files.index(old)] = new
    else:
        _add_file(info, new)


def _read_hunk(lines: list[str], i: int, m: re.Match, path: str, info: PatchInfo, functions: bool = True) -> int:
    """Consume one hunk starting at line i (its header); returns the index after it."""
    old_left = int(m.group(2)) if m.group(2) is not None else 1
    new_left = int(m.group(4)) if m.group(4) is not None else 1
    hunk = Hunk(file=path, header=lines[i], old_start=int(m.group(1)), new_start=int(m.group(3)))
    body: list[str] = []
    i += 1
    while i < len(lines) and (old_left > 0 or new_left > 0):
        line = lines[i]
        tag = line[:1]
        if tag == "+":
            hunk.added.append(line[1:])
            new_left -= 1
        elif tag == "-":
            hunk.removed.append(line[1:])
            old_left -= 1
        elif tag == " " or line == "":
            hunk.unchanged.append(line[1:])
            old_left -= 1
            new_left -= 1
        elif tag == "\\":  # "\ No newline at end of file"
            i += 1
            continue
        else:
            break  # malformed (counts too large): stop at the first foreign line
        body.append(line)
        i += 1
    if functions:
        hunk.functions = enclosing_functions(m.group(5), body, python=path.endswith((".py", ".pyi", ".pyx")))
    hunk.function = hunk.functions[0] if hunk.functions else ""
    info.hunks.append(hunk)
    info.added_lines.extend(hunk.added)
    info.removed_lines.extend(hunk.removed)
    info.unchanged_lines.extend(hunk.unchanged)
    return i


def _indent(text: str) -> int:
    return len(text) - len(text.lstrip(" \t").expandtabs(4)) if "\t" in text else len(text) - len(text.lstrip(" "))


def _definition(text: str, python: bool) -> tuple[int, str, str, bool] | None:
    """`(indent, name, kind, is_method)` when `text` opens a function/class, else None."""
    if python:
        m = _PY_DEF.match(text)
        if not m:
            return None
        is_method = m.group(2) == "def" and (m.group(4) or "").strip() in ("self", "cls")
        return _indent(m.group(1)), m.group(3), m.group(2), is_method
    for pattern in _GENERIC_DEFS:
        m = pattern.match(text)
        if m:
            names = [g for g in m.groups()[1:] if g]
            if not names or names[-1] in _NOT_FUNCTIONS or text.rstrip().endswith(";"):
                continue
            return _indent(m.group(1)), ".".join(names), "def", False
    return None


def enclosing_functions(section: str, body: list[str], python: bool = True) -> list[str]:
    """Qualnames of the innermost scope of each change block in a hunk body (`+`/`-`/` ` lines)."""
    stack: list[tuple[int, str, str]] = []  # (indent, name, kind)
    head = _definition(section, python) if section else None
    if head is not None:
        stack.append((head[0], head[1], head[2]))
    found: list[str] = []
    in_block = False
    for raw in body:
        tag, text = raw[:1], raw[1:]
        changed = tag in ("+", "-")
        if text.strip():
            _update_scope(stack, text, python)
        if changed and not in_block and text.strip():
            qualname = ".".join(name for _, name, _ in stack)
            if qualname and qualname not in found:
                found.append(qualname)
            in_block = True
        elif not changed:
            in_block = False
    return found


def _update_scope(stack: list[tuple[int, str, str]], text: str, python: bool) -> None:
    indent = _indent(text)
    definition = _definition(text, python)
    if python and not definition and text.lstrip().startswith(("#", ")", "]", "}", '"', "'")):
        return  # comments, closing brackets and string continuations do not end a scope
    while stack and stack[-1][0] >= indent:
        stack.pop()
    if definition is not None:
        d_indent, name, kind, is_method = definition
        if is_method and stack and stack[-1][2] == "def":
            stack.pop()  # a method is a sibling of the function git named in the header, not its child
        stack.append((d_indent, name, kind))
