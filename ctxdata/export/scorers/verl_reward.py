"""ctxdata context-selection reward for verl, written next to the data by `ctxdata export --to verl`.

    reward.custom_reward_function.path=<this file> reward.custom_reward_function.name=compute_score

Self-contained (standard library only). The ground truth is the letter of the context that supports
the answer; a completion scores 1.0 when the letter it chose is that letter, else 0.0.
"""

# ruff: noqa: F821  (chosen_letter and letter_score are pasted in at the marker below by the export)

# {letter}


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    """verl's custom reward signature (`verl.trainer.ppo.reward.get_custom_reward_fn`)."""
    return letter_score(solution_str, ground_truth)
