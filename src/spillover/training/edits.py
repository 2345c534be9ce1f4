"""Training-free methods: one edit of the weights, saved as a full-weight checkpoint.

``apply_edit`` loads the model, measures the diagnostics of the untouched model (step 0), calls
the method's ``Edit.edit`` once, measures again (step 1) and writes ``checkpoint-1`` (the edited
model with its tokenizer, loadable as ``--model DIR`` by every backend), ``edit.json`` (what the
edit recorded, its formula and seconds), ``diagnostics.jsonl`` and an empty ``train_log.jsonl``
(no optimiser steps). A finished edit with the same configuration and model is reused.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..io import InputError, read_json, write_json
from .checkpoints import STATE_FILE, CheckpointInfo, list_checkpoints, save_checkpoint
from .config import TrainConfig
from .examples import Example
from .objectives import Edit

EDIT_FILE = "edit.json"


def apply_edit(edit: Edit, model_spec_or_model, main: list[Example], contrast: list[str] | None,
               cfg: TrainConfig, out_dir: Path, diagnostics=None, resume: bool = True) -> list[CheckpointInfo]:
    """Edit the model once from ``main`` and the first ``n_contrast`` of ``contrast``; return [checkpoint-1].

    ``model_spec_or_model`` as in ``trainer.train``; ``diagnostics`` (a ``Diagnostics``) run before
    and after the edit. With ``resume`` a complete checkpoint-1 of the same configuration and model
    is returned as it is; another configuration or model there is an error.
    """
    from accelerate import Accelerator

    from .diagnostics import DiagnosticsRunner
    from .trainer import _append_jsonl, _clear, _load

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not contrast:
        raise InputError(f"method {cfg.method} contrasts the main set with other prompts: none were given "
                         "(spillover unlearn --contrast FILE; a study gives its benign train prompts)")
    if not resume:
        _clear(out_dir)
        (out_dir / EDIT_FILE).unlink(missing_ok=True)
    # fp32: the stored weights in fp32 (not bf16-rounded ones upcast), so only the edit changes them
    model, tokenizer = _load(model_spec_or_model, "fp32" if cfg.full_dtype == "fp32" else None)
    model_name = str(getattr(model.config, "_name_or_path", ""))
    done = list_checkpoints(out_dir)
    if done:
        saved = read_json(done[-1].path / STATE_FILE)
        if not cfg.trained_like(saved.get("config")) or saved.get("model") != model_name:
            raise InputError(f"{done[-1].path}: was edited with another model or configuration; use a new "
                             f"out dir or resume=False")
        return done
    if cfg.full_dtype == "fp32":
        model = model.float()  # a given (model, tokenizer) pair
    model.eval()
    diag_path = out_dir / "diagnostics.jsonl"
    diag_path.write_text("", encoding="utf-8")
    (out_dir / "train_log.jsonl").write_text("", encoding="utf-8")
    runner = (DiagnosticsRunner(diagnostics, tokenizer, out_dir, lora=False, system_prompt=cfg.system_prompt)
              if diagnostics else None)
    if runner:
        runner.cache_aligned(model)
        _append_jsonl(diag_path, runner.run(model, 0))
    t0 = time.monotonic()
    record = edit.edit(model, tokenizer, main, contrast[:edit.args.n_contrast], cfg.batch_size, cfg.system_prompt)
    seconds = round(time.monotonic() - t0, 2)
    if runner:
        _append_jsonl(diag_path, runner.run(model, 1))
    write_json(out_dir / EDIT_FILE, {"method": cfg.method, "edit": edit.describe(), "main": len(main),
                                     "contrast": min(len(contrast), edit.args.n_contrast), **record,
                                     "seconds": seconds})
    save_checkpoint(out_dir, 1, Accelerator(), model, tokenizer, None, None,
                    {"elapsed": seconds, "total_steps": 1, "model": model_name, "config": cfg.model_dump()},
                    adapter=False)
    return list_checkpoints(out_dir)
