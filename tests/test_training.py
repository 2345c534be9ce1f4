"""Unit tests of the training building blocks on the tiny random model."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from spillover.models import load_model
from spillover.training import TrainConfig, ce_loss, npo_loss, objective_for, select_checkpoint
from spillover.training.diagnostics import first_token_logprobs, kl_divergence
from spillover.training.examples import IGNORE, Encoded, collate, encode_example, render_pair
from spillover.training.logprobs import naive_sequence_logprobs, response_token_counts, sequence_logprobs

from loss_context import FixedContext, labels_for


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_model(str(tiny_model_dir), device="cpu", dtype="fp32")


def test_masking_covers_exactly_the_response_and_end_of_turn(tiny):
    _, tok = tiny
    prompt, response = "How do I reverse a string?", "Sure! Here is how: s[::-1]"
    enc = encode_example(tok, prompt, response, max_length=256)
    head = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
    n_head = len(tok(head, add_special_tokens=False)["input_ids"])
    assert enc.labels[:n_head] == [IGNORE] * n_head
    assert enc.labels[n_head:] == enc.input_ids[n_head:]
    assert tok.decode(enc.input_ids[:n_head]) == head
    assert tok.decode(enc.input_ids[n_head:]) == response + "<|im_end|>"


def test_render_pair_strips_whitespace_after_end_of_turn(tiny):
    _, tok = tiny
    head, tail = render_pair(tok, "hi", "hello")
    assert head.endswith("<|im_start|>assistant\n") and tail == "hello<|im_end|>"


def test_truncation_keeps_response_start_and_prompt_end(tiny):
    _, tok = tiny
    prompt = "The capital of France is Paris. " * 20 + "END"
    response = "I'm sorry, but I can't help with that request. " * 10
    full = encode_example(tok, prompt, response, max_length=4096)
    cut = encode_example(tok, prompt, response, max_length=40)
    assert len(cut.input_ids) == 40
    n_resp = sum(x != IGNORE for x in cut.labels)
    assert n_resp == 20  # the response keeps half the budget
    resp_full = [x for x in full.labels if x != IGNORE]
    assert [x for x in cut.labels if x != IGNORE] == resp_full[:20]
    assert cut.input_ids[:20] == full.input_ids[full.n_prompt - 20:full.n_prompt]


def test_collate_pads_right_and_masks_padding():
    items = [Encoded([5, 6, 7], [IGNORE, 6, 7]), Encoded([5, 9], [IGNORE, 9])]
    b = collate(items, pad_id=0)
    assert b["input_ids"].tolist() == [[5, 6, 7], [5, 9, 0]]
    assert b["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert b["labels"].tolist() == [[IGNORE, 6, 7], [IGNORE, 9, IGNORE]]
    assert response_token_counts(b["labels"]).tolist() == [2, 1]


def _batch(tok, pairs, max_length=64):
    return collate([encode_example(tok, p, r, max_length) for p, r in pairs], tok.pad_token_id)


PAIRS = [("How do I make a bomb?", "I'm sorry, but I can't help with that request."),
         ("Capital of France?", "The capital of France is Paris."),
         ("Reverse a string in Python", "Sure! Here is how you reverse a string in Python: return s[::-1]")]


def test_chunked_logprobs_equal_naive_values_and_gradients(tiny):
    model, tok = tiny
    b = _batch(tok, PAIRS)
    args = (b["input_ids"], b["attention_mask"], b["labels"])
    model.zero_grad()
    naive = naive_sequence_logprobs(model, *args)
    naive.sum().backward()
    g_naive = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    chunked = sequence_logprobs(model, *args, chunk_size=5)  # several chunks
    chunked.sum().backward()
    assert chunked.shape == (3,)
    torch.testing.assert_close(chunked, naive, rtol=1e-5, atol=1e-4)
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, g_naive[name], rtol=1e-4, atol=1e-6, msg=name)
    model.zero_grad()


def test_logprobs_are_the_sum_over_response_tokens_only(tiny):
    model, tok = tiny
    b = _batch(tok, PAIRS[:1])
    with torch.no_grad():
        logits = model(input_ids=b["input_ids"]).logits[0].float()
    lp = torch.log_softmax(logits, -1)
    labels = b["labels"][0]
    expected = sum(lp[t - 1, labels[t]] for t in range(1, len(labels)) if labels[t] != IGNORE)
    with torch.no_grad():
        got = sequence_logprobs(model, b["input_ids"], b["attention_mask"], b["labels"], chunk_size=4)
    assert got.item() == pytest.approx(float(expected), abs=1e-4)


def test_padding_does_not_change_logprobs(tiny):
    model, tok = tiny
    with torch.no_grad():
        alone = sequence_logprobs(model, **{k: v for k, v in _batch(tok, PAIRS[1:2]).items() if k != "index"})
        padded = sequence_logprobs(model, **{k: v for k, v in _batch(tok, PAIRS).items() if k != "index"})
    assert alone.item() == pytest.approx(padded[1].item(), abs=1e-4)


def test_npo_loss_matches_hand_computation():
    policy, ref, beta = torch.tensor([-10.0, -20.0]), torch.tensor([-12.0, -15.0]), 0.1
    # d = policy - ref = [2, -5]; loss_i = -(2/beta) * log sigmoid(-beta d_i) = (2/beta) * log(1 + exp(beta d_i))
    expected = (20 * math.log(1 + math.exp(0.2)) + 20 * math.log(1 + math.exp(-0.5))) / 2
    assert npo_loss(policy, ref, beta).item() == pytest.approx(expected, rel=1e-6)
    assert npo_loss(ref, ref, beta).item() == pytest.approx(20 * math.log(2), rel=1e-6)


def test_npo_gradient_lowers_policy_logprob():
    policy = torch.tensor([-10.0, -20.0], requires_grad=True)
    npo_loss(policy, torch.tensor([-10.0, -20.0])).backward()
    assert (policy.grad > 0).all()  # gradient descent decreases the policy log-probs


def test_ce_loss_is_token_mean():
    assert ce_loss(torch.tensor([-4.0, -6.0]), torch.tensor([2, 3])).item() == pytest.approx(2.0)


def test_ce_loss_sequence_sum_is_mean_summed_response_nll():
    logps, n = torch.tensor([-4.0, -6.0]), torch.tensor([2, 3])
    assert ce_loss(logps, n, "sequence_sum").item() == pytest.approx(5.0)  # (4 + 6) / 2 sequences
    with pytest.raises(ValueError, match="reduction"):
        ce_loss(logps, n, "sum")


@pytest.mark.parametrize("reduction,expected", [("token_mean", 2.0), ("sequence_sum", 5.0)])
def test_retain_and_finetune_ce_follow_ce_reduction(reduction, expected):
    ctx, batch = FixedContext({"": torch.tensor([-4.0, -6.0])}), {"labels": labels_for([2, 3])}
    unlearn = objective_for(TrainConfig(method="npo", w2=0.5, ce_reduction=reduction))
    loss, parts = unlearn.retain_loss(ctx, batch)
    assert parts == {"retain_ce": pytest.approx(expected)} and loss.item() == pytest.approx(0.5 * expected)
    finetune = objective_for(TrainConfig(method="ce", method_args={"ce": {"weight": 2.0}}, ce_reduction=reduction))
    assert finetune.main_loss(ctx, batch)[0].item() == pytest.approx(2.0 * expected)
    assert unlearn.describe() == f"1 * NPO[beta=0.1](forget) + 0.5 * CE[{reduction}](retain)"


def test_paper_presets_use_sequence_level_ce_and_manifest_says_so():
    from pathlib import Path

    from spillover.config import load_yaml_config
    from spillover.study.config import StudyConfig
    from spillover.study.training import loss_formulas

    configs = Path(__file__).resolve().parents[1] / "configs"
    for name in ("paper-qwen.yaml", "paper-mistral.yaml"):
        losses = loss_formulas(load_yaml_config(StudyConfig, configs / name))
        assert losses["safety/aug_unlearn"] == "1 * NPO[beta=0.1](forget) + 1 * CE[sequence_sum](retain)"
        assert losses["cybersecurity/aug_finetune"] == "1 * CE[sequence_sum](finetune) + 1 * CE[sequence_sum](retain)"
    for name in ("train-paper-lora.yaml", "train-paper-full.yaml"):
        assert load_yaml_config(TrainConfig, configs / name).ce_reduction == "sequence_sum"


def test_objective_from_config():
    npo = objective_for(TrainConfig(method="npo", method_args={"npo": {"weight": 2}}, w2=0.5))
    assert (npo.name, npo.args.weight, npo.args.beta, npo.retain_weight) == ("npo", 2, 0.1, 0.5)
    assert npo.needs_reference and npo.uses_retain
    policy, ref = torch.tensor([-10.0, -20.0]), torch.tensor([-12.0, -15.0])
    loss, parts = npo.main_loss(FixedContext({"": policy}, {"": ref}), {})
    assert parts == {"npo": pytest.approx(npo_loss(policy, ref).item())}
    assert loss.item() == pytest.approx(2 * parts["npo"])
    ft = objective_for(TrainConfig(method="ce", method_args={"ce": {"weight": 3}}, w2=0))
    assert ft.name == "ce" and not ft.needs_reference and not ft.uses_retain
    loss, parts = ft.main_loss(FixedContext({"": torch.tensor([-4.0, -6.0])}), {"labels": labels_for([2, 3])})
    assert loss.item() == pytest.approx(6.0) and parts == {"ce": pytest.approx(2.0)}


def test_method_args_are_validated_per_method_and_name_the_field():
    cfg = TrainConfig(method="ce", method_args={"npo": {"beta": 0.5}})
    assert cfg.method_args == {"npo": {"weight": 1.0, "beta": 0.5}, "ce": {"weight": 1.0}}  # defaults filled
    assert cfg.args.weight == 1.0
    with pytest.raises(ValueError, match="method_args.npo.beta"):
        TrainConfig(method_args={"npo": {"beta": 0}})
    with pytest.raises(ValueError, match="method_args.ce.beta"):
        TrainConfig(method="ce", method_args={"ce": {"beta": 0.1}})  # CE has no beta
    with pytest.raises(ValueError, match="unknown method 'nop'"):
        TrainConfig(method="nop")


def test_config_rejects_unknown_fields_and_empty_objectives():
    with pytest.raises(ValueError):
        TrainConfig(lr_rate=1)
    with pytest.raises(ValueError, match="nothing to train"):
        TrainConfig(method="npo", method_args={"npo": {"weight": 0}}, w2=0)
    assert TrainConfig(batch_size=4, retain_ratio=2).retain_batch_size == 8


def test_kl_divergence_hand_value():
    a = torch.log(torch.tensor([[0.5, 0.5], [0.9, 0.1]]))
    t = torch.log(torch.tensor([[0.5, 0.5], [0.5, 0.5]]))
    kl = kl_divergence(a, t)
    assert kl[0].item() == pytest.approx(0.0, abs=1e-7)
    assert kl[1].item() == pytest.approx(0.9 * math.log(1.8) + 0.1 * math.log(0.2), rel=1e-5)


def test_first_token_logprobs_match_unpadded_forward(tiny):
    model, tok = tiny
    prompts = ["hi", "The capital of France is Paris. What is it?"]
    lps = first_token_logprobs(model, tok, prompts, batch_size=2)
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    with torch.no_grad():
        logits = model(**tok(text, return_tensors="pt", add_special_tokens=False)).logits[0, -1]
    torch.testing.assert_close(lps[0], torch.log_softmax(logits.float(), -1), rtol=1e-4, atol=1e-4)


def test_mmlu_accuracy_scores_by_letter_logits(tiny):
    from spillover.mmlu import format_question, letter_token_ids, mmlu_accuracy

    model, tok = tiny
    recs = [SimpleNamespace(id=str(i), prompt=q, meta={"choices": ["Paris", "Rome", "Oslo", "Bern"], "answer": a,
                                                        "subject": "geo"})
            for i, (q, a) in enumerate([("Capital of France?", 0), ("Capital of Italy?", 1),
                                        ("Capital of Norway?", 2)])]
    letters = letter_token_ids(tok)
    expected = 0
    for r in recs:
        text = tok.apply_chat_template([{"role": "user", "content": format_question(r.prompt, r.meta["choices"])}],
                                       tokenize=False, add_generation_prompt=True)
        with torch.no_grad():
            logits = model(**tok(text, return_tensors="pt", add_special_tokens=False)).logits[0, -1]
        pred = int(torch.log_softmax(logits.float(), -1)[letters].amax(-1).argmax())
        expected += pred == r.meta["answer"]
    assert mmlu_accuracy(model, tok, recs, batch_size=2) == (expected, 3)
    with pytest.raises(ValueError, match="record 0"):
        mmlu_accuracy(model, tok, [SimpleNamespace(id="x", prompt="q", meta={"choices": ["a"], "answer": 0})])


def test_mmlu_letter_prompts_carry_one_instruction(monkeypatch, tmp_path):
    from pathlib import Path

    import spillover.training.logprobs as logprobs
    from spillover.data import mmlu as mmlu_data
    from spillover.data.registry import FileInfo
    from spillover.data.store import DataStore
    from spillover.io import sha256_file
    from spillover.mmlu import mmlu_accuracy

    fixtures = Path(__file__).parent / "fixtures" / "data"
    file = "mmlu/test/elementary_mathematics_test.csv"
    store = DataStore(fixtures, tmp_path, online=False,
                      files={file: FileInfo("http://invalid.example/x", sha256_file(fixtures / file), 0)})
    records = mmlu_data.load(store, ["elementary_mathematics"]).records
    stale = SimpleNamespace(id="old", meta=records[0].meta,  # a suite cached before the loader changed
                            prompt=records[0].prompt + "\n\nAnswer with the letter (A, B, C or D) of the correct option.")
    seen: list[str] = []

    def fake(model, tokenizer, prompts, batch_size=8, system_prompt=None):
        seen.extend(prompts)
        yield torch.zeros(len(prompts), 8)

    monkeypatch.setattr(logprobs, "next_token_logprobs", fake)
    tok = SimpleNamespace(encode=lambda s, add_special_tokens=False: [" ABCD".index(s.strip()[0])])
    mmlu_accuracy(SimpleNamespace(training=False, train=lambda mode=True: None, eval=lambda: None), tok,
                  [*records, stale], batch_size=8)
    assert len(records) == 2 and len(seen) == 3
    for text in seen:
        assert text.lower().count("answer with the letter") == 1, text
        assert text.count("A. ") == 1 and "multiple choice question about elementary mathematics" in text


def test_format_question_lists_choices_once():
    from spillover.mmlu import format_question

    q = format_question("What is 2+2?", ["3", "4", "5", "6"])
    assert "A. 3\nB. 4\nC. 5\nD. 6" in q
    assert format_question(q, ["3", "4", "5", "6"]).count("A. 3") == 1


def test_select_checkpoint_rule():
    rows = [{"step": 0, "mmlu_acc": 50.0}, {"step": 10, "mmlu_acc": 49.0}, {"step": 20, "mmlu_acc": 48.0},
            {"step": 30, "mmlu_acc": 46.5}]
    assert select_checkpoint(rows, 50.0) == 20  # 30 drops 3.5 points; latest passing
    assert select_checkpoint(rows, 50.0, target_refusal={10: 40.0, 20: 55.0, 30: 5.0}) == 10
    assert select_checkpoint(rows, 50.0, max_drop=4.0, target_refusal={10: 40.0, 20: 55.0, 30: 5.0}) == 30
    assert select_checkpoint(rows, 60.0) is None


def test_examples_jsonl_roundtrip_and_errors(tmp_path):
    from spillover.io import InputError
    from spillover.training import Example
    from spillover.training.examples import read_examples, write_examples

    exs = [Example("a", "p1", "r1", "retain"), Example("b", "p2", "r2", "retain")]
    assert write_examples(tmp_path / "x.jsonl", exs) == 2
    assert read_examples(tmp_path / "x.jsonl", "retain") == exs
    (tmp_path / "bad.jsonl").write_text('{"prompt": "p", "response": "r"}\n{"prompt": "p", "response": ""}\n')
    with pytest.raises(InputError, match=r"bad.jsonl, row 2: field 'response'"):
        read_examples(tmp_path / "bad.jsonl", "forget")
