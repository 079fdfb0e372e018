"""ctxdata context-selection reward for EasyR1, written next to the data by `ctxdata export --to easyr1`.

    worker.reward.reward_function=<this file>:compute_score

Self-contained (standard library only). EasyR1's batch reward format: a list of
{response, response_length, ground_truth} in, a list of {overall, format, accuracy} out.
"""

# ruff: noqa: F821  (chosen_letter and letter_score are pasted in at the marker below by the export)

REWARD_NAME = "ctxdata_selection"
REWARD_TYPE = "batch"

# {letter}


def compute_score(reward_inputs, **kwargs):
    """1.0 `overall` for the right letter; `format` is 1.0 when the completion names a letter at all."""
    scores = []
    for item in reward_inputs:
        accuracy = letter_score(item["response"], item["ground_truth"])
        scores.append(
            {"overall": accuracy, "format": float(chosen_letter(item["response"]) is not None), "accuracy": accuracy}
        )
    return scores
