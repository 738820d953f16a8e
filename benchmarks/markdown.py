"""Replacing a benchmark's marked section of BENCHMARKS.md."""

from __future__ import annotations

from xmcgan_tf import files


def replace_section(markdown_path: str, section: str, begin: str, end: str) -> None:
    """Replaces the text between the markers `begin` and `end` of `markdown_path` with
    `section` (appending the marked block when the markers are absent); written atomically."""
    with open(markdown_path, encoding="utf-8") as f:
        text = f.read()
    block = f"{begin}\n{section}{end}"
    if begin in text and end in text:
        text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    files.write_atomic(markdown_path, text)
