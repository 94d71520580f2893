"""The embedded default job: the pooling comparison on the packaged MiniLM.

Every recipe a tutorial might use, on the same model, plus a static and a lexical
baseline, on STSBenchmark and SICK-R: ``evalkit run`` with no arguments.
"""

DEFAULT_ENCODERS = (
    "sbert:all-MiniLM-L6-v2",
    "hf:all-MiniLM-L6-v2?pooling=mean",
    "hf:all-MiniLM-L6-v2?pooling=cls",
    "hf:all-MiniLM-L6-v2?pooling=max",
    "hf-logits:all-MiniLM-L6-v2",
    "hf-logits:all-MiniLM-L6-v2?reduce=mean",
    "static:tokenlearn-static",
    "tfidf:lexical",
)
DEFAULT_TASKS = ("STSBenchmark", "SICK-R")
DEFAULT_OUTPUT = "out/default"
