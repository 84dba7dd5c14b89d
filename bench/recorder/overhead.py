"""Overhead of python/gradlens_recorder.py on a realistic model: step time with and without the recorder.

    python bench/recorder/overhead.py [--every 10] [--steps 30] [--rounds 5]                  # one process
    torchrun --standalone --nproc_per_node 2 bench/recorder/overhead.py --mode ddp|fsdp2|fsdp     # distributed

The model is GPT-2 (transformers, built from a config with seeded random init; default 4 layers, 256 wide, 4 heads,
sequence 64, batch 8 per rank: --layers, --width, --seq, --batch), trained with AdamW. Each round times `--steps` steps without the recorder and
the same number with it (recording every `--every` steps, streaming to a file), which first alternating, after warm-up;
the overhead is (median with / median without) - 1 over rounds, and the best round's too, in wall time and in
this process's CPU time (with one thread per process the CPU time is far less disturbed by other jobs on a shared
machine; rank 0's). On a busy machine those differences are noisier than the overhead itself, so the time spent
inside the recorder (its hooks, after_backward and after_step, including its all_reduce) is also summed and
divided by the plain step time of the same round: `overhead_recorder_*_median`. Rank 0 prints one JSON line.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import types

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
from gradlens_recorder import GradLensRecorder  # noqa: E402


class TimedRecorder(GradLensRecorder):
    """The recorder with the time spent in its own code (hooks, after_backward, after_step) summed, wall and
    this process's CPU: its share of a step is far less disturbed by other jobs than the difference of two
    noisy step times. In a distributed job it includes the wait in its one all_reduce."""
    wall = 0.0
    cpu = 0.0

    def _timed(self, method, *args):
        t, c = time.perf_counter(), time.process_time()
        try:
            return method(*args)
        finally:
            TimedRecorder.wall += time.perf_counter() - t
            TimedRecorder.cpu += time.process_time() - c

    def _pre_hook(self, *args):
        return self._timed(super()._pre_hook, *args)

    def _post_hook(self, *args):
        return self._timed(super()._post_hook, *args)

    def after_backward(self, *args):
        return self._timed(super().after_backward, *args)

    def after_step(self, *args):
        return self._timed(super().after_step, *args)


def build(mode, args):
    # transformers imports torchvision, whose CUDA wheel's fake-op registrations fail with the CPU torch (NOTES.md).
    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(0)
    cfg = GPT2Config(n_layer=args.layers, n_embd=args.width, n_head=args.width // 64, n_positions=args.seq, vocab_size=4096)
    model = GPT2LMHeadModel(cfg)
    if mode == "ddp":
        return torch.nn.parallel.DistributedDataParallel(model), cfg
    if mode == "fsdp2":
        from torch.distributed.fsdp import fully_shard
        for block in model.transformer.h:
            fully_shard(block)
        fully_shard(model)
    if mode == "fsdp":  # FSDP v1: every block is one flat parameter, the rest (embeddings, final norm) the root's
        from torch.distributed.fsdp import FullyShardedDataParallel
        from torch.distributed.fsdp.wrap import ModuleWrapPolicy
        from transformers.models.gpt2.modeling_gpt2 import GPT2Block
        return FullyShardedDataParallel(model, auto_wrap_policy=ModuleWrapPolicy({GPT2Block}), device_id=torch.device("cpu")), cfg
    return model, cfg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", default="single", choices=["single", "ddp", "fsdp2", "fsdp"])
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--seq", type=int, default=64)
    args = ap.parse_args()
    distributed = "RANK" in os.environ
    if distributed:
        torch.distributed.init_process_group("gloo")
    rank = torch.distributed.get_rank() if distributed else 0
    model, cfg = build(args.mode, args)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(0, cfg.vocab_size, (args.batch, args.seq), generator=torch.Generator().manual_seed(rank))

    def step(rec):
        out = model(input_ids=ids, labels=ids)
        opt.zero_grad()
        out.loss.backward()
        if rec:
            rec.after_backward(out.loss)
        opt.step()
        if rec:
            rec.after_step()

    def timed(rec):
        if distributed:
            torch.distributed.barrier()
        TimedRecorder.wall = TimedRecorder.cpu = 0.0
        t, c = time.perf_counter(), time.process_time()
        for _ in range(args.steps):
            step(rec)
        c = time.process_time() - c
        if distributed:
            torch.distributed.barrier()
        return (time.perf_counter() - t) / args.steps, c / args.steps, TimedRecorder.wall / args.steps, TimedRecorder.cpu / args.steps

    folder = tempfile.mkdtemp(prefix="gl-overhead-")
    rec = GradLensRecorder(model, optimizer=opt, every=args.every, stream=os.path.join(folder, "run.gradlens.jsonl"))
    rec.close()  # hooks off; reattached per round below
    for _ in range(3):
        step(None)
    plain, recorded = [], []
    for r in range(args.rounds):
        # Which half runs first alternates: a machine getting busier or quieter biases neither.
        for with_recorder in ((False, True) if r % 2 == 0 else (True, False)):
            if not with_recorder:
                plain.append(timed(None))
                continue
            rec = TimedRecorder(model, optimizer=opt, every=args.every, stream=os.path.join(folder, f"run{r}.gradlens.jsonl"))
            recorded.append(timed(rec))
            rec.close()
    if rank == 0:
        params = sum(p.numel() for p in model.parameters()) * (torch.distributed.get_world_size() if args.mode == "fsdp" else 1)  # a DTensor's numel() is the whole parameter's; FSDP v1's flat parameters are this rank's shard
        print(json.dumps({
            "mode": args.mode, "ranks": torch.distributed.get_world_size() if distributed else 1, "every": args.every,
            "params": params, "modules": len(list(model.named_modules())),
            "wall_ms_plain": [round(x[0] * 1e3, 1) for x in plain], "wall_ms_recorded": [round(x[0] * 1e3, 1) for x in recorded],
            "cpu_ms_plain": [round(x[1] * 1e3, 1) for x in plain], "cpu_ms_recorded": [round(x[1] * 1e3, 1) for x in recorded],
            "overhead_wall_median": round(statistics.median(x[0] for x in recorded) / statistics.median(x[0] for x in plain) - 1, 4),
            "overhead_wall_best": round(min(x[0] for x in recorded) / min(x[0] for x in plain) - 1, 4),
            "overhead_cpu_median": round(statistics.median(x[1] for x in recorded) / statistics.median(x[1] for x in plain) - 1, 4),
            "overhead_cpu_best": round(min(x[1] for x in recorded) / min(x[1] for x in plain) - 1, 4),
            # The recorder's own time per step (every step, recorded or not) over a plain step's, per round.
            "recorder_wall_ms": [round(x[2] * 1e3, 2) for x in recorded], "recorder_cpu_ms": [round(x[3] * 1e3, 2) for x in recorded],
            "overhead_recorder_wall_median": round(statistics.median(x[2] / p[0] for x, p in zip(recorded, plain)), 4),
            "overhead_recorder_cpu_median": round(statistics.median(x[3] / p[1] for x, p in zip(recorded, plain)), 4),
        }))
    if distributed:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
