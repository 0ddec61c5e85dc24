"""What `AnnealOptimizer.step`'s check of the moments' shapes costs, in one process: the same `AdamAnneal` (fused path) with the
check on and with it replaced by a no-op, and torch's `AdamW(fused=True)` as the anchor, on many small params (where Python
time per param matters most) and on a few large ones. Interleaved rounds; medians.

    python benchmarks/bench_state_check.py
"""
import argparse, platform, statistics, time, warnings
import torch
from torch import nn
from fastai_anneal.optimizer import AdamAnneal, AnnealOptimizer

def _params(n:int, shape:tuple, seed:int=0) -> list:
    g = torch.Generator().manual_seed(seed)
    ps = [nn.Parameter(torch.randn(shape, generator=g)) for _ in range(n)]
    for p in ps: p.grad = torch.randn(shape, generator=g)
    return ps

def main(rounds:int=21, steps:int=50):
    torch.set_num_threads(1)
    warnings.simplefilter('ignore')
    check = AnnealOptimizer._state_fits
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, 1 thread, {rounds} rounds of {steps} steps")
    for n,shape in ((160, (64,)), (53, (128, 128))):
        ours,ref = AdamAnneal(_params(n, shape), lr=1e-3),torch.optim.AdamW(_params(n, shape), lr=1e-3, fused=True)
        for _ in range(10): ours.step(); ref.step()
        t = {'check': [], 'no check': [], 'torch AdamW(fused)': []}
        for _ in range(rounds):
            for k in t:
                AnnealOptimizer._state_fits = check if k == 'check' else (lambda self, ps, i: ps)
                o = ref if k.startswith('torch') else ours
                start = time.perf_counter()
                for _ in range(steps): o.step()
                t[k].append((time.perf_counter() - start) / steps * 1e6)
        AnnealOptimizer._state_fits = check
        med = {k: statistics.median(v) for k,v in t.items()}
        print(f"{n} params of {shape}: " + ', '.join(f"{k} {v:.0f} us" for k,v in med.items())
              + f"; check / no check {med['check']/med['no check']:.3f}, check / torch {med['check']/med['torch AdamW(fused)']:.3f}")

if __name__ == '__main__':
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument('--rounds', type=int, default=21); a.add_argument('--steps', type=int, default=50)
    main(**vars(a.parse_args()))
