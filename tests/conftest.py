import os

# Tiny models run many times slower with several torch threads on a shared machine: one thread each.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
