"""Fast decoding for Llama-family models: a static KV cache and one CUDA graph per decode step.

transformers' ``generate`` spends most of a decode step launching kernels from Python (hundreds
per step for a 7B model), so at batch 64 a GPU runs at a few percent of its memory bandwidth.
Here the prompt is prefilled once, eagerly; then each step (embed -> all layers -> final norm ->
LM head) replays one captured CUDA graph that reads the new token, its position and the cache
slot from fixed device buffers. Only token selection (argmax or sampling) runs outside the graph.

Supported: decoder stacks of the Llama / Mistral / Qwen2 form (pre-norm, rotary attention with
grouped KV heads, gated MLP), full attention only. The projections are called as modules, so
peft LoRA layers work unmerged. Without CUDA the same code runs eagerly (used by the tests).
"""

from __future__ import annotations

import torch

from .base import Decoding
from .hf import HFBackend, end_token_ids

SUPPORTED_TYPES = ("llama", "mistral", "qwen2")


class UnsupportedModelError(ValueError):
    """The model's architecture is not one this decoder implements."""


def _base(model):
    """The transformers CausalLM under a peft wrapper (LoRA layers stay injected)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def check_supported(model, max_len: int) -> None:
    """Raise UnsupportedModelError unless ``model`` can be decoded here up to ``max_len`` tokens."""
    cfg = _base(model).config
    if cfg.model_type not in SUPPORTED_TYPES:
        raise UnsupportedModelError(
            f"static decoding supports {', '.join(SUPPORTED_TYPES)}; model_type is {cfg.model_type!r}"
        )
    window = getattr(cfg, "sliding_window", None)
    uses_window = getattr(cfg, "use_sliding_window", cfg.model_type == "mistral")
    if uses_window and window is not None and max_len > window:
        raise UnsupportedModelError(f"sliding-window attention (window {window}) is not implemented; "
                                    f"prompt + new tokens = {max_len}")


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class StaticDecoder:
    """Prefill + graph-replayed decode for one batch shape.

    ``prefill(input_ids, attention_mask)`` takes left-padded prompts (B, L) and returns the
    last-position logits (B, V); each ``step(tokens)`` appends tokens (B,) and returns the next
    logits (B, V). The cache holds ``max_len`` positions per sequence.
    """

    def __init__(self, model, batch_size: int, max_len: int, use_graph: bool | None = None):
        check_supported(model, max_len)
        lm = _base(model)
        self.inner = lm.model
        self.lm_head = lm.lm_head
        cfg = lm.config
        attn = self.inner.layers[0].self_attn
        self.n_heads = cfg.num_attention_heads
        self.n_kv = cfg.num_key_value_heads
        self.head_dim = attn.head_dim
        self.scaling = getattr(attn, "scaling", self.head_dim ** -0.5)
        self.batch_size, self.max_len = batch_size, max_len
        p = next(lm.parameters())
        self.device, self.dtype = p.device, p.dtype
        self.use_graph = self.device.type == "cuda" if use_graph is None else use_graph
        shape = (batch_size, self.n_kv, max_len, self.head_dim)
        self.keys = [torch.zeros(shape, device=self.device, dtype=self.dtype) for _ in self.inner.layers]
        self.values = [torch.zeros(shape, device=self.device, dtype=self.dtype) for _ in self.inner.layers]
        self.key_valid = torch.zeros(batch_size, max_len, dtype=torch.bool, device=self.device)
        # decode-step inputs (fixed buffers the graph reads) and output
        self.token = torch.zeros(batch_size, 1, dtype=torch.long, device=self.device)
        self.position = torch.zeros(batch_size, 1, dtype=torch.long, device=self.device)
        self.slot = torch.zeros(1, dtype=torch.long, device=self.device)
        self.logits = None
        self.graph = None
        self.next_slot = 0  # cache slot of the next token
        self.prompt_width = 0
        self.base_position = None  # (B, 1) position of the first new token

    def _layer(self, i, layer, h, cos, sin, slots, mask):
        """Decoder layer ``i`` on h (B, T, D), writing its keys/values at cache ``slots`` (T,)."""
        b, t, _ = h.shape
        g = self.n_heads // self.n_kv
        attn = layer.self_attn
        x = layer.input_layernorm(h)
        q = attn.q_proj(x).view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        k = attn.k_proj(x).view(b, t, self.n_kv, self.head_dim).transpose(1, 2)
        v = attn.v_proj(x).view(b, t, self.n_kv, self.head_dim).transpose(1, 2)
        cos, sin = cos[:, None], sin[:, None]  # (B, 1, T, hd)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        kc, vc = self.keys[i], self.values[i]
        kc.index_copy_(2, slots, k)
        vc.index_copy_(2, slots, v)
        # grouped-query attention without expanding the cache: (B, kv, g*T, hd) x (B, kv, hd, S)
        qg = q.reshape(b, self.n_kv, g * t, self.head_dim)
        scores = torch.matmul(qg, kc.transpose(-1, -2)).float() * self.scaling  # (B, kv, g*T, S)
        scores = scores.view(b, self.n_kv, g, t, -1).masked_fill(~mask[:, None, None], float("-inf"))
        probs = torch.softmax(scores, dim=-1).to(self.dtype).view(b, self.n_kv, g * t, -1)
        o = torch.matmul(probs, vc).view(b, self.n_heads, t, self.head_dim)
        h = h + attn.o_proj(o.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim))
        return h + layer.mlp(layer.post_attention_layernorm(h))

    def _forward(self, ids, positions, slots, mask):
        """ids, positions (B, T); slots (T,); mask (B, T, S) -> last-position logits (B, V)."""
        h = self.inner.embed_tokens(ids)
        cos, sin = self.inner.rotary_emb(h, positions)
        for i, layer in enumerate(self.inner.layers):
            h = self._layer(i, layer, h, cos, sin, slots, mask)
        return self.lm_head(self.inner.norm(h[:, -1]))

    @torch.inference_mode()
    def prefill(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Run the left-padded prompts (B, L) through the model; returns logits (B, V)."""
        b, width = input_ids.shape
        if b != self.batch_size or width >= self.max_len:
            raise ValueError(f"prefill of shape {tuple(input_ids.shape)} does not fit batch "
                             f"{self.batch_size} x {self.max_len} positions")
        real = attention_mask.to(self.device).bool()
        positions = (real.long().cumsum(-1) - 1).clamp(min=0)
        self.key_valid.zero_()
        self.key_valid[:, :width] = real
        causal = torch.ones(width, self.max_len, dtype=torch.bool, device=self.device).tril()
        mask = causal[None] & self.key_valid[:, None, :]  # (B, L, S)
        mask |= torch.eye(width, self.max_len, dtype=torch.bool, device=self.device)[None]  # pad rows see themselves
        slots = torch.arange(width, device=self.device)
        logits = self._forward(input_ids.to(self.device), positions, slots, mask)
        self.base_position = positions[:, -1:] + 1
        self.next_slot = self.prompt_width = width
        self.graph = None
        return logits

    def _decode(self) -> torch.Tensor:
        self.key_valid.index_fill_(1, self.slot, True)
        return self._forward(self.token, self.position, self.slot, self.key_valid[:, None, :])

    def _capture(self) -> None:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):  # warm-up (same slot and inputs as the first real step)
                self._decode()
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.logits = self._decode()

    @torch.inference_mode()
    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Append one token per sequence (B,) and return the next-token logits (B, V)."""
        if self.next_slot >= self.max_len:
            raise ValueError(f"the static cache holds {self.max_len} positions; it is full")
        self.token.copy_(tokens.view(-1, 1))
        torch.add(self.base_position, self.next_slot - self.prompt_width, out=self.position)
        self.slot.fill_(self.next_slot)
        self.next_slot += 1
        if not self.use_graph:
            return self._decode()
        if self.graph is None:
            self._capture()  # capturing records the kernels without running them
        self.graph.replay()
        return self.logits


def select_tokens(logits: torch.Tensor, decoding: Decoding, generator: torch.Generator | None) -> torch.Tensor:
    """Greedy argmax, or temperature + top-p sampling, over logits (B, V) -> (B,)."""
    if decoding.greedy:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / decoding.temperature, dim=-1)
    if decoding.top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        drop = sorted_p.cumsum(-1) - sorted_p > decoding.top_p  # keep the smallest set reaching top_p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_p)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.inference_mode()
def static_generate(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int,
                    decoding: Decoding | None = None, stop_ids: list[int] | None = None,
                    use_graph: bool | None = None, check_every: int = 16) -> torch.Tensor:
    """Generate up to ``max_new_tokens`` for left-padded prompts (B, L); returns new tokens (B, N).

    Rows that emitted a stop id keep producing tokens until every row has stopped (checked every
    ``check_every`` steps); callers cut each row at its first stop id.
    """
    decoding = decoding or Decoding(max_new_tokens=max_new_tokens)
    b, width = input_ids.shape
    dec = StaticDecoder(model, b, width + max_new_tokens, use_graph=use_graph)
    gen = None
    if not decoding.greedy:
        gen = torch.Generator(device=dec.device)
        gen.manual_seed(decoding.seed)
    stops = torch.tensor(stop_ids or [], dtype=torch.long, device=dec.device)
    done = torch.zeros(b, dtype=torch.bool, device=dec.device)
    out = torch.empty(b, max_new_tokens, dtype=torch.long, device=dec.device)
    logits = dec.prefill(input_ids, attention_mask)
    n = 0
    for n in range(1, max_new_tokens + 1):
        tokens = select_tokens(logits, decoding, gen)
        out[:, n - 1] = tokens
        if stops.numel():
            done |= torch.isin(tokens, stops)
            if n % check_every == 0 and bool(done.all()):
                break
        if n < max_new_tokens:
            logits = dec.step(tokens)
    return out[:, :n]


class StaticBackend(HFBackend):
    """HFBackend whose batches decode through :func:`static_generate` (same prompts, same outputs
    under greedy decoding up to bf16 rounding)."""

    @torch.inference_mode()
    def generate(self, rendered: list[str], decoding: Decoding) -> list[list[str]]:
        enc = self.tokenizer(rendered, return_tensors="pt", padding=True, add_special_tokens=False)
        ids, mask = enc["input_ids"], enc["attention_mask"]
        if decoding.n > 1:
            ids, mask = ids.repeat_interleave(decoding.n, 0), mask.repeat_interleave(decoding.n, 0)
        stops = end_token_ids(self.model, self.tokenizer)
        new = static_generate(self.model, ids, mask, decoding.max_new_tokens, decoding, stops).cpu()
        texts = []
        for row in new.tolist():
            cut = next((i for i, t in enumerate(row) if t in stops), len(row))
            texts.append(self.tokenizer.decode(row[:cut], skip_special_tokens=True).strip())
        n = decoding.n
        return [texts[i * n:(i + 1) * n] for i in range(len(rendered))]
