"""Dataset and index builders: ``python -m data_preprocess.<name> --help``."""
