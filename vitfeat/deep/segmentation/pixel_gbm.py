"""A pixel classifier segmenter: LightGBM on colour-contrast features (``--arch pixel-gbm``).

Small expert-masked sets (the vitiligo-seg set has 44 source photos) favour a few strong,
hand-chosen features and a gradient-boosted tree over a network learnt from pixels. Each pixel of
a photo, shrunk to a longest side of ``imgsz``, is described by (:func:`pixel_features`):

* CIELAB L*, a*, b* and HSV saturation / value, raw and **relative to this photo's own skin**
  (robust z-scores against the median and MAD of the pixels inside a YCrCb skin box, or of the
  whole photo when under 5 % of it is skin): depigmentation is a rise in L* and a drop in b*
  against the surrounding skin, whatever the camera and the skin type;
* the depigmentation contrast ``z(L*) - z(b*)`` smoothed at three scales, its difference from the
  surroundings (local minus wide blur), its rank among the photo's skin pixels and its distance to
  the photo's Otsu threshold (what a per-image threshold would see);
* local texture (the standard deviation of L* in a small window) and the skin-box likelihood;
* superpixel statistics (SLIC segments: mean contrast, z(L*), z(b*) and the contrast's spread);
* the position in the photo (rows, columns, distance from the centre).

Training samples pixels of every training photo (``pixels_per_image``), fits a LightGBM binary
classifier with early stopping on the validation patients' pixels, and picks the probability
threshold that maximises the pooled Dice of the validation photos (whole patients, never the test
part). The model is stored as LightGBM's own text format (``model.txt``, ``Booster.model_to_string``)
beside ``segmenter.json``, which records its SHA-256: no pickle is ever read. The directory is a
mask source like any ``vitfeat train seg`` output (``extract --masks model:DIR``, ``seg evaluate``).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from vitfeat.artefacts import RunIntegrityError, artefact_hashes, check_artefacts
from vitfeat.atomic import write_csv, write_text
from vitfeat.dataset import ImageReadError, file_hash, read_image, read_mask
from vitfeat.deep.segmentation.modality import ThresholdMaskSource
from vitfeat.names import join_inside

log = logging.getLogger(__name__)

ARCH = "pixel-gbm"
#: Bump when :func:`pixel_features` changes: a model records the version it was trained with.
FEATURES_VERSION = "1"
FEATURE_NAMES = (
    "L", "a", "b", "sat", "val", "zL", "za", "zb", "zsat",
    "contrast_s1", "contrast_s4", "contrast_s12", "contrast_local", "contrast_rank", "contrast_otsu",
    "zL_s4", "zb_s4", "texture_L", "skin", "skin_s8",
    "sp_contrast", "sp_zL", "sp_zb", "sp_contrast_std",
    "row", "col", "radius",
)


@dataclass
class PixelGbmConfig:
    """Settings of a pixel-GBM segmenter run.

    Parameters
    ----------
    imgsz : int
        Longest side (px) at which features are computed and pixels classified.
    pixels_per_image : int
        Pixels sampled from each training photo.
    n_estimators : int
        Most boosting rounds (early stopping on the validation pixels picks fewer).
    learning_rate, num_leaves, min_child_samples : float, int, int
        LightGBM settings.
    threads : int
        LightGBM threads.
    seed : int
        Seed of the pixel sampling and of LightGBM.
    modality : str
        ``clinical`` or ``wood``.
    split : tuple
        Fractions of the patient-grouped train / val / test split.
    """

    imgsz: int = 160
    pixels_per_image: int = 4000
    n_estimators: int = 400
    learning_rate: float = 0.05
    num_leaves: int = 31
    min_child_samples: int = 50
    threads: int = 2
    seed: int = 0
    modality: str = "clinical"
    split: tuple = (0.7, 0.15, 0.15)


def _shrink(rgb: np.ndarray, size: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    if scale >= 1:
        return rgb
    return cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def _robust_z(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    med = np.median(reference)
    mad = 1.4826 * np.median(np.abs(reference - med))
    return (values - med) / max(mad, 1e-3 * (np.abs(med) + 1.0), 1e-3)


def pixel_features(rgb: np.ndarray) -> np.ndarray:
    """``(H, W, F)`` float32 features of every pixel of a photo (see the module docstring).

    Parameters
    ----------
    rgb : numpy.ndarray
        ``(H, W, 3)`` uint8 RGB photo, already at the working size.

    Returns
    -------
    numpy.ndarray
        Features in the order of :data:`FEATURE_NAMES`.
    """
    from skimage.filters import threshold_otsu
    from skimage.segmentation import slic

    h, w = rgb.shape[:2]
    side = max(h, w)
    lab = cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    L, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV).astype(np.float32)
    sat, val = hsv[..., 1] / 255.0, hsv[..., 2] / 255.0
    ycc = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb).astype(np.float32)
    cr, cb = ycc[..., 1], ycc[..., 2]
    skin = ((cr >= 135) & (cr <= 180) & (cb >= 85) & (cb <= 135) & (val >= 0.16)).astype(np.float32)
    reference = skin > 0 if skin.mean() >= 0.05 else np.ones_like(skin, bool)
    zL, za, zb = (_robust_z(c, c[reference]) for c in (L, a, b))
    zsat = _robust_z(sat, sat[reference])

    def blur(x, sigma):
        return cv2.GaussianBlur(x, (0, 0), max(0.5, sigma * side / 160))

    contrast = zL - zb
    c1, c4, c12 = blur(contrast, 1), blur(contrast, 4), blur(contrast, 12)
    ref_values = c1[reference]
    rank = np.searchsorted(np.sort(ref_values), c1).astype(np.float32) / max(ref_values.size, 1)
    otsu = threshold_otsu(ref_values) if np.ptp(ref_values) > 1e-6 else float(np.median(ref_values))
    mean_L = blur(L, 2)
    texture = np.sqrt(np.maximum(blur(L * L, 2) - mean_L * mean_L, 0))
    segments = slic(rgb, n_segments=max(16, (h * w) // 100), compactness=10, start_label=0,
                    channel_axis=-1)
    n_seg = int(segments.max()) + 1
    flat = segments.ravel()
    count = np.maximum(np.bincount(flat, minlength=n_seg), 1)

    def sp_mean(x):
        return (np.bincount(flat, x.ravel(), minlength=n_seg) / count)[segments]

    sp_c = sp_mean(c1)
    sp_c_std = np.sqrt(np.maximum(sp_mean(c1 * c1) - sp_c * sp_c, 0))
    rows, cols = np.meshgrid(np.linspace(0, 1, h, dtype=np.float32), np.linspace(0, 1, w, dtype=np.float32),
                             indexing="ij")
    radius = np.sqrt((rows - 0.5) ** 2 + (cols - 0.5) ** 2)
    planes = [L, a, b, sat, val, zL, za, zb, zsat, c1, c4, c12, c1 - c12, rank, c1 - otsu,
              blur(zL, 4), blur(zb, 4), texture, skin, blur(skin, 8), sp_c, sp_mean(zL), sp_mean(zb), sp_c_std,
              rows, cols, radius]
    return np.stack([np.asarray(p, np.float32) for p in planes], axis=-1)


def _image_and_mask(item, size: int):
    rgb = read_image(item.image)
    mask = read_mask(item.mask)
    if mask.shape != rgb.shape[:2]:
        raise ImageReadError(f"{item.mask}: mask size {mask.shape[::-1]} differs from image size {rgb.shape[1::-1]}")
    small = _shrink(rgb, size)
    return small, cv2.resize(mask.astype(np.uint8), small.shape[1::-1], interpolation=cv2.INTER_NEAREST) > 0


def _load(items, size: int, failures: list) -> list:
    out = []
    for item in items:
        try:
            rgb, mask = _image_and_mask(item, size)
        except (ImageReadError, OSError, ValueError) as exc:
            failures.append({"case_id": item.case_id, "reason": str(exc)})
            continue
        out.append((item, pixel_features(rgb), mask))
    return out


def _sample(loaded, n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for _, feats, mask in loaded:
        flat, target = feats.reshape(-1, feats.shape[-1]), mask.ravel()
        pick = rng.choice(flat.shape[0], size=min(n, flat.shape[0]), replace=False)
        xs.append(flat[pick])
        ys.append(target[pick])
    return np.concatenate(xs), np.concatenate(ys).astype(np.int8)


def _probability_map(booster, feats: np.ndarray, rounds: int | None = None) -> np.ndarray:
    h, w, f = feats.shape
    prob = booster.predict(feats.reshape(-1, f), num_iteration=rounds).reshape(h, w).astype(np.float32)
    return cv2.GaussianBlur(prob, (0, 0), 1.0)


def _counts(preds, masks):
    """(tp, fp, fn, tn) tensors of each (prediction, truth) pair, from the seg metrics module."""
    import torch

    from vitfeat.deep.segmentation.metrics import confusion_counts

    parts = [confusion_counts(torch.from_numpy(p[None, None].astype(np.float32)),
                              torch.from_numpy(m[None].astype(np.uint8)), num_classes=1) for p, m in zip(preds, masks)]
    return [torch.cat([c[i] for c in parts]) for i in range(4)]


def _pick_threshold(probs, masks) -> float:
    """The threshold (0.2-0.8) with the highest pooled Dice over the photos given."""
    best, best_dice = 0.5, -1.0
    for t in np.arange(0.2, 0.81, 0.05):
        tp, fp, fn, _ = (int(c.sum()) for c in _counts([p >= t for p in probs], masks))
        dice = 2 * tp / max(2 * tp + fp + fn, 1)
        if dice > best_dice + 1e-9:
            best, best_dice = float(t), dice
    return round(best, 2)


def train_pixel_gbm(manifest, out_dir, config: PixelGbmConfig | None = None, *, split_from=None,
                    allow_outside_root: bool = False, progress: bool = False) -> dict:
    """Train a pixel-GBM segmenter into ``out_dir``; returns its ``segmenter.json`` content.

    Parameters
    ----------
    manifest : path-like
        Manifest with ``<modality>`` photos and ``<modality>_mask`` masks (``patient_id`` groups the split).
    out_dir : path-like
        Output directory (``segmenter.json``, ``model.txt``, ``split.csv``, ``config.json``, ``log.csv``).
    config : PixelGbmConfig, optional
        Settings.
    split_from : path-like, optional
        A ``split.csv`` (case_id, patient_id, split) to reuse.
    allow_outside_root : bool
        Read manifest paths outside its folder.
    progress : bool
        Log each stage.

    Returns
    -------
    dict
    """
    import lightgbm as lgb
    import torch

    from vitfeat.deep.segmentation import data as segdata
    from vitfeat.deep.segmentation.metrics import scores
    from vitfeat.deep.segmentation.train import SEGMENTER_FORMAT

    config = config or PixelGbmConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if (out / "segmenter.json").is_file():
        raise FileExistsError(f"{out} already holds a segmenter; choose another output directory")
    start = time.perf_counter()
    items, skipped = segdata.items_from_manifest(manifest, config.modality, allow_outside_root=allow_outside_root)
    split = (segdata.read_split(split_from, items) if split_from is not None
             else segdata.grouped_split(items, tuple(config.split), config.seed))
    segdata.write_split(split, out / "split.csv")
    write_text(out / "config.json", json.dumps({**asdict(config), "split": list(config.split)}, indent=2))
    parts = {name: [i for i, s in zip(items, split["split"]) if s == name] for name in segdata.SPLITS}
    failures = list(skipped)
    loaded = {name: _load(parts[name], config.imgsz, failures) for name in segdata.SPLITS}
    if failures:
        write_csv(out / "failures.csv", pd.DataFrame(failures))
        log.warning("%d case(s) left out; see %s", len(failures), out / "failures.csv")
    if not loaded["train"]:
        raise ValueError(f"{manifest}: no readable training case")
    selection = "val" if loaded["val"] else "train"
    rng = np.random.default_rng(config.seed)
    x_train, y_train = _sample(loaded["train"], config.pixels_per_image, rng)
    if y_train.min() == y_train.max():
        raise ValueError(f"{manifest}: the training masks hold a single class: nothing to learn")
    params = {"objective": "binary", "learning_rate": config.learning_rate, "num_leaves": config.num_leaves,
              "min_child_samples": config.min_child_samples, "feature_fraction": 0.8, "bagging_fraction": 0.8,
              "bagging_freq": 1, "lambda_l2": 1.0, "num_threads": config.threads, "seed": config.seed,
              "deterministic": True, "force_row_wise": True, "verbosity": -1}
    train_set = lgb.Dataset(x_train, y_train, feature_name=list(FEATURE_NAMES), free_raw_data=True)
    round_seconds = []  # time since the start (reading, features, sampling included) after each round

    def clock(env):
        round_seconds.append(time.perf_counter() - start)

    callbacks, valid_sets, record = [clock], [], {}
    if selection == "val":
        x_val, y_val = _sample(loaded["val"], config.pixels_per_image, rng)
        valid_sets = [lgb.Dataset(x_val, y_val, reference=train_set)]
        callbacks += [lgb.early_stopping(30, verbose=False), lgb.record_evaluation(record)]
    booster = lgb.train(params, train_set, num_boost_round=config.n_estimators, valid_sets=valid_sets,
                        valid_names=["val"] if valid_sets else None, callbacks=callbacks)
    fit_seconds = time.perf_counter() - start
    rounds = int(booster.best_iteration or booster.num_trees())
    val_masks = [m for _, _, m in loaded[selection]]
    curve = []  # validation Dice (threshold 0.5) against training time, for the benchmark's curve
    for r in sorted({r for r in (1, 5, 10, 25, 50, 100, 200, 400, 800) if r < len(round_seconds)} | {rounds}):
        probs = [_probability_map(booster, f, r) for _, f, _ in loaded[selection]]
        tp, fp, fn, _ = (int(c.sum()) for c in _counts([p >= 0.5 for p in probs], val_masks))
        curve.append({"round": r, "seconds": round(round_seconds[r - 1], 3),
                      "val_pooled_dice": 2 * tp / max(2 * tp + fp + fn, 1)})
    probs = [_probability_map(booster, f, rounds) for _, f, _ in loaded[selection]]
    threshold = _pick_threshold(probs, val_masks)
    test_part = "test" if loaded["test"] else selection
    test_probs = (probs if test_part == selection
                  else [_probability_map(booster, f, rounds) for _, f, _ in loaded[test_part]])
    test = scores(*_counts([p >= threshold for p in test_probs], [m for _, _, m in loaded[test_part]]))
    if progress:
        log.info("pixel-gbm: %d rounds, threshold %.2f, %s Dice %.3f", rounds, threshold, test_part,
                 test["pooled"]["dice"])
    write_text(out / "model.txt", booster.model_to_string(num_iteration=rounds))
    history = record.get("val", {}).get("binary_logloss", [])
    log_frame = pd.DataFrame(curve)
    log_frame["val_logloss"] = [history[r - 1] if r <= len(history) else np.nan for r in log_frame["round"]]
    write_csv(out / "log.csv", log_frame, index=False)
    meta = {
        "format": SEGMENTER_FORMAT, "arch": ARCH, "encoder": None, "num_classes": 1, "mask_values": None,
        "normalize": "none", "resize": "area", "recipe": "vitiligo", "tta": False, "imgsz": config.imgsz,
        "modality": config.modality, "weights": "model.txt", "threshold": threshold,
        "features_version": FEATURES_VERSION, "feature_names": list(FEATURE_NAMES),
        "rounds": rounds, "selected_on": selection,
        "split_counts": {k: len(v) for k, v in loaded.items()}, "evaluated_on": test_part, "test_metrics": test,
        "train_seconds": round(fit_seconds, 2), "manifest": str(Path(manifest).resolve()),
        "config": {**asdict(config), "split": list(config.split)}, "device": "cpu", "torch": torch.__version__,
        "lightgbm": lgb.__version__,
    }
    write_text(out / "test_metrics.json", json.dumps(test, indent=2))
    meta["artefacts"] = artefact_hashes(out, [meta["weights"]])
    write_text(out / "segmenter.json", json.dumps(meta, indent=2))
    return meta


class PixelGbmSegmenter(ThresholdMaskSource):
    """A pixel-GBM ``segmenter.json`` directory as a mask source (``predict`` / ``describe``).

    Parameters
    ----------
    directory : path-like
        A :func:`train_pixel_gbm` output directory.
    meta : dict
        Its ``segmenter.json`` content (already read and format-checked by the caller).

    Raises
    ------
    vitfeat.artefacts.RunIntegrityError
        ``model.txt`` is missing or differs from the SHA-256 in ``segmenter.json``.
    ValueError
        The model was trained with another feature version.
    """

    def __init__(self, directory, meta: dict):
        import lightgbm as lgb

        self.directory = Path(directory)
        self.meta = meta
        source = self.directory / "segmenter.json"
        if meta.get("weights") not in (meta.get("artefacts") or {}):
            raise RunIntegrityError(f"{source}: no SHA-256 recorded for its model file {meta.get('weights')!r}: "
                                    "refused (train the segmenter again)")
        check_artefacts(self.directory, meta, source=source)
        if meta.get("features_version") != FEATURES_VERSION:
            raise ValueError(f"{self.directory / 'segmenter.json'}: pixel features version "
                             f"{meta.get('features_version')!r}; this vitfeat computes version {FEATURES_VERSION} "
                             "(retrain the segmenter)")
        self.weights = join_inside(self.directory, meta["weights"])
        # LightGBM's own text format: a tree list and numbers, nothing executable
        self.booster = lgb.Booster(model_str=self.weights.read_text())
        self.threshold = float(meta.get("threshold", 0.5))

    def describe(self) -> dict:
        """Provenance for feature tables: what model, which file (content hash), how it scored."""
        test = self.meta.get("test_metrics") or {}
        pooled = test.get("pooled") or {}
        return {
            "kind": "segmenter", "path": str(self.directory.resolve()), "arch": ARCH, "encoder": None,
            "imgsz": self.meta["imgsz"], "trained_modality": self.meta["modality"],
            "weights_hash": file_hash(self.weights), "threshold": self.threshold,
            "test_dice_pooled": pooled.get("dice"),
            "quality": self.meta.get("mask_quality") or (
                {"dice_pooled": pooled["dice"], "dice_pooled_ci": None, "n_images": test.get("n_images"),
                 "reference": f"its {self.meta.get('evaluated_on', 'test')} split"}
                if pooled.get("dice") is not None else None),
        }

    def predict_proba(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Lesion probability maps (H, W) float32 at each photo's own size.

        Parameters
        ----------
        images : list of numpy.ndarray
            ``(H, W, 3)`` uint8 RGB photos.

        Returns
        -------
        list of numpy.ndarray
        """
        out = []
        for image in images:
            prob = _probability_map(self.booster, pixel_features(_shrink(image, self.meta["imgsz"])))
            out.append(cv2.resize(prob, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR))
        return out
