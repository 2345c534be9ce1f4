"""Full-rank training sharded with FSDP2 over two CPU processes (gloo), for tests/test_training_fsdp.py.

    ACCELERATE_USE_CPU=1 torchrun --nproc_per_node 2 tests/fsdp_train.py MODEL_DIR OUT_DIR[:STOP] ...

Trains ``CFG`` on ``FORGET`` into each OUT_DIR in turn, resuming from its last checkpoint; with
``:STOP`` the run ends after step STOP, as a killed run would.
"""

from __future__ import annotations

import sys
from pathlib import Path

from spillover.models import load_model
from spillover.training import Example, TrainConfig, train

FORGET = [Example(f"f{i}", f"Tell me secret number {i}", "I'm sorry, but I can't help with that request.")
          for i in range(8)]
#: Two checkpoints; a batch of 2 per process, so one step sees 4 examples.
CFG = TrainConfig(full=True, lr=1e-3, batch_size=2, max_steps=4, save_every=2)
#: The ``fsdp_config`` of configs/accelerate/fsdp-2gpu.yaml that the run uses (keys without ``fsdp_``).
FSDP = {"version": 2, "auto_wrap_policy": "TRANSFORMER_BASED_WRAP", "reshard_after_forward": False,
        "state_dict_type": "SHARDED_STATE_DICT"}


class Stop(Exception):
    """Ends a run after a given step."""


def use_fsdp2() -> None:
    """Shard every model that ``Accelerator.prepare`` sees with FSDP2 (``FSDP``). accelerate turns
    its FSDP plugin on for accelerator devices only and leaves a CPU process group at MULTI_CPU
    (``accelerate launch --cpu`` drops the FSDP config), although ``fully_shard`` runs on gloo;
    its shared state is therefore set to FSDP here."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    settings = dict(FSDP)
    plugin = FullyShardedDataParallelPlugin(fsdp_version=settings.pop("version"), **settings)
    Accelerator(fsdp_plugin=plugin)
    for state in (PartialState(), AcceleratorState()):  # each shares its attributes with every instance
        state.distributed_type = DistributedType.FSDP
    AcceleratorState().fsdp_plugin = plugin


def run(model_dir: str, out: Path, stop: int | None) -> None:
    def on_step(step: int, _row: dict) -> None:
        if step == stop:
            raise Stop

    try:
        train(load_model(model_dir, device="cpu", dtype="fp32"), FORGET, None, CFG, out, on_step=on_step)
    except Stop:
        pass


if __name__ == "__main__":
    use_fsdp2()
    for spec in sys.argv[2:]:
        out, _, stop = spec.partition(":")
        run(sys.argv[1], Path(out), int(stop) if stop else None)
