"""Training throughput of SFT on the embedded model against the machine's matmul throughput.

Measures:

1. fp32 matmul throughput: ``torch.matmul`` of two ``N×N`` matrices (default 1024), in GFLOP/s
   (``2·N³`` FLOPs per product) — the ceiling a dense training step can approach here;
2. training tokens/s on SmolLM2-135M-Instruct (the embedded model) at batch ``4 × 512`` tokens,
   full fine-tune and LoRA (r=16, attention + MLP projections), through
   - ``loop``: a plain forward / backward / AdamW step (the floor of any trainer), and
   - ``trainer``: TRL's ``SFTTrainer`` configured as ``astra train sft`` configures it
     (fp32, no gradient checkpointing, assistant-only loss off only because the synthetic
     batches have no chat structure — the mask does not change the compute);
3. model FLOPs utilization ≈ ``6 · params · tokens/s ÷ matmul FLOP/s`` (for LoRA the frozen
   weights need no weight gradients, so ~4·params is the real work: the 6·params figure is
   comparable across rows, not an absolute).

    .venv/bin/python benchmarks/train_throughput.py [--steps 2] [--modes full,lora] [--via loop,trainer]

The first step of each configuration is a warm-up and not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time


def matmul_gflops(n: int, seconds: float, device: str) -> float:
    import torch

    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    for _ in range(3):
        torch.matmul(a, b)
    if device == "cuda":
        torch.cuda.synchronize()
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        torch.matmul(a, b)
        reps += 1
    if device == "cuda":
        torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def load_model(path: str, lora: bool, device: str):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(
            r=16, lora_alpha=32, lora_dropout=0.05, task_type="CAUSAL_LM",
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    return model, n_params


def bench_loop(path: str, lora: bool, batch: int, seq: int, steps: int, device: str) -> list[float]:
    import torch

    model, _ = load_model(path, lora, device)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    g = torch.Generator().manual_seed(0)
    times = []
    for i in range(steps + 1):
        ids = torch.randint(0, model.config.vocab_size, (batch, seq), generator=g).to(device)
        t0 = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        if i:  # the first step warms up
            times.append(time.perf_counter() - t0)
    del model, opt
    return times


def bench_trainer(path: str, lora: bool, batch: int, seq: int, steps: int, device: str) -> list[float]:
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from astra.train.sft import SFTRunConfig, _lora_config

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    rows = [{"input_ids": torch.randint(0, len(tok), (seq,), generator=g).tolist()}
            for _ in range(batch * (steps + 1))]
    times: list[float] = []

    class Timer(TrainerCallback):
        t0 = 0.0

        def on_step_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - self.t0)

    with tempfile.TemporaryDirectory() as out:
        args = SFTConfig(output_dir=out, max_steps=steps + 1, per_device_train_batch_size=batch, learning_rate=1e-5,
                         max_length=seq, bf16=False, fp16=False, use_cpu=device == "cpu", dataloader_num_workers=0,
                         activation_checkpointing=False, save_strategy="no", report_to="none", logging_steps=1,
                         disable_tqdm=True)
        peft = _lora_config(model, SFTRunConfig(data=".", output_dir=out, lora=True)) if lora else None
        trainer = SFTTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(rows),
                             processing_class=tok, peft_config=peft, callbacks=[Timer()])
        trainer.remove_callback(PrinterCallback)  # its log dicts would break the printed table
        trainer.train()
    return times[1:]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="embedded", help="'embedded' or a model directory")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--steps", type=int, default=2, help="measured steps per configuration (after 1 warm-up)")
    ap.add_argument("--modes", default="full,lora")
    ap.add_argument("--via", default="loop,trainer")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    ap.add_argument("--matmul-size", type=int, default=1024)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--json", default=None, help="also write the results here")
    a = ap.parse_args()

    import torch

    from astra.train.sft import resolve_model

    if a.threads:
        torch.set_num_threads(a.threads)
    device = "cuda" if a.device == "cuda" or (a.device == "auto" and torch.cuda.is_available()) else "cpu"
    path = resolve_model(a.model)
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    where = (torch.cuda.get_device_name() if device == "cuda"
             else f"{platform.machine()}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}")
    print(f"# SFT training throughput — {where}, torch {torch.__version__}, load average {load:.1f}")
    gflops = matmul_gflops(a.matmul_size, 3.0, device)
    print(f"fp32 matmul {a.matmul_size}x{a.matmul_size}: {gflops:.1f} GFLOP/s\n")
    _, n_params = load_model(path, False, "cpu")
    tokens = a.batch * a.seq
    rows = []
    print("| via | mode | batch × seq | s/step (median) | tokens/s | achieved GFLOP/s (6·N·tok/s) | MFU vs matmul |")
    print("|---|---|---|---|---|---|---|")
    for via in a.via.split(","):
        for mode in a.modes.split(","):
            fn = bench_loop if via == "loop" else bench_trainer
            times = fn(path, mode == "lora", a.batch, a.seq, a.steps, device)
            step = statistics.median(times)
            tps = tokens / step
            achieved = 6 * n_params * tps / 1e9
            row = {"via": via, "mode": mode, "batch": a.batch, "seq": a.seq, "seconds_per_step": round(step, 2),
                   "step_times": [round(t, 2) for t in times], "tokens_per_s": round(tps, 1),
                   "achieved_gflops": round(achieved, 1), "mfu": round(achieved / gflops, 3)}
            rows.append(row)
            print(f"| {via} | {mode} | {a.batch} × {a.seq} | {step:.2f} | {tps:.0f} | {achieved:.1f} | "
                  f"{achieved / gflops:.0%} |", flush=True)
    print(f"\nparams N = {n_params / 1e6:.1f}M; matmul {gflops:.1f} GFLOP/s; {a.steps} measured steps each")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"device": where, "load_average": load, "matmul_gflops": round(gflops, 1),
                       "params": n_params, "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
