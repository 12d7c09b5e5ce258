"""The device side, in rooms that follow the data: bytes -> frames -> envelopes -> model -> estimates.

``wire`` (frame format, parser, transports by URL, reader thread) -> ``dsp`` (Q31 biquads, the envelope,
the ADC scale) -> ``model`` (bundles and their predictors) -> ``loop`` (pipeline, runtime, estimates,
safety, publishers, latency); ``sim`` is the amplifier simulator and the benchmark that drive the loop.
Each room imports only the rooms before it (``sim`` may use all of them); none imports torch.
``protocol`` and ``envelope`` keep the import names that design.md section 3 fixes for outside tools.
"""
