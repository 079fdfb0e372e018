"""ctxdata context-selection environment for SkyRL, written next to the data by `ctxdata export --to skyrl`.

SkyRL scores rows through a registered skyrl-gym environment named by the row's `env_class`. This
file defines it and registers it, as SkyRL's own custom-environment examples do:

    python <this file> data.train_data="['<export>.jsonl']" environment.env_class=ctxdata_selection \\
        trainer.max_prompt_length=<N> ...        # SkyRL's BasePPOExp, with the env registered first

or, from your own SkyRL entrypoint: `register_env()` before building the experiment.
The scoring itself (`compute_score`) needs only the standard library.
"""

# ruff: noqa: F821  (chosen_letter and letter_score are pasted in at the marker below by the export)

ENV_ID = "ctxdata_selection"

# {letter}


def compute_score(solution_str, ground_truth):
    return letter_score(solution_str, ground_truth)


try:
    from skyrl_gym.envs.base_text_env import BaseTextEnv, BaseTextEnvStepOutput
except ImportError:  # scoring still works without SkyRL; the environment needs skyrl-gym
    BaseTextEnv = object
    BaseTextEnvStepOutput = dict


class ContextSelectionEnv(BaseTextEnv):
    """Single turn: the policy's answer is scored against `reward_spec.ground_truth`, then done."""

    def __init__(self, env_config=None, extras=None):
        super().__init__()
        extras = extras or {}
        if "ground_truth" not in (extras.get("reward_spec") or {}):
            raise ValueError("ctxdata_selection rows need reward_spec.ground_truth (the anchor's letter)")
        self.ground_truth = extras["reward_spec"]["ground_truth"]

    def step(self, action):
        reward = compute_score(action, self.ground_truth)
        return BaseTextEnvStepOutput(
            observations=[], reward=reward, done=True, metadata={"chosen": chosen_letter(action)}
        )


def register_env():
    """Register ContextSelectionEnv under ENV_ID in skyrl-gym (idempotent)."""
    from skyrl_gym.envs.registration import register, registry

    if ENV_ID not in registry:
        register(id=ENV_ID, entry_point=ContextSelectionEnv)


def main():
    """SkyRL's standard entrypoint (BasePPOExp) with this environment registered inside the Ray task."""
    import sys

    import ray
    from skyrl.train.config import SkyRLTrainConfig
    from skyrl.train.entrypoints.main_base import BasePPOExp, validate_cfg
    from skyrl.train.utils import initialize_ray

    @ray.remote(num_cpus=1)
    def entrypoint(cfg):
        register_env()
        BasePPOExp(cfg).run()

    cfg = SkyRLTrainConfig.from_cli_overrides(sys.argv[1:])
    validate_cfg(cfg)
    initialize_ray(cfg)
    ray.get(entrypoint.remote(cfg))


if __name__ == "__main__":
    main()
