"""PIE prompt shapes and nearest-example ordering (no model, no encoder)."""

import json

import numpy as np
import pytest

from perfrepro.optimization.fewshot import nearest_examples
from perfrepro.optimization.prompts import load_conditioned_template, optimization_messages, optimization_user_prompt

SLOW = "def f(n):\n    return sum(i for i in range(n))\n"
EXAMPLES = [("x = {1: 2}\nprint(x)", "print({1: 2})"), ("a=input()\nprint(a)", "print(input())")]


def test_plain_prompt_shape_most_similar_last():
    text = optimization_user_prompt(SLOW, "f", EXAMPLES, "plain")
    assert text.count("# slower version:") == 3 and text.count("# optimized version of the same code:") == 3
    assert text.index("print({1: 2})") < text.index("print(input())") < text.index("def f(n)")
    assert text.rstrip().endswith("# optimized version of the same code:")
    assert "`f`" in text and "{1: 2}" in text  # braces in code survive


def test_conditioned_prompt_uses_pie_template_at_10():
    template = load_conditioned_template("data/raw/pie/templates")
    text = optimization_user_prompt(SLOW, "f", EXAMPLES[:1], "conditioned", template)
    assert text.count("optimize 10/10") == 2 and text.rstrip().endswith("### Optimized Version with score 10/10:")
    assert "{pctile}" not in text and "{src_code}" not in text


def test_bad_style_and_bad_template(tmp_path):
    with pytest.raises(ValueError, match="pie.prompt_style"):
        optimization_user_prompt(SLOW, "f", (), "fancy")
    with pytest.raises(ValueError, match="conditioned needs"):
        optimization_user_prompt(SLOW, "f", (), "conditioned")
    (tmp_path / "code_opt_w_speedup_pctile.json").write_text(json.dumps({"prompt_no_input": "no placeholders"}))
    with pytest.raises(ValueError, match="lacks"):
        load_conditioned_template(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_conditioned_template(tmp_path / "missing")


def test_messages_have_system_and_user():
    user = optimization_user_prompt(SLOW, "f")
    messages = optimization_messages(user)
    assert [m["role"] for m in messages] == ["system", "user"] and messages[1]["content"] == user


def test_nearest_examples_order_and_ties():
    bank = np.array([[1, 0], [0, 1], [0.8, 0.6], [1, 0]], dtype=np.float32)
    query = np.array([[1, 0]], dtype=np.float32)
    # scores 1, 0, 0.8, 1: top-3 by score with ties to the lower index = 0, 3, 2; least similar first
    assert nearest_examples(query, bank, 3) == [[2, 3, 0]]
    assert nearest_examples(query, bank, 0) == [[]]
    assert nearest_examples(query, bank, 10) == [[1, 2, 3, 0]]
