"""End-to-end scenarios (risk scorecard, precision marketing, fraud) and the built-in synthetic data.

:mod:`privfin.scenarios.synth` is the seeded generator behind ``privfin demo``'s default data; its
module docstring documents the whole model.
"""

from privfin.scenarios.synth import SynthData, generate, write

__all__ = ["SynthData", "generate", "write"]
