"""Run kinds for ``predict``: how a run directory of each ``run.json`` ``kind`` predicts new cases.

``sklearn`` (fit's runs) is built in; other layers add theirs without pipelines importing them:
vitfeat.deep registers ``vmtl`` through the ``vitfeat.run_kinds`` entry point in setup.cfg, and a
third-party package can add a kind the same way. A run kind is a callable
``predictor(run_dir, input_path, out_path=None, *, allow_extra=False, explain=False) -> DataFrame``.
"""

from __future__ import annotations

from vitfeat.registry import Registry

RUN_KINDS = Registry("run kind", "vitfeat.run_kinds")
