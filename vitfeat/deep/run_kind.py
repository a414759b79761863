"""The ``vmtl`` run kind: ``vitfeat predict`` on a ``train vmtl`` run directory.

Registered in ``vitfeat.pipelines.run_kinds.RUN_KINDS`` through the ``vitfeat.run_kinds`` entry point
(setup.cfg), so pipelines never import vitfeat.deep.
"""

from __future__ import annotations


def predict_vmtl_run(run_dir, input_path, out_path=None, *, allow_extra: bool = False, explain: bool = False):
    """Predict the cases of a manifest with a VMTL run (see :func:`vitfeat.deep.vmtl.predict.predict_run`).

    Parameters
    ----------
    run_dir, input_path, out_path
        The run directory, the manifest, and the CSV to write (optional).
    allow_extra : bool
        Ignored: a VMTL run reads photos, not feature columns.
    explain : bool
        Not available for VMTL runs; ``True`` raises ``ValueError``.

    Returns
    -------
    pandas.DataFrame
        One row per case.
    """
    if explain:
        raise ValueError(f"{run_dir}: per-case explanations are available for fit's runs only, not VMTL runs")
    from vitfeat.deep.vmtl.predict import predict_run

    return predict_run(run_dir, input_path, out_path)
