"""Pull the program out of a model's answer: the python block that defines the entry point.

The entry point is written as LeetCodeDataset does (``Solution().twoSum``: the class ``Solution``
must be defined) or as a bare function name (``has_close_elements``). A response without such a
block yields no code, which the caller records as status ``no_code``; it is never an exception.
"""

from __future__ import annotations

import ast
import re

# ```python, ```py, ```Python3, or a bare ``` fence; the closing fence may be missing when the
# answer was cut off at max_tokens.
_FENCE = re.compile(r"^[ \t]*```[ \t]*([A-Za-z0-9_+.-]*)[^\n]*\n(.*?)(?:^[ \t]*```|\Z)", re.MULTILINE | re.DOTALL)
_PYTHON_TAGS = {"", "python", "py", "python3", "py3"}


def entry_names(entry_point: str) -> tuple[str, ...]:
    """The top-level names a program must define: ``Solution().f`` -> ("Solution",), ``f`` -> ("f",)."""
    entry = entry_point.strip()
    if not entry:
        raise ValueError("entry point is empty")
    head = entry.split(".", 1)[0]
    return (head.removesuffix("()"),)


def python_blocks(text: str) -> list[str]:
    """The fenced python (or untagged) code blocks of `text`, in order."""
    blocks = []
    for match in _FENCE.finditer(text):
        if match.group(1).lower() in _PYTHON_TAGS:
            code = match.group(2).strip("\n")
            if code.strip():
                blocks.append(code + "\n")
    return blocks


def defined_names(code: str) -> set[str]:
    """Names of top-level classes and functions in `code`; a line scan when it does not parse."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return set(re.findall(r"^(?:async\s+def|def|class)\s+([A-Za-z_]\w*)", code, re.MULTILINE))
    return {
        node.name
        for node in tree.body
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
    }


def main_entry(code: str) -> str | None:
    """The entry point a reference solution offers: ``Solution`` if it defines it, else its first
    top-level function or class (None when it defines neither)."""
    names = defined_names(code)
    if "Solution" in names:
        return "Solution"
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        found = re.search(r"^(?:def|class)\s+([A-Za-z_]\w*)", code, re.MULTILINE)
        return found.group(1) if found else None
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            return node.name
    return None


def method_name(entry_point: str) -> str | None:
    """The method of a class entry point: ``Solution().twoSum`` -> "twoSum"; None for a function."""
    head, _, tail = entry_point.strip().partition(".")
    return tail or None if head.endswith("()") else None


def _takes_self(block: str, function: str) -> bool:
    found = re.search(rf"^(?:async\s+)?def\s+{re.escape(function)}\s*\(\s*self\b", block, re.MULTILINE)
    return found is not None


def _wrap_function_as_method(block: str, class_name: str, method: str) -> str:
    # Small models often answer `def twoSum(nums, target)` without the class; binding the function
    # to the class lets the tests judge it instead of discarding it as no code.
    binding = method if _takes_self(block, method) else f"staticmethod({method})"
    return f"{block.rstrip()}\n\n\nclass {class_name}:\n    {method} = {binding}\n"


def class_entry_point(code: str, class_name: str = "Solution") -> str:
    """``Solution().method`` for the first public method of `class_name` in `code`; the bare
    ``Solution`` when it cannot tell (the code does not parse or has no such method)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return class_name
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and not item.name.startswith("_"):
                    return f"{class_name}().{item.name}"
    return class_name


def extract_code(response: str | None, entry_point: str) -> str | None:
    """The first python block of `response` that defines the entry point, else None.

    When the response has no fenced block at all, the whole response counts as one block (some
    models answer with bare code). For a class entry point (``Solution().twoSum``), a block that
    defines only a top-level function of the method's name is accepted and bound to the class.
    """
    if not response:
        return None
    required = set(entry_names(entry_point))
    blocks = python_blocks(response)
    if not blocks and "```" not in response:
        blocks = [response.strip("\n") + "\n"]
    for block in blocks:
        if required <= defined_names(block):
            return block
    method = method_name(entry_point)
    if method:
        for block in blocks:
            if method in defined_names(block):
                return _wrap_function_as_method(block, *required, method)
    return None
