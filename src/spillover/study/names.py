"""Names of per-run stage directories."""


def run_name(target: str, variant: str, seed: int) -> str:
    """``<target>/<variant>/seed<seed>``: the stage path of one trained run."""
    return f"{target}/{variant}/seed{seed}"
