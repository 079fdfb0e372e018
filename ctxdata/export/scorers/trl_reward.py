"""ctxdata context-selection reward for TRL, written next to the data by `ctxdata export --to trl`.

    from trl_reward import selection_reward
    GRPOTrainer(..., reward_funcs=[selection_reward], train_dataset=load_from_disk(<export folder>))

Self-contained (standard library only). TRL's reward signature: `answer` is the dataset column; a
completion is a string or a list of chat messages (the last one is scored).
"""

# ruff: noqa: F821  (chosen_letter and letter_score are pasted in at the marker below by the export)

# {letter}


def _text(completion):
    if isinstance(completion, list) and completion:
        content = completion[-1].get("content", "") if isinstance(completion[-1], dict) else completion[-1]
        if isinstance(content, list):
            return "".join(part.get("text") or "" for part in content if isinstance(part, dict))
        return str(content)
    return str(completion)


def selection_reward(prompts, completions, answer, **kwargs):
    """1.0 for each completion that chose its row's `answer` letter, else 0.0."""
    return [letter_score(_text(c), a) for c, a in zip(completions, answer)]
