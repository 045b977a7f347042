"""Names shared by the registrations, the overrides and the tests."""

PLATFORM_ENV = "VERL_PLATFORM"  # veRL's own platform selector (verl.plugin.platform)
PLATFORM_NAME = "cpu"  # VERL_PLATFORM=cpu selects verl_rec's CPU platform
ROLLOUT_NAME = "hf"  # actor_rollout_ref.rollout.name of the transformers backend
