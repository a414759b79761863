"""``deep:vmtl@RUN_DIR``: the trained VMTL encoder's fused embedding as a feature family.

Columns ``pair_deep_vmtl_<i>`` (the fused clinical+Wood's embedding is a property of the pair).
A case listed in the run's fold plan is embedded by the fold model that never trained on it (the
first repeat's plan), so a classifier fitted on these columns under the same folds is a stacked
model on out-of-fold embeddings; a new case gets the mean of the fold models' embeddings. The family
version holds the checkpoints' content hashes, so the extract cache follows retraining.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from vitfeat.dataset import file_hash
from vitfeat.deep.vmtl.data import PairedDataset, make_roi, prepare_case
from vitfeat.deep.vmtl.model import normalisation
from vitfeat.deep.vmtl.predict import load_run
from vitfeat.deep.vmtl.loaders import make_loader, predict_loader

COLUMN_STEM = "pair_deep_vmtl_"


class VMTLEmbedder:
    """A finished VMTL run as a deep feature family: each case embedded by its fold's model.

    Parameters
    ----------
    run_dir : path-like
        The run.
    device : str, optional
        Torch device.
    """

    def __init__(self, run_dir, device: str | None = None):
        self.run_dir = Path(run_dir)
        self.cfg, self.run, self.models = load_run(self.run_dir, device)
        plan = pd.read_csv(self.run_dir / "folds.csv", dtype={"case_id": str})
        first = plan[plan["repeat"] == plan["repeat"].min()]
        self.model_of = {c: f"r{r}_f{f}" for c, r, f in zip(first["case_id"], first["repeat"], first["fold"])}
        digest = hashlib.blake2b(digest_size=8)
        for name in sorted(self.models):
            digest.update(file_hash(self.run_dir / name / "best.pt").encode())
        self.version = f"vmtl-{self.cfg.pipeline_name}-{digest.hexdigest()}"
        self.mean, self.std = normalisation(self.cfg.backbone)
        self.roi = make_roi(self.cfg)

    def embed(self, cases) -> np.ndarray:
        """(N, D) embeddings of ``CaseArrays`` (out of fold where the case is in the plan).

        Parameters
        ----------
        cases : list of CaseArrays
            The cases.

        Returns
        -------
        numpy.ndarray
        """
        loaded = [prepare_case(c.case_id, c.case_id, None, {"clinical": c.clinical, "wood": c.wood},
                               {m: k for m, k in (("clinical", c.clinical_mask), ("wood", c.wood_mask))
                                if k is not None},
                               self.cfg.imgsz, self.roi) for c in cases]
        owner = [self.model_of.get(c.case_id) for c in cases]
        out = None
        for name, model in self.models.items():
            idx = [i for i, o in enumerate(owner) if o is None or o == name]
            if not idx:
                continue
            data = PairedDataset([loaded[i] for i in idx], [], self.cfg.imgsz, self.mean, self.std, train=False)
            emb = predict_loader(model, make_loader(data, self.cfg, shuffle=False),
                                 torch.device(self.cfg.device))["embedding"]
            if out is None:
                out, weight = np.zeros((len(cases), emb.shape[1])), np.zeros(len(cases))
            out[idx] += emb
            weight[idx] += 1
        return out / weight[:, None]

    def batch(self, cases, **_config) -> list[dict]:
        """The family's batch function: ``{column: value}`` per case.

        Parameters
        ----------
        cases : list of CaseArrays
            The cases.
        **_config
            Ignored.

        Returns
        -------
        list of dict
        """
        vectors = self.embed(cases)
        cols = [f"{COLUMN_STEM}{i:04d}" for i in range(vectors.shape[1])]
        return [dict(zip(cols, v.astype(float).tolist())) for v in vectors]

    def __call__(self, case, **config) -> dict:
        return self.batch([case], **config)[0]


def load_embedder(run_dir, device: str | None = None):
    """The registry ``Family`` for ``deep:vmtl@RUN_DIR``.

    Parameters
    ----------
    run_dir : path-like
        A finished VMTL run.
    device : str, optional
        Torch device.

    Returns
    -------
    vitfeat.featurize.registry.Family
    """
    from vitfeat.featurize.registry import Family

    emb = VMTLEmbedder(run_dir, device)
    return Family(name=f"deep:vmtl@{run_dir}", version=emb.version, modalities=("pair",), func=emb,
                  batch_func=emb.batch, description=f"VMTL fused embedding ({emb.cfg.pipeline_name}, {run_dir})")
