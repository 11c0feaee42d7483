"""The proposer's prompt and the reading of its answer.

The proposer sees one training program (a PIE slow program, which reads stdin) and is asked for a
new problem in the task shape the ENAMEL harness runs: a function `solve(...)` and an input
generator `generate_input(size)` returning the arguments. Template text lives in
``perfrepro/selfplay/templates``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from perfrepro.generation.extract import defined_names, python_blocks
from perfrepro.generation.prompts import package_template, render

ENTRY_POINT = "solve"
GENERATOR = "generate_input"


def load_template(name: str) -> str:
    """The text of ``perfrepro/selfplay/templates/<name>.txt``."""
    return package_template("perfrepro.selfplay", name)


def proposer_messages(seed_program: str) -> tuple[dict[str, str], ...]:
    return (
        {"role": "system", "content": load_template("propose_system").strip()},
        {"role": "user", "content": render(load_template("propose_user"), seed_program=seed_program.strip("\n"))},
    )


@dataclass(frozen=True)
class Proposal:
    """What a proposer answer holds: the problem line (may be empty), the program, the generator."""

    statement: str
    program: str
    generator: str


def _without_function(code: str, name: str) -> str:
    """`code` with the top-level function `name` (and its decorators) cut out."""
    tree = ast.parse(code)
    lines = code.splitlines(keepends=True)
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1
            del lines[start:node.end_lineno]
            break
    return "".join(lines)


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
        return True
    except (SyntaxError, ValueError):
        return False


def parse_proposal(text: str | None) -> Proposal | str:
    """The Proposal in a proposer's answer, or the reason there is none: ``no_code`` (no block
    defines solve), ``no_generator`` (none defines generate_input), ``syntax_error``."""
    if not text:
        return "no_code: empty answer"
    blocks = python_blocks(text)
    if not blocks and "```" not in text:
        blocks = [text.strip("\n") + "\n"]
    program = next((b for b in blocks if ENTRY_POINT in defined_names(b)), None)
    if program is None:
        return f"no_code: no python block defines {ENTRY_POINT}"
    generator = next((b for b in blocks if GENERATOR in defined_names(b)), None)
    if generator is None:
        return f"no_generator: no python block defines {GENERATOR}"
    if not (_parses(program) and _parses(generator)):
        return "syntax_error: the program or the generator does not parse"
    if generator is program:  # one block holds both: the program is the block without the generator
        program = _without_function(program, GENERATOR)
    statement = next((line.split(":", 1)[1].strip() for line in text.splitlines()
                      if line.strip().lower().startswith("problem:")), "")
    return Proposal(statement=statement, program=program, generator=generator)
