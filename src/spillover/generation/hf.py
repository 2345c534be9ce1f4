"""The transformers generation backend: left-padded batches sorted by length."""

from __future__ import annotations

import torch

from .base import Decoding, Messages, render_chat


def end_token_ids(model, tokenizer) -> list[int]:
    """Token ids that end a response: the generation config's eos ids and the end-of-turn tokens."""
    ids = model.generation_config.eos_token_id
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    for tok in ("<|im_end|>", "<|eot_id|>", "<|end|>", tokenizer.eos_token):
        tid = tokenizer.convert_tokens_to_ids(tok) if tok else None
        if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid not in ids:
            ids.append(tid)
    return ids


class HFBackend:
    """Generate with a loaded transformers (or peft) model.

    Prompts are sorted by token length so each batch pads little; ``generate`` stops a batch as
    soon as every sequence in it has emitted an end-of-turn token. ``generator`` (default: ``model``)
    is the module that decodes, e.g. an int8 copy (``quant.int8_copy``); ``model`` stays the
    weights the study scores and swaps adapters on.
    """

    def __init__(self, model, tokenizer, identity: str, batch_size: int = 8, generator=None):
        self.model = model
        self.generator = model if generator is None else generator
        self.tokenizer = tokenizer
        self.identity = identity
        self.batch_size = batch_size
        tokenizer.padding_side = "left"

    def render(self, messages: Messages) -> str:
        return render_chat(self.tokenizer, messages)

    @torch.inference_mode()
    def generate(self, rendered: list[str], decoding: Decoding) -> list[list[str]]:
        """Generate for one batch of rendered prompts (the engine does the length sorting)."""
        enc = self.tokenizer(rendered, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(self.model.device) for k, v in enc.items()}
        kwargs = dict(
            max_new_tokens=decoding.max_new_tokens,
            num_return_sequences=decoding.n,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=end_token_ids(self.model, self.tokenizer),
        )
        if decoding.greedy:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            torch.manual_seed(decoding.seed)
            kwargs.update(do_sample=True, temperature=decoding.temperature, top_p=decoding.top_p, top_k=None)
        out = self.generator.generate(**enc, **kwargs)  # (B * n, prompt_len + new)
        new = out[:, enc["input_ids"].shape[1]:]
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        n = decoding.n
        return [[t.strip() for t in texts[i * n:(i + 1) * n]] for i in range(len(rendered))]
