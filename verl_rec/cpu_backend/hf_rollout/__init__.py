"""The ``hf`` rollout: transformers ``generate()`` in a Ray actor, speaking veRL's server protocol.

``server`` (the model server actor), ``replica`` (veRL's ``RolloutReplica``: one server per
replica) and ``adapter`` (the ``BaseRollout`` in the training worker that pushes weights).
"""
