"""`fine_tune_anneal(epochs, base_lr='auto')` on a pretrained model: the grid oracle, 'auto' and fastai's recipe in one table.

A held-out task for `lr='auto'` (added after the method was fixed, run once): transfer learning with a frozen phase and
discriminative lrs, which the four design tasks do not have. The MNIST-1D paper's CNN is pretrained (fixed recipe:
`fit_flat_anneal(20, 1e-2)`, seed 100) on a second MNIST-1D dataset drawn with generator seed 7; its body is then fine-tuned
with a new head on 800 samples of the published dataset (generator seed 42; validation on its 1000 test samples), bs 16,
`fine_tune_anneal(12, base_lr)`: 1 frozen epoch and 12 unfrozen, 650 batches. Per seed (weight init of the head and
shuffling): every base_lr of a factor-2 grid, 'auto', and fastai's recipe (`lr_find().valley`, then fastai's
`fine_tune(12, lr)`). Score: final validation accuracy. Cost x: (tuning + fit) / fit wall time, both timed in one call.

    python benchmarks/bench_finetune_auto.py [--seeds 3]
"""
import argparse, os, platform, tempfile, time, warnings
import numpy as np, torch
from fastai.basics import *
from fastai_anneal.all import *
from fastai_anneal.data import mnist1d_arrays, mnist1d_cnn, _array_dls

EPOCHS,GRID = 12,[2.5e-3, 5e-3, 1e-2, 2e-2, 4e-2, 8e-2]

def pretrained_body(path):
    "The source model's body, trained once and kept in `path`"
    x,y,xv,yv = mnist1d_arrays(seed=7)
    set_seed(100, reproducible=True)
    learn = Learner(_array_dls(x, y, xv, yv, 100, 100, None), mnist1d_cnn(), loss_func=CrossEntropyLossFlat(), metrics=accuracy)
    with learn.no_bar(), learn.no_logging():
        learn.fit_flat_anneal(20, 1e-2)
        acc = float(learn.validate()[1])
    torch.save(learn.model.body.state_dict(), path)
    return acc

def make(seed, path):
    x,y,xv,yv = mnist1d_arrays(seed=42)
    set_seed(seed, reproducible=True)
    m = mnist1d_cnn(); m.body.load_state_dict(torch.load(path))
    return Learner(_array_dls(x[:800], y[:800], xv, yv, 16, seed, None), m, loss_func=CrossEntropyLossFlat(), metrics=accuracy,
                   splitter=lambda m: [params(m.body), params(m.head)])

def run(seed, lr, path) -> dict:
    "One fine-tune: lr a float (the grid), 'auto', or 'recipe'"
    learn,out = make(seed, path),{}
    start = time.perf_counter()
    with learn.no_bar(), learn.no_logging():
        if lr == 'recipe':
            lr = float(learn.lr_find(show_plot=False).valley)
            learn.fine_tune(EPOCHS, lr)
        else: learn.fine_tune_anneal(EPOCHS, lr)
    if lr == 'auto':
        res,total = learn.lr_tune_result,time.perf_counter() - start
        lr,out = res.scale,dict(ratio=total / (total - res.time_s), extra=res.cost)
    return dict(lr=lr, acc=float(learn.recorder.values[-1][2]), **out)

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--seeds', type=int, default=3)
    a = p.parse_args()
    torch.set_num_threads(1); warnings.simplefilter('ignore')
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, 'body.pt')
        print(f"{platform.machine()}, torch {torch.__version__}; source model accuracy {pretrained_body(path):.4f}")
        seeds = range(a.seeds)
        grid = {lr: [run(s, lr, path)['acc'] for s in seeds] for lr in GRID}
        auto = [run(s, 'auto', path) for s in seeds]
        recipe = [run(s, 'recipe', path) for s in seeds]
    means = {lr: float(np.mean(v)) for lr,v in grid.items()}
    best = max(means, key=means.get)
    bracketed = best not in (GRID[0], GRID[-1])
    am,rm = np.mean([r['acc'] for r in auto]),np.mean([r['acc'] for r in recipe])
    print("grid accuracy (mean of seeds): " + "  ".join(f"{lr:g}={m:.4f}" for lr,m in means.items()))
    print(f"oracle: base_lr {best:g}, {means[best]:.4f}" + ("" if bracketed else "  (NOT bracketed: widen GRID)"))
    print("auto:   base_lr " + " ".join(f"{r['lr']:.3g}" for r in auto) + f", {am:.4f} ({100*(am-means[best]):+.2f} pt); "
          f"cost x {np.median([r['ratio'] for r in auto]):.2f} (median), {int(np.median([r['extra'] for r in auto]))} extra batches "
          f"(the fit: {(EPOCHS+1)*50})")
    print("recipe: lr " + " ".join(f"{r['lr']:.3g}" for r in recipe) + f", {rm:.4f}")
    ok = am >= means[best] - 0.005 and am >= rm
    print(f"goal (within 0.5 pt of the oracle, >= recipe): {'met' if ok else 'NOT met'}; {time.perf_counter()-start:.0f} s")

if __name__ == '__main__': main()
