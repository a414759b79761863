"""Spreadsheet debris and foreign paths in manifests (issue #25): each named, or handled.

Each case writes a damaged copy of a valid synthetic manifest beside it and runs
``vitfeat manifest check`` (and, for a few, ``extract``) in-process.
"""

from __future__ import annotations

import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vitfeat.cli.main import main


@pytest.fixture(scope="module")
def data(tmp_path_factory, synth_small):
    """A private copy of the synthetic dataset (variants are written into its folder)."""
    folder = tmp_path_factory.mktemp("tables") / "data"
    shutil.copytree(synth_small.parent, folder)
    return folder


def _lines(data):
    text = (data / "manifest.csv").read_text().splitlines()
    return text[0], text[1:]


def _replace_first(rows, old, new):
    return [rows[0].replace(old, new)] + rows[1:]


def dup_label(h, r):
    return [h + ",label"] + [x + ",stable" for x in r]


def dup_case_id(h, r):
    return [h + ",case_id"] + [x + ",other" for x in r]


def newline_id(h, r):
    return [h, '"case\n0001"' + r[0][len("case0001"):]] + r[1:]


def nul_id(h, r):
    return [h, "case\x000001" + r[0][len("case0001"):]] + r[1:]


def tab_patient(h, r):
    return [h] + _replace_first(r, "p0001", '"p\t0001"')


def blank_rows_at_end(h, r):
    return [h] + r + [",,,,,,", ",,,,,,", ""]


def blank_row_in_middle(h, r):
    return [h] + r[:2] + [",,,,,,"] + r[2:]


def excel_columns(h, r):
    return [h + ",,,"] + [x + ",,," for x in r]


def url(h, r):
    return [h] + _replace_first(r, "images/case0001_clinical.jpg", "https://example.org/case1.jpg")


def url_mask(h, r):
    return [h] + _replace_first(r, "masks/case0001_wood.png", "s3://bucket/case1.png")


def windows_drive(h, r):
    return [h] + _replace_first(r, "images/case0001_clinical.jpg", r"C:\Users\me\case1.jpg")


def windows_unc(h, r):
    return [h] + _replace_first(r, "images/case0001_wood.jpg", r"\\server\share\case1.jpg")


def long_name(h, r):
    return [h] + _replace_first(r, "images/case0001_clinical.jpg", "images/" + "x" * 300 + ".jpg")


def long_path(h, r):
    return [h] + _replace_first(r, "images/case0001_clinical.jpg", "/".join(["d" * 200] * 25) + ".jpg")


# (variant, exit code of `manifest check`, text that must be printed)
CASES = [
    (dup_label, 1, "manifest, column 'label': column 'label' appears 2 times (columns 7, "),
    (dup_case_id, 1, "column 'case_id' appears 2 times (columns 1, "),
    (newline_id, 1, "row 1, column 'case_id': case_id 'case\\n0001' holds control character(s) (newline)"),
    (nul_id, 1, "row 1, column 'case_id': case_id 'case\\x000001' holds control character(s) (NUL)"),
    (tab_patient, 1, "row 1, column 'patient_id': patient_id 'p\\t0001' holds control character(s) (tab)"),
    (blank_rows_at_end, 0, "warning: manifest: 2 empty row(s) at the end (row(s) 25-26, only separators) dropped"),
    (blank_row_in_middle, 1, "ERROR: row 3: empty row (only separators); delete it"),
    (excel_columns, 0, "warning: manifest: 3 column(s) without a name or a value dropped"),
    (url, 1, "row 1, column 'clinical': path 'https://example.org/case1.jpg' is a URL"),
    (url_mask, 1, "row 1, column 'wood_mask': path 's3://bucket/case1.png' is a URL"),
    (windows_drive, 1, "row 1, column 'clinical': path 'C:\\\\Users\\\\me\\\\case1.jpg' is a Windows drive path"),
    (windows_unc, 1, "row 1, column 'wood': path '\\\\\\\\server\\\\share\\\\case1.jpg' is a Windows network (UNC)"),
    (long_name, 1, "row 1, column 'clinical': path 'images/xxxx"),
    (long_path, 1, "is 5028 bytes long (at most 4096)"),
]


def _snapshot(folder):
    return {p.relative_to(folder): p.stat().st_size for p in folder.rglob("*")}


@pytest.mark.parametrize("variant, rc, text", CASES, ids=[c[0].__name__ for c in CASES])
def test_manifest_check_names_the_problem(variant, rc, text, data, capsys):
    header, rows = _lines(data)
    path = data / f"{variant.__name__}.csv"
    path.write_text("\n".join(variant(header, rows)) + "\n")
    before = _snapshot(data)
    assert main(["manifest", "check", str(path)]) == rc
    printed = capsys.readouterr()
    out = printed.out + printed.err
    assert text in out, out
    assert "Traceback" not in out
    if variant is long_name:
        assert "has a file or folder name of 304 bytes (at most 255)" in out
    if rc == 0:
        assert f"{path.name}: 24 cases" in out  # the debris was dropped, every case kept
    assert _snapshot(data) == before  # a check writes nothing


@pytest.mark.parametrize("encoding, sep, suffix", [("utf-16", ",", ".csv"), ("utf-16", "\t", ".txt"),
                                                   ("utf-16-le", ",", ".csv")])
def test_utf16_exports_are_read(encoding, sep, suffix, data, capsys):
    header, rows = _lines(data)
    path = data / f"export_{encoding}_{ord(sep)}{suffix}"
    path.write_bytes(("\n".join(x.replace(",", sep) for x in [header] + rows) + "\n").encode(encoding))
    assert main(["manifest", "check", str(path)]) == 0
    assert f"{path.name}: 24 cases, 24 patients, targets ['label']; 0 error(s)" in capsys.readouterr().out


def test_parquet_with_repeated_column_names_is_named(data, capsys):
    import pandas as pd

    frame = pd.read_csv(data / "manifest.csv", dtype=str)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.append_column("label", pa.array(["stable"] * len(frame)))
    path = data / "repeated.parquet"
    pq.write_table(table, path)
    assert main(["manifest", "check", str(path)]) == 1
    assert "column 'label' appears 2 times (columns 7, " in capsys.readouterr().out


def test_extract_refuses_a_repeated_column_and_writes_nothing(data, tmp_path, capsys):
    header, rows = _lines(data)
    path = data / "dup_for_extract.csv"
    path.write_text("\n".join(dup_label(header, rows)) + "\n")
    out = tmp_path / "out" / "f.parquet"
    assert main(["extract", str(path), "-o", str(out), "--no-progress"]) == 2
    assert "column 'label' appears 2 times" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").rglob("*.parquet")) == []


def test_extract_reads_a_utf16_manifest_with_excel_debris(data, tmp_path, capsys):
    header, rows = _lines(data)
    path = data / "excel_utf16.txt"
    lines = [x.replace(",", "\t") for x in excel_columns(header, rows[:6])] + ["\t\t\t\t\t\t\t\t\t"]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("utf-16"))
    out = tmp_path / "f.parquet"
    assert main(["extract", str(path), "-o", str(out), "--families", "shape", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "6 case(s), 0 with errors" in printed
    assert "column(s) without a name or a value dropped" in printed
