"""Self-play's pure filters: trivial rewrites, semantic duplicates, copies and leaks.

- Trivial (PIE's filter of its self-play optimizations): the rewrite is the same program after
  normalising whitespace and comments (`normalized_tokens`), or every line the diff changes is an
  import or a comment (`diff_only_import_comment`, after PIE's function of that name).
- Semantic duplicates: programs whose output signatures (one token per input of a shared pool of
  seeded inputs, see perfrepro.selfplay.probe) are equal are one class; the first proposal of a
  class is kept.
- Copies of training programs and leaks of evaluation programs: the training programs read stdin
  and the candidates are functions, so outputs cannot be compared; text is (token 5-gram Jaccard
  at `finetune.leak_threshold`, the pie_train_data filter's measure).
"""

from __future__ import annotations

import difflib
import io
import re
import tokenize
from typing import Hashable, Sequence

_SKIPPED = (tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER)
_IMPORT = re.compile(r"^\s*(import\s+\S|from\s+\S+\s+import\s)")


def normalized_tokens(code: str) -> tuple[str, ...]:
    """The program's tokens without comments, blank lines and layout (indentation stays as
    INDENT/DEDENT tokens, so a change of block structure is a change); on a tokenize error, its
    non-blank lines with comments cut and spaces squeezed."""
    try:
        tokens = tokenize.generate_tokens(io.StringIO(code).readline)
        return tuple(f"{tokenize.tok_name[t.type]}:{t.string}" for t in tokens if t.type not in _SKIPPED)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        lines = (re.sub(r"#.*$", "", line) for line in code.splitlines())
        return tuple(" ".join(line.split()) for line in lines if line.strip())


def same_after_normalising(original: str, rewrite: str) -> bool:
    """True when the two programs differ only in whitespace and comments."""
    return normalized_tokens(original) == normalized_tokens(rewrite)


def _code_lines(code: str) -> list[str]:
    """Non-blank lines with comments removed (by tokenize when the code tokenizes) and right-stripped."""
    try:
        comments: dict[int, int] = {}
        for token in tokenize.generate_tokens(io.StringIO(code).readline):
            if token.type == tokenize.COMMENT:
                comments[token.start[0]] = token.start[1]
        lines = [line[:comments[number]] if number in comments else line
                 for number, line in enumerate(code.splitlines(), start=1)]
    except (tokenize.TokenError, IndentationError, SyntaxError):
        lines = [re.sub(r"#.*$", "", line) for line in code.splitlines()]
    return [line.rstrip() for line in lines if line.strip()]


def diff_only_import_comment(original: str, rewrite: str) -> bool:
    """True when every line the rewrite adds or removes is an import or a comment (or blank):
    PIE's test for an "optimization" that changed nothing that runs in the solution's logic."""
    diff = difflib.ndiff(_code_lines(original), _code_lines(rewrite))
    changed = [line[2:] for line in diff if line.startswith(("+ ", "- "))]
    return all(_IMPORT.match(line) for line in changed)


def trivial_reason(original: str, rewrite: str) -> str | None:
    """Why the rewrite is trivial, or None when it is a real change."""
    if same_after_normalising(original, rewrite):
        return "the same program after normalising whitespace and comments"
    if diff_only_import_comment(original, rewrite):
        return "the diff changes only imports and comments"
    return None


def first_of_each_class(signatures: Sequence[Hashable | None]) -> list[int | None]:
    """For each position, the index of the first position with the same signature (itself when
    it is the first); None signatures (not comparable) are their own class."""
    first: dict[Hashable, int] = {}
    out: list[int | None] = []
    for index, signature in enumerate(signatures):
        if signature is None:
            out.append(index)
            continue
        out.append(first.setdefault(signature, index))
    return out
