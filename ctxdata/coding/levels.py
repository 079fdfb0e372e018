"""The cascade levels, coarse to fine, with what two trajectories share when they meet at each.

Kept apart from `cascade.py` (which needs numpy) so `ctxdata build-coding --help` lists them cheaply.
"""

LEVEL_DOCS = {
    "repo": "same repository",
    "commit": "same base commit, when known",
    "file": "the patches touch a common file",
    "function": "the patches touch a common function",
    "issue": "similar issue texts inside the deepest block",
    "instance": "two runs of the same task whose final patches differ",
}
LEVELS = tuple(LEVEL_DOCS)
BLOCKING = ("repo", "commit", "file", "function")  # levels that are plain blocking keys
