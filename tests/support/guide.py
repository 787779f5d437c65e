"""The steps of the operator guide (``docs/guide/*.md``), read the way its index says.

A page is a list of steps in order: code blocks (```` ```sh ```` runs; ``powershell``,
``text``, ``toml`` and ``yaml`` are only shown) with the HTML-comment annotations right above
them, and ``<!-- vcenter: ACTION ARGS -->`` comments, where the test does what vCenter would.
Anything else that looks like an annotation, a block in another language (``bash``,
``console``, none) or an annotation that is not right above a block is an error, so that no
command can slip past the test unnoticed.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

RUN_LANGUAGE = "sh"
SHOWN_LANGUAGES = frozenset({"powershell", "text", "toml", "yaml"})
BLOCK_ANNOTATIONS = frozenset(
    {
        "expect-exit",
        "expect-output",
        "expect-match",
        "run-in-background",
        "wait-before",
        "not-run",
        "guide-environment",
    }
)
VCENTER = "vcenter"

_FENCE = re.compile(r"^```([^`\s]*)\s*$")
_COMMENT = re.compile(r"^<!--\s*([a-z-]+)(?::\s*(.*?))?\s*-->\s*$")
_EXPORT = re.compile(r"^export\s+(.+)$")


class GuideError(ValueError):
    """The guide breaks its own conventions; the message says where."""


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    language: str
    code: str
    annotations: tuple[tuple[str, str], ...]

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.language == RUN_LANGUAGE

    def values(self, name: str) -> list[str]:
        return [value for key, value in self.annotations if key == name]

    def value(self, name: str) -> str | None:
        found = self.values(name)
        if len(found) > 1:
            raise GuideError(f"{self.where}: {name} given {len(found)} times")
        return found[0] if found else None

    def has(self, name: str) -> bool:
        return any(key == name for key, _ in self.annotations)


@dataclass(frozen=True)
class VCenterStep:
    page: str
    line: int
    action: str
    args: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


Step = Block | VCenterStep


def read_page(path: Path) -> list[Step]:
    """The steps of one Markdown page, in order."""
    steps: list[Step] = []
    pending: list[tuple[str, str]] = []
    pending_line = 0
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        number = index + 1
        fence = _FENCE.match(line)
        comment = _COMMENT.match(line)
        if fence is not None:
            language = fence.group(1)
            if language != RUN_LANGUAGE and language not in SHOWN_LANGUAGES:
                raise GuideError(
                    f"{path.name}:{number}: code block in {language or 'no language'!r}; use "
                    f"{RUN_LANGUAGE!r} for commands to run, or one of {sorted(SHOWN_LANGUAGES)}"
                )
            end = index + 1
            while end < len(lines) and lines[end].strip() != "```":
                end += 1
            if end == len(lines):
                raise GuideError(f"{path.name}:{number}: code block is never closed")
            code = "\n".join(lines[index + 1 : end]) + "\n"
            if pending and language != RUN_LANGUAGE:
                raise GuideError(
                    f"{path.name}:{pending_line}: annotations on a {language} block, which "
                    "is not run"
                )
            steps.append(Block(path.name, number, language, code, tuple(pending)))
            pending = []
            index = end + 1
            continue
        if comment is not None:
            name, value = comment.group(1), (comment.group(2) or "").strip()
            if name == VCENTER:
                words = shlex.split(value)
                if not words:
                    raise GuideError(f"{path.name}:{number}: vcenter: without an action")
                steps.append(VCenterStep(path.name, number, words[0], tuple(words[1:])))
            elif name in BLOCK_ANNOTATIONS:
                if not pending:
                    pending_line = number
                pending.append((name, value))
            else:
                raise GuideError(f"{path.name}:{number}: unknown annotation {name!r}")
        elif pending:
            raise GuideError(
                f"{path.name}:{pending_line}: annotations must be right above a code block"
            )
        index += 1
    if pending:
        raise GuideError(f"{path.name}:{pending_line}: annotations at the end of the page")
    return steps


def exported_names(block: Block) -> list[str]:
    """The variable names a block sets with ``export NAME=value ...`` lines."""
    names: list[str] = []
    for line in block.code.splitlines():
        match = _EXPORT.match(line.strip())
        if match is None:
            continue
        for word in shlex.split(match.group(1)):
            name, equals, _ = word.partition("=")
            if not equals:
                raise GuideError(f"{block.where}: export {word} sets no value")
            names.append(name)
    return names
