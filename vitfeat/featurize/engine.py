"""The extraction engine: parallelism, per-case cache, masks, errors, output. It knows no family.

Every (case, family) result is cached on disk under a key made of the content hashes of the
images and masks it saw, the mask source, and the family's name, version and configuration. A
re-run (or a run killed half way) reads what is there and computes the rest, and the table it
writes equals an uninterrupted run's. Cases run in parallel through joblib (``loky`` processes,
or a Dask cluster with ``backend="dask"``); families with a ``batch_func`` (deep models) run in
the main process in batches, so that models are never pickled to workers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import traceback
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from joblib import Parallel, delayed, parallel_config
from tqdm.auto import tqdm

from vitfeat._version import __version__
from vitfeat.atomic import sweep_temporaries, write_json
from vitfeat.dataset import (
    MODALITY_NAMES,
    Case,
    ImageReadError,
    file_hash,
    load_manifest,
    read_image,
    read_mask,
)
from vitfeat.lifecycle import exit_with_parent, loky_workers_exit_with_parent
from vitfeat.featurize.masks import AUTO_MASK_VERSION, auto_mask, mask_predictor, parse_mask_source
from vitfeat.featurize.masks import describe_mask_source, mask_quality  # mask quality in the provenance (#30)
from vitfeat.featurize.registry import CaseArrays, Family, default_families, get_family
from vitfeat.featurize.units import add_physical_units, case_scales

# read_features / write_features are re-exported: callers import them from the engine too.
from vitfeat.featurize.table import (  # noqa: F401
    FORMATS,
    PROVENANCE_KEY,
    assemble,
    read_features,
    write_features,
)

log = logging.getLogger(__name__)

BACKENDS = ("loky", "dask")


@dataclass
class ExtractResult:
    """What :func:`extract` returns: the table, where it went, and how the run went.

    Attributes
    ----------
    frame : pandas.DataFrame
        The feature table.
    path : pathlib.Path or None
        Where it was written (None without an output).
    provenance : dict
        What the Parquet metadata holds (families, versions, options, hashes).
    n_failed, n_cached, n_computed : int
        Cases with errors; (case, family) results read from the cache and computed.
    failures : dict
        ``{case_id: error text}``.
    warnings : list
        The manifest check's warnings.
    """
    frame: pd.DataFrame
    path: Path | None
    provenance: dict
    n_failed: int = 0
    n_cached: int = 0  # (case, family) results read from the cache
    n_computed: int = 0
    failures: dict = field(default_factory=dict)  # case_id -> error text
    warnings: list = field(default_factory=list)  # the manifest check's warnings (degenerate masks, tiny images)

    def summary(self) -> str:
        """The run in a few lines: counts, errors by reason, warnings, where the table went."""
        n = len(self.frame)
        lines = [f"{n} case(s), {self.n_failed} with errors; {self.n_computed} family result(s) computed, "
                 f"{self.n_cached} read from cache"]
        if self.failures:
            reasons = Counter(_reason(e) for e in self.failures.values())
            lines.append("errors by reason:")
            lines += [f"  {count:4d} x {reason}" for reason, count in reasons.most_common()]
            for cid, err in list(self.failures.items())[:10]:
                lines.append(f"  {cid}: {err}")
            if len(self.failures) > 10:
                lines.append(f"  ... {len(self.failures) - 10} more in the 'error' column")
        if self.warnings:
            source = ("the manifest check and the cache" if any(w.startswith("cache entry ") for w in self.warnings)
                      else "the manifest check")
            lines.append(f"{len(self.warnings)} warning(s) from {source}:")
            lines += [f"  {w}" for w in self.warnings[:10]]
            if len(self.warnings) > 10:
                lines.append(f"  ... {len(self.warnings) - 10} more (vitfeat manifest check)")
        if self.path:
            lines.append(f"wrote {self.path}")
        return "\n".join(lines)


def _reason(error: str) -> str:
    first = error.split(";")[0]
    return first.split(": ")[-1][:100] if ": " in first else first[:100]


# ---------------------------------------------------------------------------------------------
# Cache
# ---------------------------------------------------------------------------------------------


def _cache_key(family: tuple, inputs: dict, mask_info: dict) -> str:
    name, version, config = family
    blob = json.dumps({"family": name, "version": version, "config": config, "inputs": inputs,
                       "masks": mask_info}, sort_keys=True, default=str)
    return hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()


def _mask_info(plan: dict, mask_describe, max_side: int | None, case: Case | None = None) -> dict:
    """What, besides the image files and the family, a cached value depends on."""
    info = {"plan": plan, "model": mask_describe}
    boxes = _case_boxes(case) if case is not None else {}
    if boxes:  # absent without boxes, so that caches written before boxes existed stay valid
        info["boxes"] = boxes
    if any(str(source).startswith("auto") for source in plan.values()):
        info["auto_mask_version"] = AUTO_MASK_VERSION
    if max_side:  # absent when unset, so that caches written before the option existed stay valid
        info["max_side"] = int(max_side)
    return info


def _cache_path(cache_dir: Path, family_name: str, key: str) -> Path:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in family_name)
    return cache_dir / safe / key[:2] / f"{key}.json"


def _cache_read(path: Path, warnings: list | None = None, family: str | None = None,
                config: dict | None = None) -> dict | None:
    """The cached values at ``path``, or None when absent or damaged (then recomputed).

    A damaged entry - truncated, zero-length, NUL-filled, not a JSON object of numbers (``{}``, a
    list), or (for a family that declares its columns) holding other columns than the family
    writes - is recomputed; the reason, naming the entry, is appended to ``warnings``.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return _damaged(path, f"unreadable ({exc.strerror or exc})", warnings)
    try:
        values = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        what = ("empty (zero bytes)" if not raw else "NUL-filled" if not raw.strip(b"\0")
                else "not valid JSON (truncated?)")
        return _damaged(path, what, warnings)
    if not isinstance(values, dict) or not values:
        what = "an empty object" if isinstance(values, dict) else f"a JSON {type(values).__name__}, not an object"
        return _damaged(path, what, warnings)
    if not all(isinstance(k, str) and (v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)))
               for k, v in values.items()):
        return _damaged(path, "holds values that are not numbers", warnings)
    expected = _declared_columns(family, config)
    if expected is not None and set(values) != expected:
        return _damaged(path, f"holds {len(values)} column(s) where family '{family}' writes {len(expected)}",
                        warnings)
    return {k: (float("nan") if v is None else float(v)) for k, v in values.items()}


def _damaged(path: Path, what: str, warnings: list | None) -> None:
    message = f"cache entry {path} is damaged ({what}); recomputed"
    log.warning(message)
    if warnings is not None:
        warnings.append(message)
    return None


def _declared_columns(family: str | None, config: dict | None) -> set | None:
    if family is None:
        return None
    try:
        fam = get_family(family)
        return set(fam.columns(config)) if fam.features is not None else None
    except Exception:  # noqa: BLE001 - a family without a static column list: the type checks only
        return None


def _cache_write(path: Path, values: dict) -> None:
    if not values:  # nothing to keep; an empty entry in the cache can only be damage
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, values, indent=None)


# ---------------------------------------------------------------------------------------------
# One case
# ---------------------------------------------------------------------------------------------


def _mask_plan(case: Case, mask_kind: str, mask_path: str | None, has_image: dict,
               trained: str | None = None) -> dict:
    """Which source each modality's mask comes from: given / auto / auto (no given mask) / model
    (a model only for photos of the modality it was trained on, ``trained``; auto for the others)."""
    plan = {}
    for modality, present in has_image.items():
        if not present:
            continue
        if mask_kind == "given":
            plan[modality] = "given" if case.mask(modality) is not None else "auto (no given mask)"
        elif mask_kind == "auto":
            plan[modality] = "auto"
        elif trained not in (None, modality):
            plan[modality] = f"auto (the model masks {trained} photos only)"
        else:
            plan[modality] = f"{mask_kind}:{mask_path}"
    return plan


def _model_modalities(spec: str, describe: dict | None, used: list) -> None:
    """Refuse a model that masks none of the photos (trained on another modality); warn when it masks some."""
    trained = (describe or {}).get("trained_modality")
    if not trained:
        return
    other = [m for m in used if m != trained]

    def named(modalities):
        return " and ".join(MODALITY_NAMES.get(m, m) for m in modalities)

    if trained not in used:
        raise ValueError(f"--masks {spec}: the model was trained on {named([trained])} photos and the manifest has "
                         f"only {named(used)} photos: it cannot mask them (train one on these photos, or use "
                         "--masks auto / given)")
    if other:
        log.warning("--masks %s: the model was trained on %s photos; the %s photos get automatic masks", spec,
                    named([trained]), named(other))


def _input_hashes(case: Case, plan: dict) -> dict:
    hashes = {}
    for modality in plan:
        hashes[modality] = file_hash(case.image(modality))
        if plan[modality] == "given":
            hashes[f"{modality}_mask"] = file_hash(case.mask(modality))
    return hashes


def fit_to_max_side(image: np.ndarray, max_side: int | None, *, nearest: bool = False) -> np.ndarray:
    """``image`` shrunk (never enlarged) so that its longest side is at most ``max_side`` px.

    Area averaging for photos (no aliasing), nearest neighbour for masks (they stay binary).

    Parameters
    ----------
    image : numpy.ndarray
        A photo (H, W, 3) or a mask (H, W).
    max_side : int or None
        The longest side allowed (None: unchanged).
    nearest : bool, default False
        Nearest-neighbour resampling (masks).

    Returns
    -------
    numpy.ndarray
    """
    h, w = image.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return image
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if nearest:
        return cv2.resize(image.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(image.dtype)
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def load_case_arrays(case: Case, plan: dict, max_side: int | None = None) -> CaseArrays:
    """Read a case's images and build or read its masks according to ``plan``.

    ``max_side``: shrink photos (and given masks) so that the longest side is at most this many px
    before anything else, so that pixel-unit features and defaults mean the same on every camera.

    Parameters
    ----------
    case : vitfeat.dataset.Case
        The case (its photo and mask paths).
    plan : dict
        ``{modality: mask source}`` (``given``, ``auto``, ``<kind>:<path>``).
    max_side : int, optional
        Longest side in pixels.

    Returns
    -------
    CaseArrays
    """
    arrays, masks, native_sizes = {}, {}, {}
    for modality, source in plan.items():
        rgb = read_image(case.image(modality))
        native = native_sizes[modality] = rgb.shape[:2]
        rgb = fit_to_max_side(rgb, max_side)
        arrays[modality] = rgb
        if source == "given":
            mask = read_mask(case.mask(modality))
            if mask.shape != native:
                raise ImageReadError(f"{case.mask(modality)}: mask size {mask.shape[::-1]} differs from image "
                                     f"size {native[::-1]}")
            mask = fit_to_max_side(mask, max_side, nearest=True)
        elif ":" in source:  # a model-backed source, "<kind>:<path>"
            kind, _, path = source.partition(":")
            mask = np.asarray(mask_predictor(path, kind).predict(rgb, modality), dtype=bool)
        else:
            mask = auto_mask(rgb, modality)
        masks[modality] = mask
    return CaseArrays(case_id=case.case_id, clinical=arrays["clinical"], wood=arrays.get("wood"),
                      clinical_mask=masks.get("clinical"), wood_mask=masks.get("wood"), mask_source=dict(plan),
                      boxes=_scaled_boxes(case, native_sizes, arrays))


def _case_boxes(case: Case) -> dict:
    """The manifest's boxes of a case, ``{modality: (x0, y0, x1, y1)}``; empty when it has none."""
    boxes = {}
    for modality in ("clinical", "wood"):
        box = case.box(modality)
        if box is not None:
            boxes[modality] = tuple(float(v) for v in box)
    return boxes


def _scaled_boxes(case: Case, native_sizes: dict, arrays: dict) -> dict:
    """Boxes in pixels of the photos as loaded (``max_side`` may have shrunk them)."""
    scaled = {}
    for modality, box in _case_boxes(case).items():
        if modality not in arrays:
            continue
        (h0, w0), (h1, w1) = native_sizes[modality], arrays[modality].shape[:2]
        sx, sy = w1 / w0, h1 / h0
        scaled[modality] = (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)
    return scaled


def _extract_case(case: Case, families: list[tuple], mask_spec: str, mask_describe: dict | None,
                  cache_dir: str | None, single_thread: bool = False, max_side: int | None = None) -> dict:
    """Worker: features of one case for the per-case families, using and filling the cache."""
    if single_thread:
        # Parallelism is across cases; OpenCV's own threads would only compete with the workers.
        cv2.setNumThreads(1)
        exit_with_parent()  # a worker process: gone with the main process, even after kill -9
    kind, path = parse_mask_source(mask_spec)
    result = {"case_id": case.case_id, "features": {}, "errors": [], "masks": {}, "hashes": {},
              "n_cached": 0, "n_computed": 0, "warnings": []}
    try:
        plan = _mask_plan(case, kind, path, {"clinical": True, "wood": case.wood is not None},
                          (mask_describe or {}).get("trained_modality"))
        result["masks"] = plan
        hashes = _input_hashes(case, plan)
        result["hashes"] = hashes
    except (ImageReadError, OSError) as exc:
        result["errors"].append(_io_message(exc))
        return result
    mask_info = _mask_info(plan, mask_describe, max_side, case)
    todo = []
    for fam in families:
        cached = None
        if cache_dir:
            cached = _cache_read(_cache_path(Path(cache_dir), fam[0], _cache_key(fam, hashes, mask_info)),
                                 result["warnings"], fam[0], fam[2])
        if cached is not None:
            result["features"][fam[0]] = cached
            result["n_cached"] += 1
        else:
            todo.append(fam)
    if not todo:
        return result
    try:
        arrays = load_case_arrays(case, plan, max_side)
    except Exception as exc:  # noqa: BLE001 - any unreadable input fails this case only
        result["errors"].append(_io_message(exc))
        return result
    for fam in todo:
        name, _version, config = fam
        try:
            values = {k: float(v) for k, v in get_family(name)(arrays, **config).items()}
        except Exception as exc:  # noqa: BLE001 - a family bug on one case must not stop the run
            log.debug("case %s family %s failed:\n%s", case.case_id, name, traceback.format_exc())
            result["errors"].append(f"{name}: {type(exc).__name__}: {exc}")
            continue
        result["features"][name] = values
        result["n_computed"] += 1
        if cache_dir:
            _cache_write(_cache_path(Path(cache_dir), name, _cache_key(fam, hashes, mask_info)), values)
    return result


def _io_message(exc: Exception) -> str:
    if isinstance(exc, ImageReadError):
        return str(exc)
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return f"{exc.filename}: file not found"
    return f"{type(exc).__name__}: {exc}"


# ---------------------------------------------------------------------------------------------
# Batch families (deep models) in the main process
# ---------------------------------------------------------------------------------------------


def _run_batch_family(fam: Family, spec: tuple, cases: list[Case], results: list[dict], mask_describe,
                      cache_dir: str | None, batch_size: int, progress: bool, max_side: int | None = None) -> None:
    pending = []
    for case, res in zip(cases, results):
        if not res["hashes"]:  # inputs unreadable: the case already carries its error
            continue
        mask_info = _mask_info(res["masks"], mask_describe, max_side, case)
        key_path = (_cache_path(Path(cache_dir), spec[0], _cache_key(spec, res["hashes"], mask_info))
                    if cache_dir else None)
        cached = _cache_read(key_path, res.setdefault("warnings", []), spec[0], spec[2]) if key_path else None
        if cached is not None:
            res["features"][spec[0]] = cached
            res["n_cached"] += 1
        else:
            pending.append((case, res, key_path))
    bar = tqdm(total=len(pending), desc=spec[0], unit="case", disable=not progress or not pending)
    for start in range(0, len(pending), batch_size):
        chunk, arrays = pending[start:start + batch_size], []
        ok = []
        for case, res, key_path in chunk:
            try:
                arrays.append(load_case_arrays(case, res["masks"], max_side))
                ok.append((res, key_path))
            except Exception as exc:  # noqa: BLE001
                res["errors"].append(_io_message(exc))
        for (res, key_path), values in _batch_outputs(fam, spec, arrays, ok):
            values = {k: float(v) for k, v in values.items()}
            res["features"][spec[0]] = values
            res["n_computed"] += 1
            if key_path:
                _cache_write(key_path, values)
        bar.update(len(chunk))
    bar.close()


def _batch_outputs(fam: Family, spec: tuple, arrays: list, ok: list) -> list:
    """``[((res, key_path), values)]`` for the cases of a batch whose features were computed.

    When the batch call fails, the cases are run one by one, so that one bad case (an odd image
    size, an empty crop) costs only its own features, not those of the whole batch.
    """
    if not arrays:
        return []
    try:
        return list(zip(ok, fam.batch_func(arrays, **spec[2])))
    except Exception as exc:  # noqa: BLE001
        if len(arrays) > 1:
            return [out for one, entry in zip(arrays, ok) for out in _batch_outputs(fam, spec, [one], [entry])]
        ok[0][0]["errors"].append(f"{spec[0]}: {type(exc).__name__}: {exc}")
        return []


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def load_config(path) -> dict:
    """Read an extract YAML config: the keys of :func:`extract` (``families``, ``masks``, ``jobs``,
    ``format``, ``cache_dir``, ``backend``, ``scheduler``, ``family_config``, ``max_side``).

    Parameters
    ----------
    path : path-like
        The YAML file.

    Returns
    -------
    dict

    Raises
    ------
    ValueError
        An unreadable file or an unknown key (named with the path).
    """
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read config ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: config must be a mapping of option: value")
    allowed = {"families", "masks", "jobs", "format", "cache_dir", "backend", "scheduler", "family_config",
               "batch_size", "targets", "max_side"}
    unknown = set(data) - allowed
    if unknown:
        raise ValueError(f"{path}: unknown config key(s) {', '.join(sorted(unknown))} "
                         f"(allowed: {', '.join(sorted(allowed))})")
    return data


def resolve_families(families, family_config: dict | None = None) -> list[tuple[Family, tuple]]:
    """``[(Family, (name, version, config))]``; config is the family defaults updated by the user's.

    Parameters
    ----------
    families : list of str or str or None
        Family names or specs (None: the default families).
    family_config : dict, optional
        ``{family: {option: value}}``.

    Returns
    -------
    list of tuple

    Raises
    ------
    ValueError
        An unknown option, or two families that would write the same columns.
    """
    if families is None:
        families = list(default_families())
    if isinstance(families, str):
        families = [f for f in families.replace(",", " ").split() if f]
    family_config = family_config or {}
    out = []
    for spec in families:
        fam = get_family(spec)
        cfg = {**fam.defaults, **family_config.get(spec, {})}
        unknown = set(family_config.get(spec, {})) - set(fam.defaults)
        if unknown and fam.defaults:
            raise ValueError(f"family '{spec}' has no option(s) {', '.join(sorted(unknown))} "
                             f"(options: {', '.join(sorted(fam.defaults))})")
        out.append((fam, (spec, fam.version, cfg)))
    writers: dict[str, str] = {}
    for fam, (spec, _, _) in out:
        for prefix in fam.column_prefixes:
            if prefix in writers and writers[prefix] != spec:
                raise ValueError(f"families '{writers[prefix]}' and '{spec}' would both write the columns "
                                 f"{prefix}*; give one its own column stem with ':name=...' "
                                 f"(e.g. '{spec}:name=my_{prefix.split('_', 2)[2].rstrip('_')}')")
            writers[prefix] = spec
    return out


def extract(manifest, output=None, *, families=None, masks: str = "given", jobs: int = 1, fmt: str | None = None,
            cache_dir=None, backend: str = "loky", scheduler: str | None = None, family_config: dict | None = None,
            batch_size: int = 16, targets=None, progress: bool = True, max_side: int | None = None,
            skip_invalid: bool = False, pixels_per_mm: float | None = None) -> ExtractResult:
    """Extract features for every case of ``manifest`` (path or :class:`~vitfeat.dataset.Manifest`).

    ``output``: where to write the table (None: return it only). ``fmt``: parquet or csv (default
    from the suffix). ``cache_dir``: per-case cache (default ``<output folder>/.vitfeat-cache``;
    None without an output). ``backend="dask"`` runs cases on the Dask cluster at ``scheduler``
    (workers must see the images and the cache folder at the same paths). ``max_side``: shrink
    photos whose longest side exceeds it (px) before any feature, so that pixel-unit features and
    pixel defaults (border band, ring width, minimum satellite area; tuned at ~512 px) mean the
    same across cameras; recorded in the provenance and reused by ``predict``. ``skip_invalid``:
    rows of a manifest path with fatal problems are not extracted but written with their reason in
    ``error`` (features empty), instead of stopping the run (``extract --skip-invalid``).
    ``pixels_per_mm``: the scale of rows whose manifest has no ``pixels_per_mm`` value; with a scale,
    length and area features gain ``_mm``/``_mm2`` versions (:mod:`vitfeat.featurize.units`).

    Parameters
    ----------
    manifest : path-like or vitfeat.dataset.Manifest
        The cases (:class:`vitfeat.FeatureExtractor` takes a DataFrame).
    output : path-like, optional
        The table to write.
    families : list of str, optional
        Families (default: the default handcrafted ones).
    masks : str, default "given"
        Mask source.
    jobs : int, default 1
        Worker processes.
    fmt : {"parquet", "csv"}, optional
        Output format.
    cache_dir : path-like, optional
        Per-case cache folder.
    backend : {"loky", "dask"}, default "loky"
        Where cases run.
    scheduler : str, optional
        Dask scheduler address.
    family_config : dict, optional
        ``{family: {option: value}}``.
    batch_size : int, default 16
        Batch size of batched (deep) families.
    targets : list of str, optional
        Target columns to carry.
    progress : bool, default True
        Progress bars.
    max_side : int, optional
        Longest photo side in pixels.
    skip_invalid : bool, default False
        Write invalid rows with their reason instead of stopping.
    pixels_per_mm : float, optional
        Scale of rows without a manifest ``pixels_per_mm`` value.

    Returns
    -------
    ExtractResult
    """
    if max_side is not None and (int(max_side) != max_side or max_side < 32):
        raise ValueError(f"max_side must be a whole number of pixels >= 32 (got {max_side!r})")
    invalid = None  # rows set aside by skip_invalid (data helper, issue #13)
    if hasattr(manifest, "frame"):
        man = manifest
    elif skip_invalid:
        from vitfeat.dataset import load_valid_rows

        man, invalid = load_valid_rows(manifest, targets=targets, require_targets=False)
    else:
        man = load_manifest(manifest, targets=targets, require_targets=False)
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend '{backend}' (use {' or '.join(BACKENDS)})")
    if backend == "dask" and not scheduler:
        raise ValueError("backend 'dask' needs a scheduler address (e.g. tcp://10.0.0.5:8786)")
    kind, mask_path = parse_mask_source(masks)
    mask_describe = mask_predictor(mask_path, kind).describe() if mask_path else None
    used = ["clinical"] + (["wood"] if "wood" in man.frame.columns and man.frame["wood"].notna().any() else [])
    _model_modalities(masks, mask_describe, used)
    quality = mask_quality(masks, mask_describe, used)
    if quality is not None and not any(quality.values()):
        log.warning("mask source %s", describe_mask_source(masks, quality))
    resolved = resolve_families(families, family_config)
    scales = case_scales(man, pixels_per_mm)  # a bad scale fails before any work
    per_case = [spec for fam, spec in resolved if fam.batch_func is None]
    batched = [(fam, spec) for fam, spec in resolved if fam.batch_func is not None]
    if output is not None:
        output = Path(output)
        fmt = fmt or ("csv" if output.suffix.lower() == ".csv" else "parquet")
        if cache_dir is None:
            cache_dir = output.parent / ".vitfeat-cache"
    cache = str(Path(cache_dir).resolve()) if cache_dir else None
    if cache and Path(cache).is_dir():
        swept = sweep_temporaries(cache, recursive=True)  # half-written entries of a killed run
        if swept:
            log.info("removed %d temporary file(s) left in %s by a killed run", swept, cache)

    cases = list(man.cases())
    parallel = backend == "dask" or jobs != 1
    tasks = (delayed(_extract_case)(c, per_case, masks, mask_describe, cache, parallel, max_side) for c in cases)
    with ExitStack() as stack:
        if backend == "dask":
            from dask.distributed import Client

            stack.enter_context(Client(scheduler))
            stack.enter_context(parallel_config(backend="dask"))
            n_jobs = -1
        else:
            n_jobs = jobs
            stack.enter_context(loky_workers_exit_with_parent())
        runner = Parallel(n_jobs=n_jobs, return_as="generator")
        results = list(tqdm(runner(tasks), total=len(cases), desc="extract", unit="case", disable=not progress))
    for fam, spec in batched:
        _run_batch_family(fam, spec, cases, results, mask_describe, cache, batch_size, progress, max_side)

    frame = assemble(man, results, [spec for _, spec in resolved])
    frame = add_physical_units(frame, cases, scales, max_side)
    failures = {r["case_id"]: "; ".join(r["errors"]) for r in results if r["errors"]}
    if invalid is not None and len(invalid):
        frame = pd.concat([frame, invalid], ignore_index=True)[frame.columns]
        failures.update(zip(invalid["case_id"], invalid["error"]))
    provenance = {
        "vitfeat_version": __version__,
        "manifest": str(man.path) if man.path else None,
        "families": {spec[0]: {"version": spec[1], "config": spec[2]} for _, spec in resolved},
        "masks": masks,
        "max_side": int(max_side) if max_side else None,
        "pixels_per_mm": float(pixels_per_mm) if pixels_per_mm is not None else None,
        "physical_units": bool(scales),
        "mask_model": mask_describe,
        "mask_quality": quality,
        "mask_source": {r["case_id"]: r["masks"] for r in results},
        "content_hashes": {r["case_id"]: r["hashes"] for r in results},
        "targets": list(man.targets),
        "n_failed": len(failures),
        "manifest_warnings": [str(p) for p in man.problems if not p.fatal],
    }
    path = write_features(frame, output, provenance, fmt) if output is not None else None
    return ExtractResult(frame=frame, path=path, provenance=provenance, n_failed=len(failures),
                         n_cached=sum(r["n_cached"] for r in results),
                         n_computed=sum(r["n_computed"] for r in results), failures=failures,
                         warnings=provenance["manifest_warnings"] + [w for r in results for w in r.get("warnings", [])])
