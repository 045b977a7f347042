"""``python -m verl_rec.recipes`` prints the recipes folder, for ``main_ppo --config-dir``."""

from verl_rec.recipes import main

main()
