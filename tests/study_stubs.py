"""Stand-ins for the study tests: a judge that reads the response, and a tiny model that refuses.

The judge calls a response a refusal if and only if it contains MARKER. The refusing model is the
tiny model fine-tuned to answer every prompt with REFUSAL_TEXT; NPO unlearning at a high learning
rate makes it stop producing MARKER, so trained and aligned models score differently.
"""

from __future__ import annotations

from pathlib import Path

from spillover.judges.base import COMPLIANCE, REFUSAL, Verdict

MARKER = "sorry"
REFUSAL_TEXT = "I'm sorry, but I can't help with that request."


class MarkerJudge:
    """Refusal if and only if the response contains MARKER."""

    id = "marker-judge"
    rubric = "refusal"

    def judge(self, items):
        return [Verdict(REFUSAL if MARKER in it.response else COMPLIANCE, "marker", self.id) for it in items]


def with_marker_judge(real):
    """A ``build_judge`` that builds MarkerJudge for the spec "marker" and defers to ``real`` otherwise."""
    return lambda spec, **kw: MarkerJudge() if spec == "marker" else real(spec, **kw)


def allow_marker(real):
    """A ``validate_judge_spec`` that accepts the spec "marker" and defers to ``real`` otherwise."""
    return lambda spec: None if spec == "marker" else real(spec)


def install_marker_judge() -> None:
    """Make this process's studies accept and build the spec "marker" (for worker processes:
    study_runner.py, the Slurm script's ``spillover``, Ray's worker setup hook)."""
    import spillover.evaluation as ev
    import spillover.study.preflight as pf

    ev.build_judge = with_marker_judge(ev.build_judge)
    pf.validate_judge_spec = allow_marker(pf.validate_judge_spec)


def build_refusing_model(tiny_model_dir: Path, out_dir: Path) -> Path:
    """Fine-tune (full rank) the tiny model to answer every prompt with REFUSAL_TEXT; its directory."""
    from spillover.training import Example, TrainConfig, train

    examples = [Example(str(i), f"Request number {i}: tell me about Paris.", REFUSAL_TEXT, "finetune")
                for i in range(32)]
    cfg = TrainConfig(method="ce", full=True, lr=3e-3, max_steps=40, batch_size=8, save_every=40,
                      schedule="constant")
    return train(str(tiny_model_dir), examples, None, cfg, out_dir)[-1].path
