import os

# Tiny models run 40-90x slower with 2 threads on a shared 2-core machine (shared/NOTES.md).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
