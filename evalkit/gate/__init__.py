"""The regression gate: does a candidate's result store fall short of a baseline's?

``rules`` (rule files → ``Rules``) · ``compare`` (what can be compared) · ``judge`` (measure, correct the family,
judge; ``run_gate``, ``gate_folders``) · ``correction`` (Holm, BH) · ``check`` (the checks and the report, plain data) ·
``drilldown`` (the units that moved most) · ``speed`` (``[speed]`` rules); the pytest plugin is ``evalkit.integrations.pytest_plugin``.
The gate reads result files only, never models, and never imports ``evalkit.report`` (which renders its reports).
"""
