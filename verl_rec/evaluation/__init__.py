"""Evaluation of query writers: read records and outputs, generate, score per domain, report.

:mod:`.run` is one run (its options and its steps); :mod:`.systems` scores one system's
records with the reward's scorer and summarizes them per domain; :mod:`.generate` and
:mod:`.agent` produce a checkpoint's outputs (single turn, or search-agent episodes);
:mod:`.inputs` reads and writes outputs and episodes; :mod:`.report` writes the tables. The
command line is ``python -m verl_rec.evaluate`` (:mod:`verl_rec.evaluate`).
"""
