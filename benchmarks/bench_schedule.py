"""Schedule overhead, as ratios against anchors measured in the same process.

1. Time per hyper-parameter update: our builder's lr schedule vs fastai's `combined_cos` (goal <= 0.5), for a float
   lr and for per-group numpy lrs (what `fit_one_cycle` passes), the schedule call alone and the whole update
   (`ParamScheduler._update_val`: schedule call + `Optimizer.set_hyper`).
2. Epoch time of `fit_cos_anneal` vs plain `fit` on MNIST-1D with the paper's CNN (goal <= 1.02).

Run: python benchmarks/bench_schedule.py [--epochs 6] [--reps 5]
"""
import argparse, os, platform, statistics, time, timeit
import numpy as np, torch
from fastai.basics import *
from fastai.callback.schedule import combined_cos
from fastai_anneal.all import *

def per_call(f, positions, number):
    "Median over 7 repeats of the mean time of one `f(pos)` call, positions cycling over a whole fit"
    def run():
        for p in positions: f(p)
    return statistics.median(timeit.repeat(run, number=number, repeat=7)) / (number*len(positions))

def bench_update(n_iter=400):
    positions = [i/n_iter for i in range(n_iter)]
    rows = []
    for kind,lr in (('float', 1e-3), ('3-group array', np.array([1e-5, 1e-4, 1e-3]))):
        ours = cos_anneal_scheds(lr, 1e5, pct_warmup=0.25, div_warmup=25., warmup='cos')['lr']  # == 1cycle's lr schedule
        fa = combined_cos(0.25, lr/25, lr, lr/1e5)
        t_ours,t_fa = per_call(ours, positions, 20),per_call(fa, positions, 20)
        rows.append((f'schedule call, {kind}', t_ours, t_fa))
        # the whole update ParamScheduler does before each batch: schedule + Optimizer.set_hyper
        ps = [torch.nn.Parameter(torch.zeros(2)) for _ in range(3 if kind != 'float' else 1)]
        opt = SGD([[p] for p in ps], lr=1e-3)
        upd = lambda f: (lambda p: opt.set_hyper('lr', f(p)))
        rows.append((f'schedule + set_hyper, {kind}', per_call(upd(ours), positions, 10), per_call(upd(fa), positions, 10)))
    return rows

def bench_epoch(epochs, reps):
    from fastai_anneal.data import mnist1d_dls, mnist1d_cnn
    dls = mnist1d_dls(bs=100)
    def run(method):
        set_seed(0)
        learn = Learner(dls, mnist1d_cnn(), loss_func=CrossEntropyLossFlat(), opt_func=Adam, lr=1e-2)
        with learn.no_bar(), learn.no_logging():
            start = time.perf_counter()
            learn.fit_cos_anneal(epochs) if method == 'cos' else learn.fit(epochs)
            return (time.perf_counter() - start) / epochs
    run('cos'); run('fit')  # warm up both paths
    ratios,t_cos,t_fit = [],[],[]
    for i in range(reps):  # interleaved, order alternating, so drift on a shared machine hits both sides
        if i % 2 == 0: a = run('cos'); b = run('fit')
        else: b = run('fit'); a = run('cos')
        t_cos.append(a); t_fit.append(b); ratios.append(a/b)
    return statistics.median(t_cos),statistics.median(t_fit),statistics.median(ratios),min(ratios),max(ratios),min(t_cos)/min(t_fit)

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--epochs', type=int, default=6)
    ap.add_argument('--reps', type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), platform.machine())
    print(f"machine: {cpu}, {os.cpu_count()} cores, torch {torch.__version__}, torch threads 1")
    print(f"{'hyper-parameter update':38s} {'ours':>10s} {'fastai':>10s} {'ratio':>7s}  (goal <= 0.5)")
    for name,a,b in bench_update():
        print(f"{name:38s} {a*1e6:8.2f}us {b*1e6:8.2f}us {a/b:7.3f}")
    cos,fit,ratio,lo,hi,rmin = bench_epoch(args.epochs, args.reps)
    print(f"epoch time, MNIST-1D CNN bs 100: fit_cos_anneal {cos*1e3:.1f} ms, plain fit {fit*1e3:.1f} ms (medians); "
          f"paired ratio {ratio:.3f} (median of {args.reps}, range {lo:.3f}-{hi:.3f}), ratio of minima {rmin:.3f}; goal <= 1.02")
