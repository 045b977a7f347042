"""Evaluation of query writers: read records and outputs, generate, score per domain, report.

The command is ``python -m verl_rec.evaluate`` (:mod:`verl_rec.evaluate`).
"""
