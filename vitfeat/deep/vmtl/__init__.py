"""VMTL: the end-to-end paired multi-task model (clinical + Wood's photos), scored on fit's folds.

Entry points: :func:`train_vmtl` (one model per outer fold, OOF predictions in fit's format),
:func:`predict_run` (stage probability, mask, box), :func:`load_embedder` (the ``deep:vmtl@DIR``
feature family). Torch and timm are imported only when one of them is used.
"""

from __future__ import annotations

from vitfeat.deep.vmtl.config import VARIANTS, VMTLConfig, preset

__all__ = ["VARIANTS", "VMTLConfig", "preset", "train_vmtl", "predict_run", "load_embedder"]


def train_vmtl(*args, **kwargs):
    """:func:`vitfeat.deep.vmtl.train.train_vmtl`, imported on first use (torch is heavy).

    Parameters
    ----------
    *args, **kwargs
        Those of :func:`vitfeat.deep.vmtl.train.train_vmtl`.

    Returns
    -------
    object
    """
    from vitfeat.deep.vmtl.train import train_vmtl as impl

    return impl(*args, **kwargs)


def predict_run(*args, **kwargs):
    """:func:`vitfeat.deep.vmtl.predict.predict_run`, imported on first use.

    Parameters
    ----------
    *args, **kwargs
        Those of :func:`vitfeat.deep.vmtl.predict.predict_run`.

    Returns
    -------
    object
    """
    from vitfeat.deep.vmtl.predict import predict_run as impl

    return impl(*args, **kwargs)


def load_embedder(*args, **kwargs):
    """:func:`vitfeat.deep.vmtl.embed.load_embedder`, imported on first use.

    Parameters
    ----------
    *args, **kwargs
        Those of :func:`vitfeat.deep.vmtl.embed.load_embedder`.

    Returns
    -------
    object
    """
    from vitfeat.deep.vmtl.embed import load_embedder as impl

    return impl(*args, **kwargs)
