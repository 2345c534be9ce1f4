"""MMLU accuracy, by answer letter (default) or by the likelihood of each answer's text (cloze).

letter: the question is chat-formatted as one user turn (the question with its subject header and
its four choices as "A. ..." lines, rebuilt from ``meta`` when it has "question" and "subject",
else the record's prompt plus the choices unless it lists them; then the one instruction to answer
with the letter); the predicted answer is the letter whose token gets the highest logit at the first
response position. Letter tokens are looked up both bare ("A") and space-prefixed (" A"); the
larger log-prob of the two counts.

cloze: the question alone (``meta["question"]``, else the prompt) is the user turn and each
choice's text the assistant response; the choice with the highest mean log-prob per response
token wins. Small models that answer every letter question with "A" score at the floor under
letter scoring but still rank answer texts, so cloze keeps utility measurable for them.
"""

from __future__ import annotations

import torch

LETTERS = "ABCD"
INSTRUCTION = "Answer with the letter of the correct option (A, B, C or D) only."


def format_question(prompt: str, choices: list[str]) -> str:
    """The user message for one multiple-choice question."""
    if not all(f"{letter}. {c}" in prompt for letter, c in zip(LETTERS, choices)):
        prompt = prompt.rstrip() + "\n\n" + "\n".join(f"{letter}. {c}" for letter, c in zip(LETTERS, choices))
    return f"{prompt}\n\n{INSTRUCTION}"


def letter_prompt(record, choices: list[str]) -> str:
    """The user message of a letter-scored record (one instruction, whatever its stored prompt says)."""
    from .data.mmlu import render

    meta = getattr(record, "meta", None) or {}
    if meta.get("question") and meta.get("subject"):
        return format_question(render(meta["subject"], meta["question"], choices), choices)
    return format_question(record.prompt, choices)


def letter_token_ids(tokenizer) -> torch.Tensor:
    """(4, k) token ids per letter: the single-token spellings among "A" and " A"."""
    rows = []
    for letter in LETTERS:
        ids = [tokenizer.encode(s, add_special_tokens=False) for s in (letter, " " + letter)]
        ids = sorted({i[0] for i in ids if len(i) == 1})
        if not ids:
            raise ValueError(f"the tokenizer has no single token for the answer letter {letter!r}")
        rows.append(ids)
    width = max(len(r) for r in rows)
    return torch.tensor([r + [r[0]] * (width - len(r)) for r in rows])


def _check(record, i: int) -> tuple[list[str], int]:
    meta = getattr(record, "meta", None) or {}
    choices, answer = meta.get("choices"), meta.get("answer")
    if not (isinstance(choices, list) and len(choices) == 4 and isinstance(answer, int) and 0 <= answer < 4):
        raise ValueError(f"MMLU record {i} ({getattr(record, 'id', '?')}): meta needs 'choices' (4 strings) "
                         f"and 'answer' (0-3)")
    return choices, answer


@torch.no_grad()
def cloze_predictions(model, tokenizer, questions: list[str], choices: list[list[str]],
                      batch_size: int = 8) -> torch.Tensor:
    """(N,) index of the choice with the highest mean per-token log-prob as the response."""
    from .training.examples import collate, encode_example
    from .training.logprobs import response_token_counts, sequence_logprobs

    pairs = [(q, c) for q, cs in zip(questions, choices) for c in cs]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    scores = []
    for start in range(0, len(pairs), batch_size):
        batch = collate([encode_example(tokenizer, q, c, max_length=1024) for q, c in pairs[start:start + batch_size]], pad)
        batch = {k: v.to(model.device) for k, v in batch.items() if k != "index"}
        lp = sequence_logprobs(model, batch["input_ids"], batch["attention_mask"], batch["labels"])
        scores.append((lp / response_token_counts(batch["labels"]).clamp(min=1)).float().cpu())
    return torch.cat(scores).view(len(questions), 4).argmax(dim=-1)


@torch.no_grad()
def mmlu_accuracy(model, tokenizer, records, batch_size: int = 8, method: str = "letter") -> tuple[int, int]:
    """Return (correct, n) over records with ``.prompt`` and ``.meta`` {choices, answer, subject}."""
    from .training.logprobs import next_token_logprobs

    checked = [_check(r, i) for i, r in enumerate(records)]
    if method == "cloze":
        was_training = model.training
        model.eval()
        try:
            pred = cloze_predictions(model, tokenizer, [(r.meta or {}).get("question", r.prompt) for r in records],
                                     [c for c, _ in checked], batch_size)
        finally:
            model.train(was_training)
        return int((pred == torch.tensor([a for _, a in checked])).sum()), len(records)
    if method != "letter":
        raise ValueError(f"unknown MMLU scoring method {method!r}; use 'letter' or 'cloze'")
    prompts = [letter_prompt(r, c) for r, (c, _) in zip(records, checked)]
    letters = letter_token_ids(tokenizer)
    answers = torch.tensor([a for _, a in checked])
    was_training = model.training
    model.eval()
    correct, done = 0, 0
    try:
        for lp in next_token_logprobs(model, tokenizer, prompts, batch_size):
            scores = lp[:, letters.to(lp.device)].amax(dim=-1)  # (b, 4)
            pred = scores.argmax(dim=-1).cpu()
            correct += int((pred == answers[done:done + len(pred)]).sum())
            done += len(pred)
    finally:
        model.train(was_training)
    return correct, len(records)
