"""evalkit: evaluation and benchmarking harness for sentence encoders.

Importing the package is cheap on purpose: torch, transformers and scikit-learn
load only when an encoder or adapter that needs them is built.
"""

__version__ = "0.1.0"
