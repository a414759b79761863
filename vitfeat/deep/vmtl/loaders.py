"""The VMTL data loop's shared pieces: the DataLoader and batched prediction (under the one
``autocast`` of :mod:`vitfeat.deep.training`: bf16 on CUDA, nothing elsewhere).

Used by the joint training loop (:mod:`vitfeat.deep.vmtl.train`), the original's curriculum
(:mod:`vitfeat.deep.vmtl.curriculum`), prediction and embedding, so that none of them imports another
(``curriculum`` and ``train`` imported each other before).
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch.utils.data import DataLoader

from vitfeat.deep.training import autocast
from vitfeat.deep.vmtl.data import to_device


@torch.no_grad()
def predict_loader(model, loader, device, dense: bool = False) -> dict:
    """Class probabilities (and, with ``dense``, mask probabilities and boxes) for every item.

    Parameters
    ----------
    model : torch.nn.Module
        A VMTL network.
    loader : torch.utils.data.DataLoader
        From :func:`make_loader` (``shuffle=False``).
    device : torch.device
        Where the model runs.
    dense : bool, default False
        Also the segmentation and box outputs.

    Returns
    -------
    dict
        ``case_id`` (list), ``proba``, ``embedding``, ``has_wood`` (arrays), and the dense outputs.
    """
    model.eval()
    keys = ("seg_clinical", "seg_wood", "box_clinical", "box_wood") if dense else ()
    out = defaultdict(list)
    for batch in loader:
        b = to_device(batch, device, channels_last=device.type == "cuda")
        with autocast(device):
            pred = model(b["clinical"], b["wood"], b["has_wood"], dense=dense)
        out["case_id"].extend(batch["case_id"])
        out["proba"].append(torch.softmax(pred["logits"].float(), 1).cpu())
        for t, logits in enumerate(pred.get("logits_per_target", [])):
            out[f"proba_target{t}"].append(torch.softmax(logits.float(), 1).cpu())
        out["embedding"].append(pred["embedding"].float().cpu())
        out["has_wood"].append(batch["has_wood"])
        for k in keys:
            if k in pred:
                value = torch.sigmoid(pred[k].float()) if k.startswith("seg") else pred[k].float()
                out[k].append(value.cpu())
    return {k: (v if k == "case_id" else torch.cat(v).numpy()) for k, v in out.items()}


def make_loader(dataset, cfg, shuffle: bool, seed: int = 0) -> DataLoader:
    """The DataLoader every VMTL stage uses (training, validation, prediction, embedding).

    Parameters
    ----------
    dataset : PairedDataset
        The cases.
    cfg : VMTLConfig
        Batch size and workers.
    shuffle : bool
        Training order (seeded by ``seed``); a last batch of one is dropped then (BatchNorm).
    seed : int
        Seed of the shuffling generator.
    """
    gen = torch.Generator().manual_seed(seed)
    # BatchNorm cannot train on a final batch of one
    drop_last = shuffle and len(dataset) > cfg.batch and len(dataset) % cfg.batch == 1
    return DataLoader(dataset, batch_size=cfg.batch, shuffle=shuffle, generator=gen, drop_last=drop_last,
                      num_workers=cfg.num_workers)
