"""The INI text format as NNTrainer's iniparser reads it: sections, ``key = value`` lines.

Section names and keys are case-insensitive (lowercased, as iniparser does); values keep their
case. A value in double or single quotes is taken verbatim without its quotes (``padding =
"same"``), so ``#`` and ``;`` inside quotes are text; in an unquoted value they start a
comment. ``[]`` is a section with an empty name (iniparser reads it so; NNTrainer's own test
files use it for a backbone section).

>>> [(s.name, s.entries["padding"][0]) for s in read_sections('[Conv]\\npadding = "same" # x')]
[('conv', 'same')]
"""

from __future__ import annotations

from dataclasses import dataclass

from trainplan.planner.errors import InvalidModelFile
from trainplan.planner.fileio import clip


@dataclass
class Section:
    """One section: its lowercased name, the line of its header and key -> (value, line)."""

    name: str
    line: int
    entries: dict

MAX_NAME = 200  # characters of a section (layer) name


def read_sections(text: str, path: str = "model.ini") -> list[Section]:
    """Sections in file order with lowercased names and keys; errors name the line."""
    sections: list[Section] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if stripped.startswith("["):
            sections.append(Section(_header(stripped, raw, path, lineno), lineno, {}))
            continue
        if "=" not in stripped:
            raise InvalidModelFile(f"{path}:{lineno}: expected 'key = value', got {clip(raw)}")
        if not sections:
            raise InvalidModelFile(f"{path}:{lineno}: key outside any section; start the file "
                                   "with [Model]")
        key, value = stripped.split("=", 1)
        key = key.strip().lower()
        value = _value(value, raw, path, lineno)
        if not key:
            raise InvalidModelFile(f"{path}:{lineno}: a line without a key: {clip(raw)}")
        if not value:
            raise InvalidModelFile(f"{path}:{lineno}: {key} has no value; NNTrainer refuses "
                                   "an empty value (remove the line or give one)")
        sections[-1].entries[key] = (value, lineno)
    return sections


def _header(stripped: str, raw: str, path: str, lineno: int) -> str:
    """``[Name]`` (a comment may follow) -> ``name``."""
    close = stripped.find("]")
    rest = stripped[close + 1:].strip() if close >= 0 else ""
    if close < 0 or (rest and rest[0] not in "#;"):
        raise InvalidModelFile(f"{path}:{lineno}: malformed section header {clip(raw)}; "
                               "write [SectionName]")
    name = stripped[1:close].strip().lower()
    if len(name) > MAX_NAME:
        raise InvalidModelFile(f"{path}:{lineno}: section name {clip(name)} is longer than "
                               f"{MAX_NAME} characters")
    return name


def _value(text: str, raw: str, path: str, lineno: int) -> str:
    """The value after ``=``: quoted verbatim, else up to a comment mark, stripped."""
    text = text.strip()
    if text[:1] in ("'", '"'):
        close = text.find(text[0], 1)
        if close < 0:
            raise InvalidModelFile(f"{path}:{lineno}: unterminated quote in {clip(raw)}")
        return text[1:close]
    for mark in ("#", ";"):
        if mark in text:
            text = text[: text.index(mark)]
    return text.strip()
