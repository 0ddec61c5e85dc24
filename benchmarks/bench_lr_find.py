"""`Learner.lr_find`: speed against fastai's and suggestion quality, measured in one process.

1. Wall time of our `lr_find` / fastai's `lr_find` (goal <= 1.0: we restore from memory, fastai saves and loads a
   model file), on the same learner and data, the same `num_it`, the same seed (so both run the same batches: the
   script checks that the recorded lrs and losses are identical). `--reps` alternating pairs after a warm-up pair; the
   headline ratio is the median of the per-pair ratios (a pair runs back to back, so load from other jobs on a shared
   machine mostly cancels). Two models: the MNIST-1D paper's CNN (5k params) and a wide MLP (8.5M params, num_it=30),
   whose 34 MB file makes fastai's save/load ten times dearer, though still small next to its sweep. Also the restore
   step alone: `LearnerSnapshot(learn).restore()` against fastai's `learn.save` + `learn.load(with_opt=True)`.
2. Suggestion quality on MNIST-1D (the paper's CNN, fastai's Adam): for each seed, the `'exp'` sweep (fastai's) and the
   `'cos'` sweep each suggest lrs (valley, slide, minimum, steep); `fit_cos_anneal(--epochs, lr)` is trained at each
   suggestion and at every lr of a 7-point log grid (1e-4 .. 1e-1), from the same initial weights and data order.
   Reported as measured: final validation accuracy at each suggestion against the best grid lr.

Run: OMP_NUM_THREADS=1 python benchmarks/bench_lr_find.py [--part speed|quality|all] [--reps 7] [--seeds 5] [--epochs 25]
"""
import argparse, math, os, platform, random, statistics, tempfile, time, warnings
import numpy as np, torch
from torch import nn
from fastai.basics import *
from fastai.callback.schedule import SuggestionMethod
from fastai_anneal.all import *
from fastai_anneal.data import mnist1d_dls, mnist1d_cnn

FUNCS = (SuggestionMethod.Valley, SuggestionMethod.Slide, SuggestionMethod.Minimum, SuggestionMethod.Steep)
fastai_lr_find = Learner._orig_lr_find  # fastcore's `patch` keeps the method it replaced

_TMP = tempfile.TemporaryDirectory()  # the learners' paths (fastai's lr_find leaves models/ behind): removed at exit
def _tmp() -> Path: return Path(tempfile.mkdtemp(dir=_TMP.name))

def wide_mlp(): return nn.Sequential(nn.Flatten(), nn.Linear(40, 2048), nn.ReLU(), nn.Linear(2048, 2048), nn.ReLU(),
                                     nn.Linear(2048, 2048), nn.ReLU(), nn.Linear(2048, 10))

# ------------------------------------------------------------------ 1. speed
def _timed_lr_find(f, learn, num_it):
    set_seed(1)  # both implementations sweep the same batches: fastai's leaves the RNGs advanced, the shuffling one too
    learn.dls.train.rng = random.Random(1)
    t = time.perf_counter()
    f(learn, num_it=num_it, show_plot=False)
    return time.perf_counter() - t,list(learn.recorder.lrs),torch.stack(learn.recorder.losses)

def bench_speed(reps):
    rows = []
    for name,mk_model,num_it in (('MNIST-1D CNN (5k params)', mnist1d_cnn, 100), ('wide MLP (8.5M params)', wide_mlp, 30)):
        set_seed(0)
        path = _tmp()
        learn = Learner(mnist1d_dls(), mk_model(), loss_func=CrossEntropyLossFlat(), path=path)
        learn.create_opt()  # both start from an existing optimizer (fastai's leaves one behind, ours gives back None)
        n_params = sum(p.numel() for p in learn.model.parameters())
        with learn.no_bar():
            t_fa,lrs_fa,loss_fa = _timed_lr_find(fastai_lr_find, learn, num_it)  # warm-up pair
            t_us,lrs_us,loss_us = _timed_lr_find(Learner.lr_find, learn, num_it)
            assert lrs_us == lrs_fa and torch.equal(loss_us, loss_fa), "the two sweeps must do the same work"
            ts_fa,ts_us = [],[]
            for i in range(reps):
                order = (fastai_lr_find, Learner.lr_find) if i % 2 == 0 else (Learner.lr_find, fastai_lr_find)
                for f in order: (ts_fa if f is fastai_lr_find else ts_us).append(_timed_lr_find(f, learn, num_it)[0])
            # the restore step alone
            def ours_restore():
                t = time.perf_counter(); LearnerSnapshot(learn).restore(); return time.perf_counter() - t
            def fastai_restore():
                t = time.perf_counter(); learn.save('_bench_tmp'); learn.load('_bench_tmp', with_opt=True); return time.perf_counter() - t
            r_us = statistics.median(ours_restore() for _ in range(reps))
            r_fa = statistics.median(fastai_restore() for _ in range(reps))
        m_us,m_fa = statistics.median(ts_us),statistics.median(ts_fa)
        paired = statistics.median(u/f for u,f in zip(ts_us, ts_fa))
        rows.append((name, n_params, f"{len(lrs_us)} of {num_it}", m_us, m_fa, m_us/m_fa, paired, min(ts_us)/min(ts_fa), r_us, r_fa))
    print("\n### lr_find wall time, ours / fastai (same learner, data, seed and num_it)\n")
    print(f"| model | params | batches run (of num_it) | ours (s, median) | fastai (s, median) | ratio: median of paired ratios | ratio of medians | ratio of minima | restore step: ours (ms) | restore step: fastai save+load (ms) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]:,} | {r[2]} | {r[3]:.3f} | {r[4]:.3f} | **{r[6]:.3f}** | {r[5]:.3f} | {r[7]:.3f} | {r[8]*1e3:.1f} | {r[9]*1e3:.1f} |")

# ------------------------------------------------------------------ 2. suggestion quality
def _learner(seed):
    set_seed(seed)
    return Learner(mnist1d_dls(seed=seed), mnist1d_cnn(), loss_func=CrossEntropyLossFlat(), metrics=accuracy, path=_tmp())

def _train(seed, lr, epochs):
    "Final validation accuracy of `fit_cos_anneal(epochs, lr)` from the seed's initial weights"
    learn = _learner(seed)
    with learn.no_bar(), learn.no_logging(): learn.fit_cos_anneal(epochs, lr)
    return float(learn.recorder.values[-1][-1])

def bench_quality(seeds, epochs):
    grid = [float(v) for v in np.logspace(-4, -1, 7)]
    acc_cache,rows = {},[]
    t0 = time.perf_counter()
    for seed in range(seeds):
        def acc(lr, seed=seed):  # trained once per (seed, lr): a suggestion equal to a grid lr or to another reuses it
            if (seed, lr) not in acc_cache: acc_cache[seed, lr] = _train(seed, lr, epochs)
            return acc_cache[seed, lr]
        sugg = {}
        for sweep in ('exp', 'cos'):
            learn = _learner(seed)
            with learn.no_bar(), warnings.catch_warnings():
                warnings.simplefilter('ignore')
                sugg[sweep] = learn.lr_find(anneal=sweep, suggest_funcs=FUNCS, show_plot=False)
        grid_acc = {lr: acc(lr) for lr in grid}
        best_lr = max(grid_acc, key=grid_acc.get)
        for sweep in ('exp', 'cos'):
            for nm,lr in zip(sugg[sweep]._fields, sugg[sweep]):
                a = acc(lr) if math.isfinite(lr) else float('nan')
                rows.append(dict(seed=seed, sweep=sweep, method=nm, lr=lr, acc=a, best_lr=best_lr, best_acc=grid_acc[best_lr]))
        print(f"seed {seed}: grid " + ", ".join(f"{lr:.2g}:{a:.3f}" for lr,a in grid_acc.items()), flush=True)
    print(f"\n(quality part: {time.perf_counter()-t0:.0f} s)")
    print(f"\n### Suggestion quality on MNIST-1D: paper's CNN, Adam, fit_cos_anneal({epochs}), final valid accuracy, {seeds} seeds\n")
    print("| seed | sweep | method | suggested lr | accuracy | best grid lr | best grid accuracy | gap |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['seed']} | {r['sweep']} | {r['method']} | {r['lr']:.3g} | {r['acc']:.3f} | {r['best_lr']:.3g} | {r['best_acc']:.3f} | {r['acc']-r['best_acc']:+.3f} |")
    print("\n| sweep | method | mean accuracy | mean gap to best grid lr | seeds within 1 point of the best grid lr |")
    print("|---|---|---|---|---|")
    for sweep in ('exp', 'cos'):
        for nm in ('valley', 'slide', 'minimum', 'steep'):
            rs = [r for r in rows if r['sweep'] == sweep and r['method'] == nm]
            gaps = [r['acc'] - r['best_acc'] for r in rs]
            print(f"| {sweep} | {nm} | {np.nanmean([r['acc'] for r in rs]):.3f} | {np.nanmean(gaps):+.3f} | {sum(g >= -0.01 for g in gaps)}/{len(rs)} |")
    best = [r['best_acc'] for r in rows if r['sweep'] == 'exp' and r['method'] == 'valley']
    print(f"\nbest grid lr, mean accuracy: {np.mean(best):.3f}")

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--part', choices=['speed', 'quality', 'all'], default='all')
    p.add_argument('--reps', type=int, default=7)
    p.add_argument('--seeds', type=int, default=5)
    p.add_argument('--epochs', type=int, default=25)
    p.add_argument('--threads', type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.backends.cudnn.deterministic = True  # on a GPU: both sweeps must record the same losses (asserted)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, threads={a.threads}")
    if a.part in ('speed', 'all'): bench_speed(a.reps)
    if a.part in ('quality', 'all'): bench_quality(a.seeds, a.epochs)
