"""The GPU checks no CPU session can make, in one run (`benchmarks/gpu_checks.sh` runs it after the optimizer and `lr_find`
speed benchmarks):

1. **CUDA RNG restore.** `lr_find`, `lr_tune` and a rejected call leave the CUDA generators (and python's, numpy's, torch's)
   as they were, with a callback drawing from each on every batch; and a fit after `lr_find` equals the same fit without it
   (dropout draws from the CUDA generator). Asserted: the script fails if not.
2. **The cost of `lr='auto'` on a GPU.** `fit_cos_anneal(n, 'auto')` against `fit_cos_anneal(n, lr)` at the lr it chose, in
   the same process, alternated: the wall-time ratio (issue goal <= 1.3) and the extra training batches.

    python benchmarks/bench_gpu.py                    # on the GPU (cuda:0)
    python benchmarks/bench_gpu.py --device cpu       # a dry run of the same code on the CPU (the RNG part checks the CPU RNGs)
"""
import argparse, random, statistics, time, warnings
import numpy as np, torch
from torch import nn
from fastai.basics import *
from fastai_anneal.all import *
from fastai_anneal.data import mnist1d_dls, mnist1d_cnn

class DrawsRNGs(Callback):
    "Draws from python's, numpy's, torch's and (on a GPU) the CUDA generator every training batch, as augmentations do"
    def before_batch(self):
        if not self.training: return
        random.random(); np.random.rand(); torch.rand(1)
        if torch.cuda.is_available(): torch.rand(1, device='cuda')

def rng_states() -> tuple:
    cuda = [s.clone() for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else []
    return random.getstate(),np.random.get_state(),torch.get_rng_state().clone(),cuda

def same_rngs(a, b) -> bool:
    return (a[0] == b[0] and all(np.array_equal(x, y) for x,y in zip(a[1], b[1])) and torch.equal(a[2], b[2])
            and len(a[3]) == len(b[3]) and all(torch.equal(x, y) for x,y in zip(a[3], b[3])))

def dropout_net(): return nn.Sequential(nn.Flatten(), nn.Linear(40, 256), nn.ReLU(), nn.Dropout(0.3), nn.Linear(256, 10))

def learner(device, model=dropout_net, seed=0, cbs=None) -> Learner:
    set_seed(seed)
    return Learner(mnist1d_dls(device=device), model().to(device), loss_func=CrossEntropyLossFlat(), cbs=cbs)

def check_rngs(device) -> list:
    "Each check's name and whether it held"
    res = []
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        for name,call in (('lr_find', lambda l: l.lr_find(num_it=30, show_plot=False)),
                          ('lr_tune', lambda l: l.lr_tune(2, fit='fit_cos_anneal')),
                          ('rejected call', lambda l: l.fit_cos_anneal(2, lr_max=-1.))):
            learn = learner(device, cbs=DrawsRNGs())
            before = rng_states()
            with learn.no_bar(), learn.no_logging():
                try: call(learn)
                except ValueError: pass  # the rejected call
            res.append((f"{name} leaves every RNG as it was", same_rngs(before, rng_states())))
        # a fit after lr_find equals the same fit without it: dropout's masks come from the CUDA generator
        def fit_after(with_lr_find):
            learn = learner(device, cbs=DrawsRNGs())
            with learn.no_bar(), learn.no_logging():
                if with_lr_find: learn.lr_find(num_it=30, show_plot=False)
                learn.fit_cos_anneal(1, 1e-3)
            return [p.detach().cpu() for p in learn.model.parameters()]
        a,b = fit_after(True),fit_after(False)
        res.append(("a fit after lr_find equals the fit without (dropout on the device)", all(torch.equal(x, y) for x,y in zip(a, b))))
    return res

def auto_cost(device, epochs, rounds) -> dict:
    "Wall time of `fit_cos_anneal(epochs, 'auto')` / the same fit at the lr it chose, alternated `rounds` times; extra batches"
    sync = (lambda: torch.cuda.synchronize()) if str(device).startswith('cuda') else (lambda: None)
    ratios,costs,lrs = [],[],[]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        for r in range(rounds + 1):  # the first round warms the device up and is not counted
            # the fixed fit needs the tuned lr: an odd round tunes first (`lr_tune`, untimed), then times the fixed fit before the
            # 'auto' one, so that drift within a round (clocks, caches) does not always favour the same side
            lr = learner(device, model=mnist1d_cnn, seed=r).lr_tune(epochs).lr if r % 2 else None
            for kind in (('fixed', 'auto') if r % 2 else ('auto', 'fixed')):
                learn = learner(device, model=mnist1d_cnn, seed=r)
                with learn.no_bar(), learn.no_logging():
                    sync(); t = time.perf_counter(); learn.fit_cos_anneal(epochs, 'auto' if kind == 'auto' else lr); sync()
                    if kind == 'auto': t_auto,res = time.perf_counter() - t,learn.lr_tune_result
                    else: t_fix = time.perf_counter() - t
                if kind == 'auto' and lr is None: lr = res.lr
            assert lr == res.lr, "the 'auto' fit and the fixed one must run at the same lr"
            if r: ratios.append(t_auto/t_fix); costs.append(res.cost/res.n_steps); lrs.append(res.lr)
    return dict(ratio=statistics.median(ratios), ratios=ratios, extra=statistics.median(costs), lrs=lrs)

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--device', default='cuda', help="'cuda' (default) or 'cpu' for a dry run")
    p.add_argument('--epochs', type=int, default=20, help="the tuned fit's epochs (MNIST-1D CNN, 40 batches each)")
    p.add_argument('--rounds', type=int, default=3, help="alternated rounds of the cost check (median reported)")
    a = p.parse_args()
    if a.device.startswith('cuda') and not torch.cuda.is_available(): raise SystemExit("no CUDA device: run with --device cpu")
    dev = torch.device(a.device)
    torch.backends.cudnn.deterministic,torch.backends.cudnn.benchmark = True,False  # runs compared bit for bit
    print(f"device: {torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'cpu'}, torch {torch.__version__}")
    checks = check_rngs(dev)
    for name,ok in checks: print(f"  {'ok  ' if ok else 'FAIL'} {name}")
    c = auto_cost(dev, a.epochs, a.rounds)
    print(f"fit_cos_anneal({a.epochs}, 'auto') / fit_cos_anneal({a.epochs}, lr) wall time: median {c['ratio']:.3f} "
          f"(rounds: {', '.join(f'{x:.3f}' for x in c['ratios'])}; goal <= 1.3); extra training batches {c['extra']:.2f}x the fit's; "
          f"lrs {', '.join(f'{x:.3g}' for x in c['lrs'])}")
    if not all(ok for _,ok in checks): raise SystemExit("an RNG check failed")
