"""Feature robustness: which features survive a re-photograph, measured as ICC(1,1).

:func:`run_robustness` renders every case of a manifest under named, seeded perturbations
(:mod:`vitfeat.pipelines.perturb`; the unperturbed ``none`` version always included), writes the
versions as image files under ``<out>/perturbed/`` with a manifest of them, extracts their features
with the ordinary engine (:func:`vitfeat.featurize.extract`, whose per-case cache under
``<out>/.vitfeat-cache`` makes a re-run or an interrupted run cheap), and computes for every feature
the ICC(1,1) across the versions of each case (:mod:`vitfeat.evaluation.icc`). It writes

- ``perturbed_features.parquet``: one row per case x perturbation x repeat (``case_id``,
  ``perturbation``, ``repeat``, ``error``, features), provenance in the metadata;
- ``feature_icc.csv``: ``feature, family, modality, icc, icc_low, icc_high, n_cases, n_perturbations``;
- ``feature_icc_by_perturbation.csv``: the same ICC on ``none`` + one perturbation's repeats;
- ``perturbations.csv``: every version's drawn parameters;
- ``robustness.md``, ``robustness.html`` and ``icc_by_family.png``: the summary.

Masks: a case's given mask (or, without one, the automatic mask of the unperturbed photo) is
written beside each version, moved with the photo and, for ``contour``, eroded or dilated; every
version is then extracted with ``masks="given"``, so that the mask differs only by the perturbation.
"""

from __future__ import annotations

import html
import json
import logging
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from vitfeat._version import __version__
from vitfeat.atomic import write_bytes, write_csv, write_figure, write_json, write_text
from vitfeat.dataset import file_hash, load_manifest, read_image, read_mask, write_mask
from vitfeat.evaluation.icc import EXCELLENT, GOOD, icc_1_1_many
from vitfeat.featurize import describe_column, extract, write_features
from vitfeat.featurize.engine import fit_to_max_side
from vitfeat.featurize.masks import auto_mask
from vitfeat.featurize.registry import column_family
from vitfeat.pipelines.perturb import DEFAULT_PERTURBATIONS, MODALITIES, apply_perturbation, get_perturbation

log = logging.getLogger(__name__)

ICC_COLUMNS = ["feature", "family", "modality", "icc", "icc_low", "icc_high", "n_cases", "n_perturbations"]
#: Below this many cases the ICC's interval is wide; the run warns.
FEW_CASES = 10
ID_COLUMNS = ["case_id", "perturbation", "repeat"]


@dataclass
class RobustnessResult:
    """What :func:`run_robustness` computed and wrote.

    Attributes
    ----------
    features : pandas.DataFrame
        Features of every (case, perturbation, repeat), as in ``perturbed_features.parquet``.
    icc : pandas.DataFrame
        ICC per feature with its interval (``feature_icc.csv``).
    by_perturbation : pandas.DataFrame
        ICC per feature and perturbation.
    families : pandas.DataFrame
        Per family: number of features, median ICC and shares with ICC >= 0.75 and >= 0.9.
    out_dir : pathlib.Path
        Where the files were written.
    settings : dict
        Cases, perturbations, repeats and seed of the study.
    warnings : list of str
        What the run warned about.
    """

    features: pd.DataFrame  # perturbed_features.parquet
    icc: pd.DataFrame  # feature_icc.csv
    by_perturbation: pd.DataFrame
    families: pd.DataFrame  # per family: n_features, median ICC, shares >= 0.75 / 0.9
    out_dir: Path
    settings: dict
    warnings: list = field(default_factory=list)

    def summary(self) -> str:
        """A plain-text summary (what the CLI prints)."""
        s = self.settings
        lines = [f"{s['n_cases']} case(s) x {len(s['perturbations'])} perturbation(s) x {s['repeats']} repeat(s) "
                 f"(+ none), seed {s['seed']}; {len(self.icc)} feature(s)",
                 f"{'family':<12}{'features':>9}{'median ICC':>12}{'ICC>=0.75':>11}{'ICC>=0.9':>10}"]
        for row in self.families.itertuples():
            lines.append(f"{row.family:<12}{row.n_features:>9}{row.median_icc:>12.3f}"
                         f"{row.share_good:>11.0%}{row.share_excellent:>10.0%}")
        lines += [f"warning: {w}" for w in self.warnings]
        lines.append(f"wrote {self.out_dir / 'feature_icc.csv'} and {self.out_dir / 'robustness.html'}")
        return "\n".join(lines)


def resolve_perturbations(names) -> list[str]:
    """Perturbation names from a list or a comma/space separated string, checked (``none`` dropped:
    it is always run); unknown names raise :class:`~vitfeat.registry.UnknownNameError` listing the valid ones.

    Parameters
    ----------
    names : str, list of str or None
        None: :data:`~vitfeat.pipelines.perturb.DEFAULT_PERTURBATIONS`.

    Returns
    -------
    list of str
    """
    if names is None:
        names = list(DEFAULT_PERTURBATIONS)
    if isinstance(names, str):
        names = names.replace(",", " ").split()
    names = [n for item in names for n in str(item).replace(",", " ").split()]
    for name in names:
        get_perturbation(name)
    out = list(dict.fromkeys(n for n in names if n != "none"))
    if not out:
        raise ValueError("no perturbation to run (give at least one besides 'none')")
    return out


def _slug(case_id: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", str(case_id))[:60]
    return f"{safe}-{zlib.crc32(str(case_id).encode()):08x}"


def _png(path: Path, rgb: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"{path}: OpenCV could not encode the perturbed photo as PNG")
    write_bytes(path, buf.tobytes())


def _load_reference(case, masks: str, max_side: int | None) -> tuple[dict, dict, dict]:
    """The unperturbed photos and masks of a case (given, else automatic), and the mask sources."""
    images, out_masks, sources = {}, {}, {}
    for modality in MODALITIES:
        path = case.image(modality)
        if path is None:
            images[modality] = out_masks[modality] = None
            continue
        rgb = fit_to_max_side(read_image(path), max_side)
        images[modality] = rgb
        mask_path = case.mask(modality)
        if masks == "given" and mask_path is not None:
            mask = fit_to_max_side(read_mask(mask_path), max_side, nearest=True)
            if mask.shape != rgb.shape[:2]:
                raise ValueError(f"{mask_path}: mask size {mask.shape[::-1]} differs from image size "
                                 f"{rgb.shape[:2][::-1]}")
            sources[modality] = "given"
        else:
            mask = auto_mask(rgb, modality)
            sources[modality] = "auto"
        out_masks[modality] = np.asarray(mask, dtype=bool)
    return images, out_masks, sources


def _read_record(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # absent or torn: render again


def _render_case(case, versions: list[tuple[str, int]], folder: str, seed: int, masks: str,
                 max_side: int | None) -> list[dict]:
    """Worker: write every version of one case (skipping those already written); their manifest rows."""
    cv2.setNumThreads(1)
    base = Path(folder) / _slug(case.case_id)
    rows, reference = [], None
    # What a written version depends on besides its name: a re-run with another seed, mask source,
    # max_side or changed input files renders it again instead of reusing it.
    inputs = {c: file_hash(p) for c in ("clinical", "wood", "clinical_mask", "wood_mask")
              if (p := getattr(case, c)) is not None}
    settings = {"seed": int(seed), "masks": masks, "max_side": max_side, "inputs": inputs}
    for name, repeat in versions:
        vdir = base / f"{name}_r{repeat}"
        record = vdir / "params.json"
        row = {"case_id": f"{case.case_id}@{name}#{repeat}", "patient_id": case.case_id,
               "source_case": case.case_id, "perturbation": name, "repeat": repeat}
        done = _read_record(record)  # written last: the version is complete
        if done is not None and done.get("settings") == settings:
            rows.append({**row, **{k: v for k, v in done.items() if k != "settings"}})
            continue
        if reference is None:
            reference = _load_reference(case, masks, max_side)
        images, mask_arrays, sources = reference
        new_images, new_masks, params = apply_perturbation(name, images, mask_arrays, seed=seed,
                                                           case_id=case.case_id, repeat=repeat)
        vdir.mkdir(parents=True, exist_ok=True)
        files = {}
        for modality in MODALITIES:
            if new_images.get(modality) is None:
                continue
            _png(vdir / f"{modality}.png", new_images[modality])
            write_mask(vdir / f"{modality}_mask.png", new_masks[modality])
            files[modality] = str((vdir / f"{modality}.png").relative_to(folder))
            files[f"{modality}_mask"] = str((vdir / f"{modality}_mask.png").relative_to(folder))
        info = {"files": files, "params": params, "mask_source": sources}
        write_json(record, {**info, "settings": settings})
        rows.append({**row, **info})
    return rows


def render_versions(manifest, out_dir, perturbations, *, repeats: int = 1, seed: int = 0, masks: str = "given",
                    max_side: int | None = None, jobs: int = 1, progress: bool = True) -> pd.DataFrame:
    """Write every case x perturbation x repeat (and ``none``) as files under ``<out_dir>/perturbed``.

    Parameters
    ----------
    manifest : Manifest
        A loaded manifest.
    out_dir : path-like
        The study folder; versions already written there are kept (resume).
    perturbations : list of str
        Checked names (see :func:`resolve_perturbations`).
    repeats : int
        Versions per perturbation, each with its own draw.
    seed : int
        The study's seed.
    masks : {"given", "auto"}
        Given masks (cases without one: the automatic mask), or automatic masks for all.
    max_side : int, optional
        Shrink photos to this longest side before perturbing (as ``extract --max-side``).
    jobs : int
        Parallel worker processes.
    progress : bool
        Show a progress bar.

    Returns
    -------
    pandas.DataFrame
        One row per version: ``case_id`` (``<case>@<perturbation>#<repeat>``), ``patient_id``,
        ``source_case``, ``perturbation``, ``repeat``, the file paths (relative to
        ``<out_dir>/perturbed``), ``params`` and ``mask_source``.
    """
    folder = Path(out_dir).resolve() / "perturbed"
    folder.mkdir(parents=True, exist_ok=True)
    versions = [("none", 0)] + [(p, r) for p in perturbations for r in range(repeats)]
    cases = list(manifest.cases())
    tasks = (delayed(_render_case)(c, versions, str(folder), seed, masks, max_side) for c in cases)
    runner = Parallel(n_jobs=jobs, return_as="generator")
    rows = []
    for case_rows in tqdm(runner(tasks), total=len(cases), desc="perturb", unit="case", disable=not progress):
        rows += case_rows
    frame = pd.DataFrame(rows)
    files = pd.DataFrame(list(frame["files"]))
    return pd.concat([frame.drop(columns=["files"]), files], axis=1)


def _versions_manifest(versions: pd.DataFrame, folder: Path) -> Path:
    cols = ["case_id", "patient_id"] + [c for c in ("clinical", "wood", "clinical_mask", "wood_mask")
                                        if c in versions.columns]
    path = folder / "manifest.csv"
    write_csv(path, versions[cols])
    return path


def feature_icc(table: pd.DataFrame, features: list[str], *, case_col: str = "source_case",
                version_cols=("perturbation", "repeat")) -> pd.DataFrame:
    """ICC(1,1) of every feature across the versions of each case.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per case x version.
    features : list of str
        Feature columns.
    case_col : str
        The column naming the case (the ICC's targets).
    version_cols : tuple of str
        Columns naming a version (the ICC's measurements); every case must have the same versions.

    Returns
    -------
    pandas.DataFrame
        ``feature, family, modality, icc, icc_low, icc_high, n_cases, n_perturbations`` (cases with a
        missing value in some version of that feature are left out of its ICC; ``n_perturbations``
        counts the perturbations besides ``none``).
    """
    version_cols = list(version_cols)
    wide = table.set_index([case_col] + version_cols)[features].unstack(version_cols)
    cases = wide.index
    n_versions = len(wide.columns) // max(len(features), 1)
    cube = wide.to_numpy(dtype=float).reshape(len(cases), len(features), n_versions).transpose(0, 2, 1)
    cube = np.where(np.isfinite(cube), cube, np.nan)
    complete = np.isfinite(cube).all(axis=1)  # (cases, features)
    icc = np.full(len(features), np.nan)
    low, high = icc.copy(), icc.copy()
    n_cases = complete.sum(axis=0)
    patterns: dict[bytes, list[int]] = {}
    for j in range(len(features)):
        patterns.setdefault(complete[:, j].tobytes(), []).append(j)
    for _key, cols in patterns.items():
        rows = complete[:, cols[0]]
        if rows.sum() < 2 or n_versions < 2:
            continue
        values, lo, hi, _F = icc_1_1_many(cube[rows][:, :, cols])
        icc[cols], low[cols], high[cols] = values, lo, hi
    pert = table[version_cols[0]] if version_cols else pd.Series(dtype=str)
    n_pert = int(pert[pert != "none"].nunique())
    fams = [column_family(c) for c in features]
    return pd.DataFrame({"feature": features, "family": [f[0] for f in fams], "modality": [f[1] for f in fams],
                         "icc": icc, "icc_low": low, "icc_high": high, "n_cases": n_cases.astype(int),
                         "n_perturbations": n_pert})[ICC_COLUMNS]


def icc_by_perturbation(table: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """ICC(1,1) of each feature on the ``none`` version plus one perturbation's repeats, per perturbation.

    Parameters
    ----------
    table : pandas.DataFrame
        ``perturbed_features`` with a ``source_case`` column.
    features : list of str
        Feature columns.

    Returns
    -------
    pandas.DataFrame
        ``feature, family, modality, perturbation, icc, icc_low, icc_high, n_cases``.
    """
    parts = []
    for name in [p for p in table["perturbation"].unique() if p != "none"]:
        sub = table[table["perturbation"].isin(["none", name])]
        part = feature_icc(sub, features).drop(columns=["n_perturbations"])
        parts.append(part.assign(perturbation=name))
    cols = ["feature", "family", "modality", "perturbation", "icc", "icc_low", "icc_high", "n_cases"]
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


def family_summary(icc: pd.DataFrame) -> pd.DataFrame:
    """Per family: number of features with an ICC, median ICC, share with ICC >= 0.75 and >= 0.9.

    Parameters
    ----------
    icc : pandas.DataFrame
        ``feature_icc.csv``.

    Returns
    -------
    pandas.DataFrame
        ``family, n_features, median_icc, share_good, share_excellent`` (``share_*`` among features
        with a defined ICC), sorted by median ICC.
    """
    ok = icc.dropna(subset=["icc"])
    rows = [{"family": fam, "n_features": len(part), "median_icc": float(part["icc"].median()),
             "share_good": float((part["icc"] >= GOOD).mean()),
             "share_excellent": float((part["icc"] >= EXCELLENT).mean())}
            for fam, part in ok.groupby("family", sort=False)]
    cols = ["family", "n_features", "median_icc", "share_good", "share_excellent"]
    return pd.DataFrame(rows, columns=cols).sort_values("median_icc", ascending=False).reset_index(drop=True)


def _describe(column: str) -> str:
    try:
        return describe_column(column)
    except KeyError:
        return ""


def _box_plot(icc: pd.DataFrame, order: list[str]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(order) + 2), 3.6))
    data = [icc.loc[icc["family"] == f, "icc"].dropna().to_numpy() for f in order]
    labels = {"tick_labels" if _mpl_tick_labels() else "labels": order}  # renamed in matplotlib 3.9
    ax.boxplot(data, **labels)
    for y, style in ((GOOD, "--"), (EXCELLENT, ":")):
        ax.axhline(y, color="grey", linestyle=style, linewidth=1)
    ax.set_ylabel("ICC(1,1) across perturbations")
    ax.set_ylim(min(-0.05, float(np.nanmin(icc["icc"])) - 0.05) if icc["icc"].notna().any() else -0.05, 1.05)
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    return fig


def _mpl_tick_labels() -> bool:
    import matplotlib

    major, minor = (int(v) for v in matplotlib.__version__.split(".")[:2])
    return (major, minor) >= (3, 9)


def write_summary(result: RobustnessResult, n_worst: int = 15) -> tuple[Path, Path]:
    """Write ``robustness.md``, ``robustness.html`` (figure embedded) and ``icc_by_family.png``.

    Parameters
    ----------
    result : RobustnessResult
        From :func:`run_robustness`.
    n_worst : int
        How many of the least robust features to name.

    Returns
    -------
    tuple of pathlib.Path
        The Markdown and HTML files.
    """
    import base64
    import io

    import matplotlib.pyplot as plt

    out, s, fam = result.out_dir, result.settings, result.families
    fig = _box_plot(result.icc, list(fam["family"]))
    write_figure(out / "icc_by_family.png", fig, dpi=90, bbox_inches="tight")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    uri = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    worst = result.icc.dropna(subset=["icc"]).nsmallest(n_worst, "icc")
    pert = result.by_perturbation.groupby("perturbation")["icc"].median().sort_values()
    head = (f"{s['n_cases']} cases x {len(s['perturbations'])} perturbations ({', '.join(s['perturbations'])}) x "
            f"{s['repeats']} repeat(s), plus the unperturbed version; seed {s['seed']}. ICC(1,1): one-way random "
            "effects, single measurement (McGraw & Wong 1996), across all versions of each case, with the F-based "
            "95 % interval. Koo & Li (2016): >= 0.75 good, >= 0.9 excellent.")
    md = ["# Feature robustness", "", head, "", "![ICC per family](icc_by_family.png)", "",
          "| family | features | median ICC | ICC >= 0.75 | ICC >= 0.9 |", "|---|---:|---:|---:|---:|"]
    md += [f"| {r.family} | {r.n_features} | {r.median_icc:.3f} | {r.share_good:.0%} | {r.share_excellent:.0%} |"
           for r in fam.itertuples()]
    md += ["", "## Median ICC by perturbation (none + that perturbation only)", "",
           "| perturbation | median ICC |", "|---|---:|"]
    md += [f"| {name} | {value:.3f} |" for name, value in pert.items()]
    md += ["", f"## The {len(worst)} least robust features", "", "| feature | ICC | 95 % CI | meaning |",
           "|---|---:|---|---|"]
    md += [f"| `{r.feature}` | {r.icc:.3f} | [{r.icc_low:.2f}, {r.icc_high:.2f}] | {_describe(r.feature)} |"
           for r in worst.itertuples()]
    md += [""] + [f"> warning: {w}" for w in result.warnings]
    from vitfeat.pipelines.report import CSS

    def table(frame_rows, header):
        cells = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in frame_rows)
        return f"<table><tr>{cells}</tr>{body}</table>"

    fam_rows = [(r.family, r.n_features, f"{r.median_icc:.3f}", f"{r.share_good:.0%}", f"{r.share_excellent:.0%}")
                for r in fam.itertuples()]
    worst_rows = [(r.feature, f"{r.icc:.3f}", f"[{r.icc_low:.2f}, {r.icc_high:.2f}]", _describe(r.feature))
                  for r in worst.itertuples()]
    page = [f"<!doctype html><html><head><meta charset='utf-8'><title>Feature robustness</title>"
            f"<style>{CSS}</style></head><body>", "<h1>Feature robustness</h1>", f"<p>{html.escape(head)}</p>",
            f"<img src='{uri}' alt='ICC per family'>",
            table(fam_rows, ["family", "features", "median ICC", "ICC >= 0.75", "ICC >= 0.9"]),
            "<h2>Median ICC by perturbation</h2>",
            table([(n, f"{v:.3f}") for n, v in pert.items()], ["perturbation", "median ICC"]),
            f"<h2>The {len(worst)} least robust features</h2>",
            table(worst_rows, ["feature", "ICC", "95 % CI", "meaning"])]
    page += [f"<div class='warn'>{html.escape(w)}</div>" for w in result.warnings]
    page.append(f"<p class='note'>vitfeat {__version__}</p></body></html>")
    md_path, html_path = out / "robustness.md", out / "robustness.html"
    write_text(md_path, "\n".join(md))
    write_text(html_path, "\n".join(page))
    return md_path, html_path


def run_robustness(manifest, out_dir, *, perturbations=None, repeats: int = 1, seed: int = 0, jobs: int = 1,
                   families=None, masks: str = "given", max_side: int | None = None,
                   progress: bool = True) -> RobustnessResult:
    """Measure every feature's robustness to re-photographing as ICC(1,1) across perturbed versions.

    Parameters
    ----------
    manifest : path-like or Manifest
        The cases (at least 2; 10 or more for a usable interval).
    out_dir : path-like
        Study folder (created); a re-run in it resumes (written versions and the extraction cache are kept).
    perturbations : str or list of str, optional
        Names from :data:`~vitfeat.pipelines.perturb.PERTURBATIONS` (default: every built-in one).
    repeats : int, default 1
        Versions per perturbation (independent draws).
    seed : int, default 0
        Seeds every draw (with the perturbation, the case and the repeat).
    jobs : int, default 1
        Parallel worker processes for rendering and extraction.
    families : list of str, optional
        Feature families (default: ``extract``'s default set).
    masks : {"given", "auto"}
        Mask of the unperturbed version: the manifest's (else automatic), or automatic for all.
    max_side : int, optional
        Shrink photos to this longest side first (px), as ``extract --max-side``.
    progress : bool, default True
        Progress bars.

    Returns
    -------
    RobustnessResult

    Raises
    ------
    ValueError
        Fewer than 2 cases, ``repeats`` < 1, a mask source other than given/auto.
    vitfeat.registry.UnknownNameError
        An unknown perturbation name (the message lists the valid ones).
    """
    names = resolve_perturbations(perturbations)
    if int(repeats) != repeats or repeats < 1:
        raise ValueError(f"repeats must be a whole number >= 1 (got {repeats!r})")
    if masks not in ("given", "auto"):
        raise ValueError(f"masks '{masks}': robustness runs with given or auto masks")
    man = manifest if hasattr(manifest, "frame") else load_manifest(manifest, require_targets=False)
    where = man.path or "manifest"
    if len(man) < 2:
        raise ValueError(f"{where}: {len(man)} case(s); the ICC compares cases, so it needs at least 2 "
                         f"(10 or more for a usable interval)")
    warnings = []
    if len(man) < FEW_CASES:
        warnings.append(f"{where}: only {len(man)} cases; the ICC intervals are wide")
        log.warning(warnings[-1])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    versions = render_versions(man, out, names, repeats=repeats, seed=seed, masks=masks, max_side=max_side,
                               jobs=jobs, progress=progress)
    folder = (out / "perturbed").resolve()
    vman = _versions_manifest(versions, folder)
    result = extract(vman, None, families=families, masks="given", jobs=jobs, cache_dir=out / ".vitfeat-cache",
                     progress=progress)
    feats = result.frame
    feature_cols = [c for c in feats.columns if c not in ("case_id", "patient_id", "error")]
    table = versions[["case_id", "source_case", "perturbation", "repeat"]].merge(
        feats[["case_id", "error"] + feature_cols], on="case_id", how="left")
    if result.n_failed:
        warnings.append(f"{result.n_failed} version(s) failed to extract (see the 'error' column); their cases "
                        "are left out of the affected features' ICC")
    icc = feature_icc(table, feature_cols)
    absent = int((icc["n_cases"] < 2).sum())
    constant = int(icc["icc"].isna().sum()) - absent
    if absent:
        warnings.append(f"{absent} feature(s) have no ICC: missing in (nearly) every case (e.g. Wood's features "
                        "without Wood's photos)")
    if constant:
        warnings.append(f"{constant} feature(s) have no ICC: the same value in every version of every case")
    by_pert = icc_by_perturbation(table, feature_cols)
    params = versions[["case_id", "perturbation", "repeat"]].copy()
    params["params"] = [json.dumps(p, sort_keys=True) for p in versions["params"]]
    params["mask_source"] = [json.dumps(m, sort_keys=True) for m in versions["mask_source"]]
    settings = {"vitfeat_version": __version__, "manifest": str(where), "n_cases": len(man), "perturbations": names,
                "repeats": int(repeats), "seed": int(seed), "masks": masks, "max_side": max_side,
                "families": result.provenance.get("families"), "icc": "ICC(1,1) one-way random, single measurement "
                "(McGraw & Wong 1996), F-based 95 % CI; vitfeat.evaluation.icc (matches pingouin ICC1)"}
    out_table = table.rename(columns={"case_id": "version_id", "source_case": "case_id"})
    out_table = out_table[ID_COLUMNS + ["version_id", "error"] + feature_cols]
    write_features(out_table, out / "perturbed_features.parquet",
                   {**settings, "extraction": result.provenance}, "parquet")
    write_csv(out / "feature_icc.csv", icc)
    write_csv(out / "feature_icc_by_perturbation.csv", by_pert)
    write_csv(out / "perturbations.csv", params)
    write_json(out / "robustness.json", settings)
    res = RobustnessResult(features=out_table, icc=icc, by_perturbation=by_pert, families=family_summary(icc),
                           out_dir=out, settings=settings, warnings=warnings)
    write_summary(res)
    return res


__all__ = ["ICC_COLUMNS", "RobustnessResult", "family_summary", "feature_icc", "icc_by_perturbation",
           "render_versions", "resolve_perturbations", "run_robustness", "write_summary"]
