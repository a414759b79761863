"""Example lesion pairs for the Stage tab, drawn by :func:`vitfeat.synth.generate` when the server
starts (into its private temporary folder, removed with it: nothing is bundled or kept), and the
small previews of what was uploaded."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

#: How many example pairs, and the side of their photos when the run's training photos are unknown.
N_EXAMPLES, EXAMPLE_SIDE = 4, 256
#: Longest side of an upload preview, px.
PREVIEW_SIDE = 256


def make_examples(folder, *, side: int | None = None, n: int = N_EXAMPLES, seed: int = 27) -> list[dict]:
    """Draw ``n`` synthetic pairs (half stable, half active) into ``folder``.

    They use the demo's class overlap (:data:`vitfeat.demo.DEMO_SYNTH`), so a model fitted on the
    demo answers them with honest uncertainty; a model fitted on real photos may well call them out
    of scope, which is the right answer for a synthetic picture.

    Parameters
    ----------
    folder : path-like
        Where they go (the server's private temporary folder).
    side : int, optional
        Side of the photos, px (default :data:`EXAMPLE_SIDE`).
    n : int
        How many.
    seed : int
        Random seed.

    Returns
    -------
    list of dict
        ``clinical``, ``wood`` (absolute paths) and ``label`` (the synthetic truth) per example; empty
        when drawing failed (the app then shows no examples and logs why).
    """
    from vitfeat.demo import DEMO_SYNTH
    from vitfeat.synth import generate

    try:
        manifest = generate(folder, n=n, seed=seed, size=int(side or EXAMPLE_SIDE), difficulty=DEMO_SYNTH["difficulty"],
                            jobs=1, progress=False)
    except Exception as exc:  # noqa: BLE001 - examples are an aid; the app works without them
        log.warning("no example pairs: %s", exc)
        return []
    import shutil

    frame = pd.read_csv(manifest).sort_values("label", kind="stable").reset_index(drop=True)
    folder = manifest.parent
    out = []
    for i, r in frame.iterrows():  # named as examples (never like a clinician's upload); the rest is removed
        entry = {"label": str(r["label"])}
        for modality in ("clinical", "wood"):
            src = folder / r[modality]
            entry[modality] = str(src.replace(folder / f"example{i + 1}-{modality}{src.suffix}"))
        out.append(entry)
    for sub in ("images", "masks", "labels", "labels-boxes"):
        shutil.rmtree(folder / sub, ignore_errors=True)
    return out


def preview(path, *, max_pixels: int) -> np.ndarray | None:
    """A small copy (at most :data:`PREVIEW_SIDE` px, no metadata) of an uploaded photo for the page,
    read under the same decompression guard as the prediction; None when it cannot be read (the
    Stage button then says why).

    Parameters
    ----------
    path : path-like or None
        The upload.
    max_pixels : int
        Decompression-bomb guard.

    Returns
    -------
    numpy.ndarray or None
    """
    if not path:
        return None
    from PIL import Image

    from vitfeat.dataset import ImageReadError, read_image

    try:
        rgb = read_image(Path(path), max_pixels=max_pixels)
    except (ImageReadError, ValueError, OSError):
        return None
    image = Image.fromarray(rgb)
    image.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
    return np.asarray(image)
