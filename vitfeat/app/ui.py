"""The Gradio app: Stage a lesion / Batch / Model tabs and the named API endpoint ``/predict``.

Thin: the answers come from :func:`vitfeat.app.predict_pair`, :func:`vitfeat.app.batch.predict_batch`
and :func:`vitfeat.app.summary.model_summary`; here they are only laid out.
"""

from __future__ import annotations

import logging
from pathlib import Path

from vitfeat.app.predict_case import (
    MAX_UPLOAD_BYTES,
    AppInputError,
    RunInfo,
    predict_pair,
    public_message,
)
from vitfeat.app.summary import interval_text
from vitfeat.dataset import MAX_IMAGE_PIXELS

log = logging.getLogger(__name__)


def _stage_markdown(result: dict) -> str:
    from vitfeat.app.scope import verdict_lines

    perf = result["performance"]
    lines = verdict_lines(result)  # the stage, or "Cannot assess" with the reason (issue #27)
    if perf.get("mean") is not None:
        ci = interval_text(perf)
        which = ("nested-selection score (the whole selection procedure, scored on held-out patients)"
                 if perf.get("nested") else f"cross-validated score of '{perf['row']}' — optimistic: "
                 "the run has no nested-selection row")
        lines.append(f"How far to trust it: balanced accuracy {perf['mean']:.2f}{ci}, {which}; positive class: "
                     f"**{perf.get('positive') or 'n/a'}**; model: {perf.get('pipeline') or '?'}")
    areas = result.get("areas") or {}
    if areas:
        text = f"Lesion area: clinical {areas['clinical_px']} px"
        if "wood_px" in areas:
            ratio = f"{areas['ratio']:.2f}" if areas.get("ratio") is not None else "n/a"
            text += (f", Wood's {areas['wood_px']} px ({areas['wood_in_clinical_px']:.0f} px in clinical scale); "
                     f"Wood's-to-clinical ratio **{ratio}** (registration: {areas['registration']})")
        lines.append(text)
    if result["warnings"]:
        title = "### Notes" if result.get("in_scope") is True else "### ⚠ Outside what the model saw"
        lines.append(title + "\n" + "\n".join(f"- {w}" for w in result["warnings"]))
    return "\n\n".join(lines)


#: Headers of the Stage tab's "why" table.
FEATURE_HEADERS = ["feature (what it measures)", "this case", "percentile among training cases", "pushes toward",
                   "within the training range?"]


def _short(text: str, limit: int = 90) -> str:
    text = str(text).split(";")[0].strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _features_rows(result: dict):
    rows = []
    for f in (result.get("top_features") or [])[:5]:
        pct = f.get("percentile")
        rows.append([_short(f["description"]), float(f"{f['value']:.3g}"),
                     "" if pct is None else _ordinal(round(pct)), f["toward"],
                     {"inside": "yes"}.get(f.get("range", "unknown"), f.get("range", "unknown"))])
    return rows, FEATURE_HEADERS


def features_note(result: dict) -> str:
    """The line under the "why" table: how many features lie outside the training range, as a detail
    when the case is in scope (the verdict on the whole case is the applicability check's).

    Parameters
    ----------
    result : dict
        :func:`~vitfeat.app.predict_pair`'s answer.
    """
    notes = result.get("range_notes") or []
    if not result.get("top_features"):
        return ""
    head = ("Percentile: where this case lies among the training cases (50th = typical). "
            "Pushes toward: the stage this feature moves the prediction to.")
    if notes and result.get("in_scope") is True:
        head += ("\n\nDetail: some features lie outside the range of the training cases, but the case as a whole "
                 "is close enough to them to be in scope:\n" + "\n".join(f"- {n}" for n in notes))
    return head


def _api_json(result: dict) -> dict:
    return {k: result[k] for k in ("run", "target", "stage", "probabilities", "warnings", "performance")} | {
        "areas": result.get("areas") or {}, "top_features": result.get("top_features") or [],
        "range_notes": result.get("range_notes") or []} | {
        k: result.get(k) for k in ("prediction_set", "in_scope", "scope_reason", "mask_source", "model")}


def inputs_for(run) -> dict:
    """Which uploads the Stage tab shows for ``run``: the Wood's box only for models that use it,
    the mask section open (with a plain note) for models fitted with drawn masks.

    Parameters
    ----------
    run : RunInfo
        The run.

    Returns
    -------
    dict
        ``wood_visible``, ``mask_note``, ``masks_open``.
    """
    from vitfeat.app.scope import mask_note, run_needs

    note = mask_note(run)
    return {"wood_visible": run.kind != "sklearn" or "wood" in run_needs(run)["modalities"],
            "mask_note": note or "", "masks_open": bool(note)}


def build_app(run_dirs, *, max_bytes: int = MAX_UPLOAD_BYTES, max_pixels: int = MAX_IMAGE_PIXELS,
              trust_modified: bool = False, data_root=None, examples_dir=None):
    """The app for the fitted runs ``run_dirs`` (a selector when there are several).

    Parameters
    ----------
    run_dirs : sequence of path-like
        The fitted runs (checked against their recorded SHA-256).
    max_bytes, max_pixels : int
        Upload-size limit and decompression guard.
    trust_modified : bool, default False
        Serve runs whose files changed after fit, with a warning.
    data_root : path-like, optional
        The only server folder (with its subfolders) the Batch tab may read; none without it.
    examples_dir : path-like, optional
        A private temporary folder: the Stage tab offers synthetic example pairs drawn there.

    Returns
    -------
    gradio.Blocks
    """
    import gradio as gr
    import pandas as pd

    from vitfeat.app.batch import predict_batch
    from vitfeat.app.examples import make_examples, preview
    from vitfeat.app.folders import NO_DATA_ROOT, check_data_root, list_folders

    data_root = check_data_root(data_root)
    from vitfeat.app.summary import model_summary

    runs = {}
    for d in run_dirs:
        info = RunInfo(d, trust_modified=trust_modified)
        name = info.name if info.name not in runs else str(info.path)
        runs[name] = info
    names = list(runs)

    def stage(clinical, wood=None, clinical_mask=None, wood_mask=None, run_name=None):
        try:
            result = predict_pair(runs[run_name or names[0]], clinical, wood, clinical_mask=clinical_mask,
                                  wood_mask=wood_mask, max_bytes=max_bytes, max_pixels=max_pixels)
        except AppInputError as exc:
            raise gr.Error(public_message(str(exc))) from None
        except KeyError:
            raise gr.Error(f"unknown run '{run_name}' (choose one of {', '.join(names)})") from None
        except Exception:  # noqa: BLE001  (never a traceback, path or library name in the page; the log has them)
            raise gr.Error(_internal_error("the prediction")) from None
        finally:
            _forget_uploads(clinical, wood, clinical_mask, wood_mask, keep=examples_dir)
        rows, headers = _features_rows(result)
        ov = result.get("overlays") or {}
        return (_api_json(result), _stage_markdown(result), ov.get("clinical"), ov.get("wood"),
                ov.get("registered"), pd.DataFrame(rows, columns=headers), features_note(result))

    def pick_case(run_name, case_id):
        man = runs[run_name or names[0]].training_manifest
        if man is None or not case_id:
            return None, None, None, None
        row = man[man["case_id"].astype(str) == str(case_id)].iloc[0]

        def get(c):
            return str(row[c]) if c in row and pd.notna(row[c]) else None

        return get("clinical"), get("wood"), get("clinical_mask"), get("wood_mask")

    def case_choices(run_name):
        man = runs[run_name or names[0]].training_manifest
        ids = [] if man is None else [str(c) for c in man["case_id"]]
        return gr.update(choices=ids, value=None)

    def batch(manifest, archive, folder, run_name, progress=gr.Progress(track_tqdm=True)):  # noqa: B008 - Gradio's API
        try:
            return str(predict_batch(runs[run_name or names[0]], manifest, archive, folder, max_bytes=max_bytes,
                                     data_root=data_root))
        except AppInputError as exc:
            raise gr.Error(public_message(str(exc))) from None
        except Exception:  # noqa: BLE001  (as above)
            raise gr.Error(_internal_error("the batch")) from None
        finally:
            _forget_uploads(manifest, archive)

    # Answers (overlay images, CSVs) are served from Gradio's cache: deleted after at most 10 minutes.
    with gr.Blocks(title="vitfeat — vitiligo staging", analytics_enabled=False, delete_cache=(300, 600)) as app:
        gr.Markdown("# vitfeat — vitiligo stage from a lesion photo\nResearch tool: the "
                    "stage is a model's estimate with the uncertainty shown beside it, not a diagnosis.")
        run_box = gr.Dropdown(names, value=names[0], label="Model (fitted run)", interactive=len(names) > 1)
        with gr.Tab("Stage a lesion"):
            needs = inputs_for(runs[names[0]])  # what the model needs, from what fit recorded (issue #27)
            with gr.Row(equal_height=False):  # inputs left, the answer right: both above the fold
                with gr.Column(scale=1, min_width=320):
                    with gr.Row():
                        clinical = gr.File(label="Clinical photo (required)", type="filepath", elem_id="clinical",
                                           height=120)
                        wood = gr.File(label="Wood's-lamp photo (required by this model)", type="filepath",
                                       elem_id="wood", height=120, visible=needs["wood_visible"])
                    with gr.Row():  # what was uploaded, small (a re-read copy without metadata)
                        prev_c = gr.Image(label="Clinical photo (preview)", interactive=False, height=90,
                                          elem_id="preview-clinical", format="png")
                        prev_w = gr.Image(label="Wood's photo (preview)", interactive=False, height=90,
                                          elem_id="preview-wood", format="png", visible=needs["wood_visible"])
                    # the button and the examples before the optional masks: all above the fold at 1366x768
                    go = gr.Button("Stage this lesion", variant="primary", elem_id="stage-button")
                    examples = make_examples(examples_dir, side=_example_side(runs[names[0]])) if examples_dir else []
                    if examples:
                        pair = needs["wood_visible"]
                        gr.Examples([[e["clinical"], e["wood"]] if pair else [e["clinical"]] for e in examples],
                                    [clinical, wood] if pair else [clinical], elem_id="examples",
                                    label="Synthetic example lesions: click one to fill the photos",
                                    example_labels=[f"example {i + 1} (synthetic, drawn as {e['label']})"
                                                    for i, e in enumerate(examples)])
                    mask_hint = gr.Markdown(needs["mask_note"], elem_id="mask-note")
                    with gr.Accordion("Lesion masks, or one of the run's own cases", open=needs["masks_open"]):
                        with gr.Row():
                            clinical_mask = gr.File(label="Clinical mask", type="filepath", height=100)
                            wood_mask = gr.File(label="Wood's mask", type="filepath", height=100)
                        case = gr.Dropdown(case_choices(names[0])["choices"], label="Run case", value=None)
                with gr.Column(scale=1, min_width=320):
                    summary = gr.Markdown(elem_id="stage-result")
            with gr.Row():
                img_c = gr.Image(label="Clinical, lesion outlined", elem_id="overlay-clinical", format="png")
                img_w = gr.Image(label="Wood's, lesion outlined", elem_id="overlay-wood", format="png")
                img_r = gr.Image(label="Wood's registered onto clinical (blend, both outlines)",
                                 elem_id="overlay-registered", format="png")
            table = gr.Dataframe(label="Why: the five features that moved this prediction most", wrap=True,
                                 elem_id="why-table")
            table_note = gr.Markdown(elem_id="why-note")
            answer = gr.JSON(label="Answer (as returned by the /predict API)")
            go.click(stage, [clinical, wood, clinical_mask, wood_mask, run_box],
                     [answer, summary, img_c, img_w, img_r, table, table_note], api_name="predict")
            clinical.change(lambda p: preview(p, max_pixels=max_pixels), [clinical], [prev_c], api_name=False)
            wood.change(lambda p: preview(p, max_pixels=max_pixels), [wood], [prev_w], api_name=False)
            case.change(pick_case, [run_box, case], [clinical, wood, clinical_mask, wood_mask], api_name=False)
            run_box.change(case_choices, [run_box], [case], api_name=False)
            run_box.change(lambda n: (gr.update(visible=inputs_for(runs[n])["wood_visible"]),
                                      gr.update(visible=inputs_for(runs[n])["wood_visible"]),
                                      inputs_for(runs[n])["mask_note"]), [run_box], [wood, prev_w, mask_hint],
                           api_name=False)
        with gr.Tab("Batch"):
            gr.Markdown("A manifest (CSV with `case_id`, `clinical`, `wood`, optional masks) plus a zip of the "
                        "images it names, or a folder on this server. Nothing is kept after the answer.")
            with gr.Row():
                b_manifest = gr.File(label="Manifest (.csv)", type="filepath")
                b_zip = gr.File(label="Images (.zip)", type="filepath")
            folders = list_folders(data_root)
            b_folder = gr.Dropdown(folders, value=None, allow_custom_value=True,
                                   interactive=data_root is not None, elem_id="batch-folder",
                                   label="...or a folder of this server's data folder, which the manifest's "
                                         "paths are relative to")
            gr.Markdown(NO_DATA_ROOT if data_root is None else
                        "Only folders inside the server's data folder can be read.", elem_id="batch-folder-note")
            b_go = gr.Button("Predict all", variant="primary")
            b_out = gr.File(label="Predictions (CSV)")
            b_go.click(batch, [b_manifest, b_zip, b_folder, run_box], [b_out], api_name="batch")
        with gr.Tab("Model"):
            model_md = gr.Markdown(model_summary(runs[names[0]]))
            run_box.change(lambda n: model_summary(runs[n]), [run_box], [model_md], api_name=False)
    return app


def _example_side(run) -> int:
    """Side of the example photos: about the run's own training photos (128-512 px)."""
    try:
        seen = run.training_long_side
    except Exception:  # noqa: BLE001 - only a size hint
        seen = None
    return int(min(max(seen[1], 128), 512)) if seen else 256


def _internal_error(what: str) -> str:
    """A browser-safe message for an unexpected failure; the traceback goes to the server log under a
    reference the user can quote."""
    import uuid

    reference = uuid.uuid4().hex[:8]
    log.exception("%s failed (reference %s)", what, reference)
    return f"{what} failed because of an internal error (reference {reference}; the server log has the details)"


def _forget_uploads(*paths, keep=None) -> None:
    """Delete Gradio's own copy of the uploads once answered (uploads of the run's cases, and the
    example pairs under ``keep``, are kept)."""
    import os
    import tempfile

    root = Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio").resolve()
    kept = Path(keep).resolve() if keep else None
    for p in paths:
        if p and Path(p).resolve().is_relative_to(root) and not (kept and Path(p).resolve().is_relative_to(kept)):
            Path(p).unlink(missing_ok=True)
