"""Training: recordings to physics-informed networks, and networks to model bundles.

- :mod:`~myoedge.train.data` — recordings through the edge envelope code into sequences at the model
  rate; the intra-session, leave-one-trial-out and training-size splits (numpy only).
- :mod:`~myoedge.train.physics` — the physics term of the loss, on :mod:`myoedge.body.dynamics`.
- :mod:`~myoedge.train.models` — the paper's PI-CNN and CNN, and the causal edge model.
- :mod:`~myoedge.train.fit` — the training loop.
- :mod:`~myoedge.train.run` — ``TrainConfig`` and the saved run (``TrainedModel``, the run folder).
- :mod:`~myoedge.train.export` — ONNX export, parity check and bundle writing.

Nothing is imported here, so ``import myoedge.train.data`` does not load torch.
"""
