"""Generate docs/features.md: every feature family and feature, in plain words, with its IBSI name,
units and median robustness (ICC) on synthetic and real photos.

    python docs/features_doc.py          # rewrite docs/features.md
    python docs/features_doc.py --check  # exit 1 when docs/features.md is out of date

Plain-words descriptions come from the families' declarations (vitfeat.featurize); the IBSI names and
the units are kept here (IBSI reference manual, Zwanenburg et al., Radiology 2020); the ICC columns
come from the ``feature_icc.csv`` files of ``vitfeat robustness`` kept in docs/robustness/ (see
SOURCES for the commands that wrote them; re-run one and this script to refresh a column).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from vitfeat.atomic import write_text
from vitfeat.featurize.registry import family_table, get_family
from vitfeat.featurize.units import PIXEL_UNITS, SUFFIX

HERE = Path(__file__).resolve().parent
DOC = HERE / "features.md"

#: ICC source name -> (file under docs/robustness, the command that wrote it).
SOURCES = {
    "synth": ("feature_icc_synth.csv",
              "vitfeat synth S --n 60 --seed 0 --size 256 && "
              "vitfeat robustness S/manifest.csv -o R --jobs 2 --seed 0"),
    "vitiligo-seg": ("feature_icc_vitiligo_seg.csv",
                     "vitfeat manifest import /work/shared/data/vitiligo-seg -o all.csv; keep the first row per "
                     "patient_id (one of each source photo's augmented copies: 44 clinical photos with masks) as "
                     "M.csv; vitfeat robustness M.csv -o R --jobs 2 --seed 0"),
}

#: (family, feature) -> IBSI feature name (and how vitfeat differs). 2D analogues of IBSI's 3D
#: morphology follow pyradiomics' shape2D class.
IBSI = {
    ("shape", "pixel_area"): "Volume (voxel counting), 2D: area by pixel counting",
    ("shape", "mesh_area"): "Volume (mesh), 2D: area enclosed by the marching-squares outline",
    ("shape", "perimeter"): "Surface area (mesh), 2D: length of the marching-squares outline",
    ("shape", "perimeter_area_ratio"): "Surface to volume ratio, 2D",
    ("shape", "sphericity"): "Sphericity, 2D (pyradiomics shape2D)",
    ("shape", "solidity"): "Volume density (convex hull), 2D",
    ("shape", "major_axis"): "Major axis length",
    ("shape", "minor_axis"): "Minor axis length",
    ("shape", "elongation"): "Elongation",
    ("shape", "max_diameter"): "Maximum 3D diameter, 2D: maximum diameter of the outline",
    ("firstorder", "energy"): "Energy (intensity-based statistics)",
    ("firstorder", "entropy"): "Intensity histogram entropy (fixed bin width)",
    ("firstorder", "minimum"): "Minimum intensity",
    ("firstorder", "p10"): "10th intensity percentile",
    ("firstorder", "p90"): "90th intensity percentile",
    ("firstorder", "maximum"): "Maximum intensity",
    ("firstorder", "mean"): "Mean intensity",
    ("firstorder", "median"): "Median intensity",
    ("firstorder", "iqr"): "Intensity interquartile range",
    ("firstorder", "range"): "Intensity range",
    ("firstorder", "mean_absolute_deviation"): "Intensity-based mean absolute deviation",
    ("firstorder", "robust_mean_absolute_deviation"): "Intensity-based robust mean absolute deviation",
    ("firstorder", "rms"): "Root mean square intensity",
    ("firstorder", "std"): "none (square root of Intensity variance)",
    ("firstorder", "skewness"): "Intensity skewness",
    ("firstorder", "kurtosis"): "(Excess) intensity kurtosis; vitfeat = IBSI + 3 (pyradiomics' convention)",
    ("firstorder", "variance"): "Intensity variance",
    ("firstorder", "uniformity"): "Intensity histogram uniformity (fixed bin width)",
    ("texture", "glcm_contrast"): "GLCM Contrast (2D, averaged over 4 directions)",
    ("texture", "glcm_dissimilarity"): "GLCM Dissimilarity (2D, averaged)",
    ("texture", "glcm_homogeneity"): "GLCM Inverse difference moment (scikit-image's homogeneity)",
    ("texture", "glcm_energy"): "none (square root of GLCM Angular second moment; scikit-image's energy)",
    ("texture", "glcm_correlation"): "GLCM Correlation (2D, averaged)",
    ("texture", "glcm_asm"): "GLCM Angular second moment (2D, averaged)",
}
IBSI_NOTES = {
    "texture": "GLCM grey levels are quantised between the region's 1st and 99th percentile (vitfeat's "
               "exposure-invariant choice, not IBSI's fixed bin number or width); wavelet subbands are an IBSI 2 "
               "filter (Haar), the energy/entropy of their coefficients is not an IBSI 1 feature; LBP has no "
               "IBSI name.",
    "firstorder": "Computed on the grey level (0-255) inside the lesion, as pyradiomics' firstorder class.",
    "shape": "IBSI defines 3D morphology; the 2D analogues follow pyradiomics' shape2D.",
}

GREY = "grey level"
UNITS = {
    "firstorder": {**dict.fromkeys(["minimum", "p10", "p90", "maximum", "mean", "median", "iqr", "range",
                                    "mean_absolute_deviation", "robust_mean_absolute_deviation", "rms", "std"], GREY),
                   "variance": f"{GREY}²", "energy": f"{GREY}² x px", "entropy": "bits"},
    "color": {**{f"{r}_{c}_{s}": "CIELAB unit" for r in ("lesion", "ring") for c in "Lab" for s in ("mean", "std")},
              "delta_e": "CIEDE2000", "delta_L": "CIELAB unit", "delta_b": "CIELAB unit", "ring_ita": "degrees",
              "lesion_ita": "degrees", "trichrome_fraction": "fraction"},
    "satellites": {"count": "count", "mean_distance": "lesion radii", "area_fraction": "fraction",
                   "mean_area_fraction": "fraction"},
    "shape": {"area_fraction": "fraction", "n_components": "count", "perimeter_area_ratio": "1/px"},
    "pair": {"registration_inliers": "count"},
}


def _unit(family: str, feature: str) -> str:
    kind = PIXEL_UNITS.get(family, {}).get(feature)
    if kind:
        return f"{'px²' if kind == 'area' else 'px'} (`{SUFFIX[kind]}`: {'mm²' if kind == 'area' else 'mm'})"
    if family == "texture" and feature.startswith(("lbp", "ring_lbp")) and not feature.endswith("entropy"):
        return "fraction"
    return UNITS.get(family, {}).get(feature, "—")


def _icc_tables() -> dict[str, pd.DataFrame]:
    out = {}
    for name, (file, _cmd) in SOURCES.items():
        path = HERE / "robustness" / file
        if path.is_file():
            out[name] = pd.read_csv(path)
    return out


def _median_icc(table: pd.DataFrame | None, columns: list[str]) -> str:
    if table is None:
        return "(not computed)"
    values = table.loc[table["feature"].isin(columns), "icc"].dropna()
    return f"{values.median():.2f}" if len(values) else "—"


def render() -> str:
    """The whole of docs/features.md."""
    tables = _icc_tables()
    lines = ["# Features", "",
             "Every handcrafted feature of `vitfeat extract`, what it measures, its IBSI name where one exists "
             "(Image Biomarker Standardisation Initiative reference manual; *none* where IBSI has no such feature, "
             "with how vitfeat differs where it matters), its units, and how robust it is to a re-photograph: the "
             "median ICC(1,1) across `vitfeat robustness` perturbations (rotation, translation, scale, noise, blur, "
             "colour, JPEG, contour, combined; Koo & Li: >= 0.75 good, >= 0.9 excellent) over the feature's "
             "modalities.", "",
             "Generated by `python docs/features_doc.py` from the families' declarations and the ICC files in "
             "`docs/robustness/`; do not edit by hand. Columns are `<modality>_<group>_<feature>`.", "",
             "ICC sources:", ""]
    for name, (file, cmd) in SOURCES.items():
        state = "" if name in tables else " — not computed yet; run the command and this script to fill the column"
        lines.append(f"- **{name}** (`docs/robustness/{file}`){state}: `{cmd}`")
    lines.append("")
    fam_rows = ["| family | columns | plain words | " + " | ".join(f"median ICC {n}" for n in SOURCES) + " |",
                "|---|---|---|" + "---:|" * len(SOURCES)]
    sections = []
    for row in family_table():
        if row["family"].endswith("..."):
            continue
        fam = get_family(row["family"])
        prefixes = ", ".join(f"`{fam.prefix(m)}*`" for m in fam.modalities)
        all_cols = fam.columns()
        fam_rows.append(f"| `{fam.name}` | {prefixes} | {fam.description} | "
                        + " | ".join(_median_icc(tables.get(n), all_cols) for n in SOURCES) + " |")
        sections += [f"## `{fam.name}` (version {fam.version})", "", f"{fam.description} Columns: {prefixes}.", ""]
        if fam.name in IBSI_NOTES:
            sections += [IBSI_NOTES[fam.name], ""]
        sections += ["| feature | plain words | IBSI name | units | " + " | ".join(f"ICC {n}" for n in SOURCES) + " |",
                     "|---|---|---|---|" + "---:|" * len(SOURCES)]
        for bare, text in fam.feature_descriptions().items():
            cols = [fam.prefix(m) + bare for m in fam.modalities]
            ibsi = IBSI.get((fam.name, bare.removeprefix("ring_")), "none")
            iccs = " | ".join(_median_icc(tables.get(n), cols) for n in SOURCES)
            sections.append(f"| `{bare}` | {text} | {ibsi} | {_unit(fam.name, bare)} | {iccs} |")
        sections.append("")
    lines += ["## Families", ""] + fam_rows + [""] + sections
    lines += ["Deep features (`deep:BACKBONE...`, see docs/deep.md) are embedding dimensions without a plain "
              "meaning or IBSI name; run `vitfeat robustness ... --families deep:...` to measure them.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = render()
    if "--check" in argv:
        return 0 if DOC.is_file() and DOC.read_text() == text else 1
    write_text(DOC, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
