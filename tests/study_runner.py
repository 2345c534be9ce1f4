"""Run the tiny test study in its own process (so a test can kill it with SIGKILL, or run it as one
of several workers: a fifth argument ``i/n``)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from spillover.study import Study  # noqa: E402
from study_stubs import install_marker_judge  # noqa: E402
from test_study import tiny_config  # noqa: E402

if __name__ == "__main__":
    model_dir, out_dir, data_dir, labeler_dir = sys.argv[1:5]
    worker = tuple(int(x) for x in sys.argv[5].split("/")) if len(sys.argv) > 5 else None  # "i/n"
    install_marker_judge()
    Study(tiny_config(Path(model_dir), Path(out_dir), Path(labeler_dir)), data_dir).run(worker=worker)
