"""Code extraction: the python block that defines the entry point, else no code."""

from perfrepro.generation.extract import defined_names, entry_names, extract_code, main_entry, python_blocks

SOLUTION = "class Solution:\n    def twoSum(self, nums, target):\n        return [0, 1]\n"


def test_entry_names():
    assert entry_names("Solution().twoSum") == ("Solution",)
    assert entry_names("has_close_elements") == ("has_close_elements",)


def test_picks_the_block_that_defines_the_entry_point_not_the_first_block():
    response = f"Usage:\n```python\nprint(Solution().twoSum([1], 1))\n```\nCode:\n```python\n{SOLUTION}```\nDone."
    assert extract_code(response, "Solution().twoSum") == SOLUTION


def test_accepts_py_and_untagged_fences_and_an_unclosed_last_block():
    assert extract_code(f"```py\n{SOLUTION}```", "Solution().twoSum") == SOLUTION
    assert extract_code(f"```\n{SOLUTION}```", "Solution().twoSum") == SOLUTION
    cut_off = "```python\ndef add(a, b):\n    return a +"
    assert extract_code(cut_off, "add") == "def add(a, b):\n    return a +\n"


def test_skips_other_languages():
    assert python_blocks(f"```java\nclass Solution {{}}\n```") == []


def test_bare_code_without_fences_counts():
    assert extract_code(SOLUTION, "Solution().twoSum") == SOLUTION


def test_no_block_defining_the_entry_point_is_none():
    assert extract_code("I cannot help with that.", "Solution().twoSum") is None
    assert extract_code("```python\ndef helper():\n    pass\n```", "Solution().twoSum") is None
    assert extract_code("```python\ndef add_two(a, b):\n    return a\n```", "add") is None
    assert extract_code("", "add") is None and extract_code(None, "add") is None


def test_only_top_level_definitions_count():
    nested = "def outer():\n    class Solution:\n        pass\n"
    assert "Solution" not in defined_names(nested)


def test_unparseable_block_is_still_found_by_its_definition_line():
    broken = "class Solution:\n    def f(self):\n        return (\n"
    assert extract_code(f"```python\n{broken}```", "Solution().f") == broken


def test_main_entry_of_a_reference_solution():
    assert main_entry(SOLUTION) == "Solution"
    assert main_entry("import math\n\ndef f(x):\n    return x\n\ndef g():\n    pass\n") == "f"
    assert main_entry("x = 1\n") is None


def test_bare_function_with_the_method_name_is_bound_to_the_class():
    response = "```python\ndef twoSum(nums, target):\n    return [0, 1]\n```"
    code = extract_code(response, "Solution().twoSum")
    namespace = {}
    exec(code, namespace)
    assert namespace["Solution"]().twoSum([2, 7], 9) == [0, 1]


def test_bare_function_taking_self_becomes_a_method():
    response = "```python\ndef twoSum(self, nums, target):\n    return [len(nums), target]\n```"
    namespace = {}
    exec(extract_code(response, "Solution().twoSum"), namespace)
    assert namespace["Solution"]().twoSum([2, 7], 9) == [2, 9]


def test_function_with_another_name_is_still_no_code():
    assert extract_code("```python\ndef other(nums):\n    return 1\n```", "Solution().twoSum") is None


def test_class_entry_point_names_the_first_public_method():
    from perfrepro.generation.extract import class_entry_point

    code = "class Solution:\n    def _helper(self):\n        pass\n    def twoSum(self, nums):\n        return nums\n"
    assert class_entry_point(code) == "Solution().twoSum"
    assert class_entry_point("def f():\n    pass\n") == "Solution"
