"""Peak memory of loading a large-preset checkpoint in the official Lightning layout.

Writes (once, to --dir) a checkpoint with random v1.5-shaped encoder/decoder weights plus a
teacher-sized block of extra tensors (304 M float32 values, like the DINOv2 teacher) and optimizer
state, then loads it in a fresh process and prints the peak RSS against the size of the
encoder + decoder weights (target: under 1.3x), for the load itself and after one encode.

    python bench/load.py [--dir /tmp/clay-bench]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

TEACHER_PARAMS = 304_370_688
TEACHER_BLOCK = 1024 * 1024  # write the teacher as blocks of this many values


def write_checkpoint(path: Path) -> int:
    """Create the benchmark checkpoint; returns bytes of encoder + decoder weights."""
    import torch

    from clay_explore.model import PRESETS, ClayModel

    torch.manual_seed(0)
    model = ClayModel(PRESETS["large"], preset="large")
    sd = {f"model.{k}": v for k, v in model.state_dict().items()}
    weight_bytes = sum(v.numel() * v.element_size() for v in sd.values())
    n_blocks = TEACHER_PARAMS // TEACHER_BLOCK
    for i in range(n_blocks):
        sd[f"model.teacher.blocks.{i}.weight"] = torch.empty(TEACHER_BLOCK).normal_()
    sd["model.proj.weight"] = torch.randn(1024, 1024)
    ckpt = {
        "epoch": 1,
        "global_step": 10,
        "pytorch-lightning_version": "2.6.6",
        "state_dict": sd,
        "hyper_parameters": {"model_size": "large", "mask_ratio": 0.75, "shuffle": True, "patch_size": 8},
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 5e-6}]}],
    }
    torch.save(ckpt, path)
    return weight_bytes


CHILD = r"""
import json, resource, sys, time, torch
from clay_explore.model import ClayModel
torch.set_num_threads(2)
def rss():
    # VmHWM: peak resident set of this process image (ru_maxrss can carry over from the forking parent)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
base = rss()
t0 = time.perf_counter()
m = ClayModel.from_checkpoint(sys.argv[1])
load_s = time.perf_counter() - t0
after_load = rss()
with torch.inference_mode():
    m.encode(torch.randn(1, 10, 256, 256), torch.zeros(1, 4), torch.zeros(1, 4), torch.tensor(10.0),
             torch.linspace(0.49, 2.19, 10))
print(json.dumps({"base": base, "after_load": after_load, "after_encode": rss(), "load_s": load_s}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="/tmp/clay-bench")
    args = parser.parse_args()
    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "large-with-teacher.ckpt"
    meta = out / "large-with-teacher.json"
    if not path.exists() or not meta.exists():
        t0 = time.perf_counter()
        weight_bytes = write_checkpoint(path)
        meta.write_text(json.dumps({"weight_bytes": weight_bytes}))
        print(f"wrote {path} ({path.stat().st_size / 2**30:.2f} GiB) in {time.perf_counter() - t0:.0f} s")
    weight_bytes = json.loads(meta.read_text())["weight_bytes"]
    res = json.loads(
        subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, check=True).stdout
    )
    gib = 2**30
    print(f"checkpoint file         {path.stat().st_size / gib:6.2f} GiB (encoder+decoder+teacher+proj)")
    print(f"encoder+decoder weights {weight_bytes / gib:6.2f} GiB")
    print(f"peak RSS before load    {res['base'] / gib:6.2f} GiB (python + torch)")
    print(
        f"peak RSS after load     {res['after_load'] / gib:6.2f} GiB = {res['after_load'] / weight_bytes:.2f}x weights"
        f"  (load {res['load_s']:.1f} s)"
    )
    print(
        f"peak RSS after 1 encode {res['after_encode'] / gib:6.2f} GiB = "
        f"{res['after_encode'] / weight_bytes:.2f}x weights"
    )


if __name__ == "__main__":
    main()
