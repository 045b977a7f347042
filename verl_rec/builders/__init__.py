"""Dataset builders: release files in, task records, corpus and manifest out.

Their command lines are :mod:`verl_rec.data_preprocess` (also ``python -m data_preprocess.<name>``).
"""
