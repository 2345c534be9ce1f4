"""Run the tiny test study in its own process (so a test can kill it with SIGKILL)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import spillover.evaluation as ev  # noqa: E402
import spillover.study.preflight as pf  # noqa: E402
from spillover.study import Study  # noqa: E402
from test_study import HashJudge, tiny_config  # noqa: E402

if __name__ == "__main__":
    model_dir, out_dir, data_dir = sys.argv[1:4]
    real = ev.build_judge
    ev.build_judge = lambda spec, **kw: HashJudge() if spec == "hash" else real(spec, **kw)
    check = pf.validate_judge_spec
    pf.validate_judge_spec = lambda spec: None if spec == "hash" else check(spec)
    Study(tiny_config(Path(model_dir), Path(out_dir)), data_dir).run()
