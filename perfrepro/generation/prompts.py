"""Prompts, rendered from the text templates in ``perfrepro/generation/templates``.

The generation prompt follows the study's EffiBench-style RAG prompt:
system "You are a code developer."; user = instructions, then `shots` retrieved performant
solutions (the section is left out when there are none), then the task description (statement and
starter code), then the task's example tests.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from typing import Mapping, Sequence

from perfrepro.records import Task

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


@lru_cache(maxsize=None)
def package_template(package: str, name: str) -> str:
    """The text of ``<package>/templates/<name>.txt`` (``perfrepro.optimization`` ->
    ``perfrepro/optimization/templates``); every room's prompts read their templates through it."""
    try:
        return resources.files(package).joinpath("templates").joinpath(f"{name}.txt").read_text(encoding="utf-8")
    except FileNotFoundError:
        folder = package.replace(".", "/")
        raise FileNotFoundError(f"prompt template {name!r} not found in {folder}/templates") from None


def load_template(name: str) -> str:
    """The text of ``templates/<name>.txt``."""
    return package_template("perfrepro.generation", name)


def render(template: str, **values: str) -> str:
    """Fill ``{{name}}`` placeholders in one pass (inserted text is never re-scanned, so code
    containing braces is safe); a placeholder without a value is an error."""

    def fill(match: re.Match) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"prompt template placeholder {{{{{name}}}}} has no value")
        return values[name]

    return _PLACEHOLDER.sub(fill, template)


def system_message() -> str:
    return load_template("system").strip()


def _messages(user: str) -> tuple[Mapping[str, str], ...]:
    return ({"role": "system", "content": system_message()}, {"role": "user", "content": user})


def examples_section(examples: Sequence[str]) -> str:
    """The retrieved-solutions section, or "" when there are no examples (shots: 0)."""
    if not examples:
        return ""
    blocks = "\n".join(
        render(load_template("generate_example"), number=str(i), code=code.strip("\n"))
        for i, code in enumerate(examples, start=1)
    )
    return render(load_template("generate_examples"), examples=blocks.rstrip("\n"))


def generation_user_prompt(task: Task, examples: Sequence[str] = ()) -> str:
    tests = task.examples.strip("\n")
    text = render(
        load_template("generate_user"),
        instructions=load_template("generate_instructions").strip(),
        examples_section=examples_section(examples),
        statement=task.statement.strip(),
        starter_code=task.starter_code.strip("\n").rstrip(),
        tests_section=render(load_template("generate_tests"), tests=tests) if tests.strip() else "",
    )
    return text.rstrip() + "\n"


def generation_messages(task: Task, examples: Sequence[str] = ()) -> tuple[Mapping[str, str], ...]:
    """System and user messages asking for `task` with `examples` (retrieved solution code)."""
    return _messages(generation_user_prompt(task, examples))


def negative_messages(solution: str) -> tuple[Mapping[str, str], ...]:
    """Messages asking for a behaviour-preserving but deliberately less efficient rewrite."""
    user = render(load_template("negatives_user"), solution=solution.strip("\n"))
    return _messages(user.rstrip() + "\n")
