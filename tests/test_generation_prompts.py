"""The EffiBench-style RAG prompt and the negatives prompt, rendered from the template files."""

from pathlib import Path

import pytest

import perfrepro.generation
from perfrepro.generation.prompts import (
    generation_messages,
    load_template,
    negative_messages,
    package_template,
    render,
    system_message,
)
from perfrepro.records import Task

TASK = Task(
    id="add-two", statement="Given a and b, return {a + b}.",
    starter_code="class Solution:\n    def add(self, a: int, b: int) -> int:\n        ",
    canonical_solution="", test_code="", entry_point="Solution().add",
    examples="assert Solution().add(1, 2) == 3", source="test",
)
EXAMPLES = ["def fast_sum(xs):\n    return sum(xs)\n", "class Solution:\n    def f(self):\n        return {}\n"]


def test_system_message_is_the_studys():
    assert system_message() == "You are a code developer."
    messages = generation_messages(TASK, EXAMPLES)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"] == "You are a code developer."


def test_user_message_sections_come_in_the_studys_order():
    user = generation_messages(TASK, EXAMPLES)[1]["content"]
    positions = [user.index(marker) for marker in (
        "Please complete Python code", "# Examples of efficient solutions", "## Example 1", "fast_sum",
        "## Example 2", "# Task description:", "Given a and b", "def add(self", "# Test case:",
        "assert Solution().add(1, 2) == 3")]
    assert positions == sorted(positions)
    assert "return {a + b}" in user and "return {}" in user  # braces pass through untouched


def test_zero_shots_leaves_the_examples_section_out():
    user = generation_messages(TASK, [])[1]["content"]
    assert "Example" not in user and "# Task description:" in user


def test_prompt_is_deterministic_and_shots_change_it():
    assert generation_messages(TASK, EXAMPLES) == generation_messages(TASK, EXAMPLES)
    assert generation_messages(TASK, EXAMPLES[:1]) != generation_messages(TASK, EXAMPLES)


def test_task_without_examples_has_no_test_section():
    bare = Task(**{**TASK.__dict__, "examples": ""})
    assert "# Test case" not in generation_messages(bare)[1]["content"]


def test_negative_prompt_contains_the_solution():
    messages = negative_messages(EXAMPLES[0])
    assert messages[0]["content"] == "You are a code developer."
    assert "less efficient" in messages[1]["content"] and "return sum(xs)" in messages[1]["content"]


def test_templates_are_files_in_the_package():
    folder = Path(perfrepro.generation.__file__).parent / "templates"
    for name in ("system", "generate_instructions", "generate_user", "generate_examples", "generate_example",
                 "generate_tests", "negatives_user"):
        assert (folder / f"{name}.txt").read_text() == load_template(name)


def test_every_room_reads_its_templates_through_one_loader_that_names_the_folder():
    import perfrepro.optimization
    import perfrepro.selfplay

    for package, name in ((perfrepro.optimization, "plain_query"), (perfrepro.selfplay, "propose_user")):
        folder = Path(package.__file__).parent / "templates"
        assert package_template(package.__name__, name) == (folder / f"{name}.txt").read_text()
    with pytest.raises(FileNotFoundError, match=r"'nope' not found in perfrepro/selfplay/templates"):
        package_template("perfrepro.selfplay", "nope")


def test_render_rejects_an_unknown_placeholder():
    with pytest.raises(KeyError, match="missing"):
        render("{{missing}}")
