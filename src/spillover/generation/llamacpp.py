"""Generation with llama.cpp on the embedded model's own GGUF weights (CPU).

The embedded models ship as quantised GGUF files (Qwen2.5-Coder-0.5B as Q4_K_M, SmolLM2 as Q4_1);
the torch path dequantises them, so llama.cpp decodes the same weights and differs only in its
arithmetic (activations rounded to 8-bit blocks for the quantised dot products, its own kernels).
Prompts are rendered and tokenized by the HF tokenizer and passed as token ids, so both paths see
identical prompts. Each prompt is one llama.cpp sequence with its own KV stream; a batch
computes its prompts' common leading tokens once and copies them to every stream, prefills the
rest packed into calls of up to 512 tokens, then decodes all unfinished
sequences together, one token each per ``llama_decode``. A peft LoRA adapter is written as a llama.cpp LoRA GGUF
(``lora_gguf``) and applied unmerged. ``requantized_gguf`` writes the file in another llama.cpp
weight type (Q8_0: 1.5x faster than the shipped blocks on an AVX2-only CPU, bench/README.md).
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import os
import tempfile
from pathlib import Path

import numpy as np

from ..io import atomic_path
from .base import Decoding, Messages, render_chat
from .hf import end_token_ids
from .lora_gguf import write_lora_gguf

_KV_F32 = 0  # ggml_type GGML_TYPE_F32: the KV cache in fp32, like the torch path
MAX_SEQUENCES = 256  # llama.cpp's LLAMA_MAX_SEQ: sequences (KV streams) of one context
CHUNK = 512  # tokens per llama_decode: prefill chunks, and decode steps (one token per sequence)


def _llama():
    try:
        import llama_cpp
    except ImportError:
        raise ImportError("the llamacpp backend needs llama-cpp-python: pip install 'spillover[llamacpp]'") from None
    return llama_cpp


@functools.cache
def _init():
    """Initialise llama.cpp once and silence its log (the callback must stay referenced)."""
    ll = _llama()
    ll.llama_backend_init()
    quiet = ll.llama_log_callback(lambda level, text, data: None)
    ll.llama_log_set(quiet, ctypes.c_void_p())
    return ll, quiet


def requantized_gguf(src: Path, weights: str, out: Path) -> Path:
    """``src`` requantised by llama.cpp to ``weights`` (e.g. ``q8_0``) at ``out``, written once (atomically)."""
    ll, _ = _init()
    ftype = getattr(ll, f"LLAMA_FTYPE_MOSTLY_{weights.upper()}", None)
    if ftype is None:
        raise ValueError(f"llama.cpp has no weight type {weights!r}")
    if out.is_file():
        return out
    params = ll.llama_model_quantize_default_params()
    params.ftype, params.allow_requantize = ftype, True
    params.nthread = os.cpu_count() or 1
    with atomic_path(out) as tmp:
        if ll.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(params)) != 0:
            raise RuntimeError(f"llama.cpp could not requantise {src} to {weights}")
    return out


class LlamaModel:
    """A llama.cpp model loaded from a GGUF file (CPU, memory-mapped), freed with the object."""

    def __init__(self, path: str | Path):
        ll, _ = _init()
        self.ll, self.path = ll, Path(path)
        params = ll.llama_model_default_params()
        params.n_gpu_layers = 0
        self.ptr = ll.llama_model_load_from_file(str(path).encode(), params)
        if not self.ptr:
            raise RuntimeError(f"llama.cpp could not load {path}")
        self.n_vocab = ll.llama_vocab_n_tokens(ll.llama_model_get_vocab(self.ptr))

    def meta(self, key: str) -> str:
        buf = ctypes.create_string_buffer(256)
        if self.ll.llama_model_meta_val_str(self.ptr, key.encode(), buf, len(buf)) < 0:
            raise KeyError(f"{self.path} has no metadata {key!r}")
        return buf.value.decode()

    def weights(self) -> str:
        """The weight format, e.g. ``q4_k_m`` (from ``general.file_type``)."""
        import gguf

        return gguf.LlamaFileType(int(self.meta("general.file_type"))).name.removeprefix("MOSTLY_").lower()

    def load_lora(self, adapter_dir: str | Path):
        """Convert a peft adapter directory and load it; returns the llama.cpp adapter pointer."""
        arch = self.meta("general.architecture")
        shape = {k: int(self.meta(f"{arch}.{k}")) for k in ("block_count", "attention.head_count",
                                                               "attention.head_count_kv")}
        with tempfile.TemporaryDirectory() as tmp:
            path = write_lora_gguf(adapter_dir, Path(tmp) / "lora.gguf", arch, shape["block_count"],
                                   shape["attention.head_count"], shape["attention.head_count_kv"])
            ptr = self.ll.llama_adapter_lora_init(self.ptr, str(path).encode())
        if not ptr:
            raise RuntimeError(f"llama.cpp could not load the adapter {adapter_dir} on {self.path}")
        return ptr

    def free_lora(self, adapter) -> None:
        """Free an adapter of this model; a no-op once the model is freed (llama.cpp freed it then)."""
        if self.ptr:
            self.ll.llama_adapter_lora_free(adapter)

    def __del__(self):
        if getattr(self, "ptr", None):
            self.ll.llama_model_free(self.ptr)
            self.ptr = None


@functools.lru_cache(maxsize=1)
def load_llama_model(path: str) -> LlamaModel:
    """The loaded GGUF at ``path``; the last one stays loaded, so adapter swaps reuse it."""
    return LlamaModel(path)


# Free the cached model while llama_cpp's bindings still exist (not in interpreter teardown).
atexit.register(load_llama_model.cache_clear)


def sample(logits: np.ndarray, decoding: Decoding, rng: np.random.Generator) -> np.ndarray:
    """Next tokens (B,) from logits (B, V): argmax, or temperature + top-p sampling."""
    if decoding.greedy:
        return logits.argmax(-1)
    z = logits.astype(np.float64) / decoding.temperature
    probs = np.exp(z - z.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    if decoding.top_p < 1.0:
        order = np.argsort(-probs, -1)
        sorted_p = np.take_along_axis(probs, order, -1)
        drop = np.cumsum(sorted_p, -1) - sorted_p >= decoding.top_p  # keeps the first token always
        np.put_along_axis(probs, order, np.where(drop, 0.0, sorted_p), -1)
        probs /= probs.sum(-1, keepdims=True)
    return np.array([rng.choice(len(p), p=p) for p in probs])


class LlamaCppBackend:
    """Generate with llama.cpp from the GGUF at ``gguf`` (with the peft ``adapter`` applied).

    ``model`` (the torch weights the study scores) and ``tokenizer`` are the hf backend's; only
    generation goes through llama.cpp, with ``threads`` threads (default: torch's count).
    ``weights``: the identity of model and adapter (``models.model_identity``); the backend's
    identity appends ``|llamacpp|<GGUF weight type>``.
    """

    def __init__(self, model, tokenizer, weights: str, gguf: str | Path, adapter: str | None = None,
                 batch_size: int = 8, threads: int | None = None):
        import torch

        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        self.threads = threads or torch.get_num_threads()
        self._ctx, self._shape, self.lora = None, (0, 0), None
        self.lm = load_llama_model(str(gguf))
        self.identity = f"{weights}|llamacpp|{self.lm.weights()}"
        self.lora = self.lm.load_lora(adapter) if adapter else None

    def render(self, messages: Messages) -> str:
        return render_chat(self.tokenizer, messages)

    def _context(self, n_seq: int, seq_len: int):
        """A context with ``n_seq`` KV streams of ``seq_len`` cells or more, emptied."""
        ll = self.lm.ll
        if self._ctx is None or n_seq > self._shape[0] or seq_len > self._shape[1]:
            self._free_ctx()
            params = ll.llama_context_default_params()
            n_seq, seq_len = max(n_seq, self._shape[0]), -(-max(seq_len, self._shape[1]) // 256) * 256
            params.n_seq_max, params.n_ctx, params.kv_unified = n_seq, n_seq * seq_len, False
            params.n_batch = params.n_ubatch = CHUNK
            params.n_threads = params.n_threads_batch = self.threads
            params.type_k = params.type_v = _KV_F32
            params.no_perf = True
            self._ctx = ll.llama_init_from_model(self.lm.ptr, params)
            if not self._ctx:
                raise RuntimeError(f"llama.cpp could not make a context of {n_seq} x {seq_len} tokens")
            self._shape = (n_seq, seq_len)
            if self.lora is not None:
                ll.llama_set_adapters_lora(self._ctx, (ll.llama_adapter_lora_p_ctypes * 1)(self.lora), 1,
                                           (ctypes.c_float * 1)(1.0))
        ll.llama_memory_clear(ll.llama_get_memory(self._ctx), True)
        return self._ctx

    def _decode(self, ctx, batch, entries: list[tuple[int, int, int, bool]]) -> np.ndarray | None:
        """Run (token, position, sequence, wants logits) entries; logits (n_flagged, V), None if none is flagged."""
        ll = self.lm.ll
        for i, (tok, pos, seq, out) in enumerate(entries):
            batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = tok, pos, 1, out
            batch.seq_id[i][0] = seq
        batch.n_tokens = len(entries)
        if ll.llama_decode(ctx, batch) != 0:
            raise RuntimeError("llama_decode failed (KV cache full?)")
        n_out = sum(e[3] for e in entries)
        return np.ctypeslib.as_array(ll.llama_get_logits(ctx), shape=(n_out, self.lm.n_vocab)).copy() if n_out else None

    def _prefill(self, ctx, batch, prompts: list[list[int]]) -> np.ndarray:
        """Feed each prompt into its own sequence; logits (S, V) at each prompt's last token.

        The prompts' common leading tokens (the chat template's system turn) are computed once, in
        sequence 0, and its KV stream is copied to the others; the rest is packed CHUNK tokens per
        ``llama_decode`` (several short prompts share a call, so the matmuls see more rows)."""
        shared = min(len(os.path.commonprefix(prompts)), min(map(len, prompts)) - 1) if len(prompts) > 1 else 0
        if shared:
            head = [(t, j, 0, False) for j, t in enumerate(prompts[0][:shared])]
            for i in range(0, shared, CHUNK):
                self._decode(ctx, batch, head[i:i + CHUNK])
            memory = self.lm.ll.llama_get_memory(ctx)
            for seq in range(1, len(prompts)):  # whole-stream copies, applied by the next llama_decode
                self.lm.ll.llama_memory_seq_cp(memory, 0, seq, -1, -1)
        entries = [(t, j, seq, j == len(ids) - 1) for seq, ids in enumerate(prompts)
                   for j, t in enumerate(ids) if j >= shared]
        logits = [self._decode(ctx, batch, entries[i:i + CHUNK]) for i in range(0, len(entries), CHUNK)]
        return np.concatenate([x for x in logits if x is not None])

    def prompt_logits(self, token_ids: list[int]) -> np.ndarray:
        """Logits (T, V) at every position of one prompt (T <= CHUNK), for checks against the torch path."""
        ctx = self._context(1, len(token_ids))
        batch = self.lm.ll.llama_batch_init(len(token_ids), 0, 1)
        try:
            return self._decode(ctx, batch, [(t, j, 0, True) for j, t in enumerate(token_ids)])
        finally:
            self.lm.ll.llama_batch_free(batch)

    def generate(self, rendered: list[str], decoding: Decoding) -> list[list[str]]:
        """``decoding.n`` responses per rendered prompt; each copy is its own sequence."""
        if decoding.n > MAX_SEQUENCES:
            raise ValueError(f"the llamacpp backend samples at most {MAX_SEQUENCES} responses per prompt")
        per_call = MAX_SEQUENCES // decoding.n
        if len(rendered) > per_call:
            return [r for i in range(0, len(rendered), per_call)
                    for r in self.generate(rendered[i:i + per_call], decoding)]
        ll = self.lm.ll
        prompts = [p for p in self.tokenizer(rendered, add_special_tokens=False)["input_ids"]
                   for _ in range(decoding.n)]
        new = decoding.max_new_tokens
        ctx = self._context(len(prompts), max(map(len, prompts)) + new)
        stops, rng = set(end_token_ids(self.model, self.tokenizer)), np.random.default_rng(decoding.seed)
        batch = ll.llama_batch_init(CHUNK, 0, 1)
        try:
            tokens = sample(self._prefill(ctx, batch, prompts), decoding, rng)
            outs: list[list[int]] = [[] for _ in prompts]
            active = list(range(len(prompts)))
            for step in range(new):
                for seq, tok in zip(active, tokens.tolist()):
                    outs[seq].append(tok)
                active = [s for s in active if outs[s][-1] not in stops]
                if not active or step == new - 1:
                    break
                logits = self._decode(ctx, batch, [(outs[s][-1], len(prompts[s]) + step, s, True) for s in active])
                tokens = sample(logits, decoding, rng)
        finally:
            ll.llama_batch_free(batch)
        texts = [self.tokenizer.decode([t for t in o if t not in stops], skip_special_tokens=True).strip()
                 for o in outs]
        n = decoding.n
        return [texts[i * n:(i + 1) * n] for i in range(len(rendered))]

    def _free_ctx(self):
        if self._ctx is not None and self.lm.ptr:
            self.lm.ll.llama_free(self._ctx)
        self._ctx = None

    def __del__(self):
        # the garbage collector may finalise the model first (both unreachable in one cycle)
        if getattr(self, "lm", None) is not None:
            self._free_ctx()
            if self.lora is not None:
                self.lm.free_lora(self.lora)
