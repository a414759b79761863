"""Regenerate the feature reference at the end of docs/extract.md from the families' declarations.

    python docs/features_table.py          # rewrite the section between the markers
    python docs/features_table.py --check  # exit 1 when the section is out of date
"""

from __future__ import annotations

import sys
from pathlib import Path

from vitfeat.featurize.registry import features_markdown

DOC = Path(__file__).resolve().parent / "extract.md"
BEGIN, END = "<!-- features:begin (python docs/features_table.py) -->", "<!-- features:end -->"


def render(text: str) -> str:
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n\n{features_markdown()}\n{END}{tail}"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = DOC.read_text()
    new = render(text)
    if "--check" in argv:
        return 0 if new == text else 1
    DOC.write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
