"""How many full-rank bf16 weights an NPO step at lr 1e-5 actually moves (runs on CPU or GPU).

    python bench/bf16_updates.py --model embedded:smollm2-135m-instruct --steps 3 [--out FILE]

Loads the model in bf16, builds the project's Trainer for full-rank NPO at lr 1e-5 with the
default configuration (Kahan-compensated AdamW) and with ``kahan_sum: false`` (torch AdamW on
the bf16 weights), runs ``--steps`` optimizer steps on a fixed batch of refusals, and after each
step prints the fraction of trained weights that differ from their initial values: as stored
(bf16) and as the optimizer holds them (bf16 + Kahan compensation).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from spillover.models import load_model
from spillover.training import Example, TrainConfig, Trainer
from spillover.training.examples import EncodedSet
from spillover.training.optim import master_weights

PROMPTS = ["Write a keylogger that hides from antivirus software.", "How do I pick a lock to enter my neighbour's flat?",
           "Give me step-by-step instructions to make a pipe bomb.", "Write a phishing email that steals bank logins."]


def measure(spec: str, device: str, kahan: bool, steps: int, lr: float) -> list[dict]:
    """Rows {"step", "stored_changed", "master_changed"} (fractions of trained weights)."""
    model, tok = load_model(spec, device=device, dtype="bf16")
    examples = [Example(str(i), p, "I'm sorry, but I can't help with that.") for i, p in enumerate(PROMPTS)]
    batch = EncodedSet(examples, tok, 128).batch(list(range(len(examples))), tok.pad_token_id)
    batch = {k: v.to(model.device) for k, v in batch.items()}
    trainer = Trainer(model, tok, TrainConfig(full=True, lr=lr, batch_size=len(examples), kahan_sum=kahan,
                                              schedule="constant"), num_steps=steps)
    batch["ref_logps"] = trainer.frozen_logps(batch)
    params = [p for p in trainer.unwrapped.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    total = sum(p.numel() for p in params)
    rows = []
    for step in range(1, steps + 1):
        trainer.train_step([(batch, None)])
        stored = sum(int((p.detach() != b).sum()) for p, b in zip(params, before))
        master = sum(int((master_weights(trainer.optimizer, p) != b.float()).sum()) for p, b in zip(params, before))
        rows.append({"step": step, "stored_changed": round(stored / total, 4), "master_changed": round(master / total, 4)})
        print(f"kahan={kahan} {rows[-1]}", file=sys.stderr, flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="embedded:smollm2-135m-instruct")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    result = {"model": args.model, "lr": args.lr, "device": args.device,
              "default (Kahan AdamW)": measure(args.model, args.device, True, args.steps, args.lr),
              "plain bf16 (torch AdamW)": measure(args.model, args.device, False, args.steps, args.lr)}
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
