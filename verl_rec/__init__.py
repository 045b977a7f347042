"""verl-rec: Rec-R1 (RL against black-box recommenders) as a plugin for stock veRL."""

__version__ = "0.1.0"
