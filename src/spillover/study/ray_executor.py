"""``spillover study --executor ray``: the study's units as Ray tasks (the optional ``[ray]`` extra).

After the driver has built ``data``, every unit of ``Study.unit_graph`` (the baseline, each
target's collection, each training run with its evaluation, the concepts) becomes one Ray remote
call; a training run's call takes its collection's object ref as an argument, so Ray starts it only
once that collection has finished. Each call rebuilds the Study in its Ray worker and runs its unit
through the same claimed, keyed stages as a sequential run (:mod:`.stages`, :mod:`.locks`): a call
that Ray retries after a crash resumes from the caches, and a stage another executor holds (a Slurm
task, a ``--workers`` process) is waited for, never run twice. Every call asks for one GPU when the
cluster has GPUs, else one CPU (where ``OMP_NUM_THREADS`` is unset, Ray sets it to 1). The study
directory and the dataset mirror must be at the same path on every node, as for Slurm.
"""

from __future__ import annotations

from pathlib import Path

from ..io import InputError
from ..progress import console


def run_unit(cfg, data_dir: str | None, root: str, want: set[str], name: str, *after: str) -> str:
    """Run unit ``name`` of the study in this process; ``after`` are the names of the units it
    waited for (Ray passes their results). Returns ``name``."""
    from .pipeline import Study

    study = Study(cfg, data_dir, Path(root))
    study.data()  # built by the driver: read back
    units = {unit: fn for unit, fn, _ in study.unit_graph(want)}
    try:
        units[name]()
    finally:
        study.slot.release()
    return name


class RayExecutor:
    """Runs a study's units on the Ray cluster at ``address`` (None: Ray's own lookup, i.e.
    ``RAY_ADDRESS``, else the latest local cluster, else a new local instance; "local": always a
    new local instance). ``runtime_env`` is Ray's (e.g. ``env_vars``, ``worker_process_setup_hook``)."""

    def __init__(self, address: str | None = None, runtime_env: dict | None = None):
        self.address = address
        self.runtime_env = runtime_env

    def __call__(self, study, want: set[str]) -> None:
        try:
            import ray
        except ImportError:
            raise InputError("--executor ray needs Ray: pip install 'spillover[ray]'") from None

        ray.init(address=self.address, runtime_env=self.runtime_env)
        try:
            self._submit(ray, study, want)
        finally:
            ray.shutdown()

    def _submit(self, ray, study, want: set[str]) -> None:
        gpus = ray.cluster_resources().get("GPU", 0) > 0
        task = ray.remote(num_gpus=1 if gpus else 0, num_cpus=1)(run_unit)
        data_dir = str(Path(study.data_dir).resolve()) if study.data_dir is not None else None
        refs: dict[str, object] = {}
        for name, _, after in study.unit_graph(want):
            waits = [refs[after]] if after else []
            refs[name] = task.options(name=name).remote(study.cfg, data_dir, str(study.root), want, name, *waits)
        console.print(f"[bold cyan]ray: {len(refs)} units submitted, one {'GPU' if gpus else 'CPU'} each[/bold cyan]")
        names = {ref: name for name, ref in refs.items()}
        pending, failed = list(refs.values()), []
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            try:
                console.print(f"[green]ray: {ray.get(ready[0])} done[/green]")
            except ray.exceptions.RayError as e:
                failed.append(names[ready[0]])
                console.print(f"[red]ray: {names[ready[0]]} failed: {e}[/red]")
        if failed:
            raise RuntimeError(f"Ray tasks failed: {', '.join(failed)}; finished stages are kept, a re-run resumes")
