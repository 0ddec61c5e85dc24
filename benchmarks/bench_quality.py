"""Quality benchmark: MNIST-1D final valid accuracy per schedule on one budget, mean of several seeds (not a timed test).

Everything runs through `fastai_anneal.cli.compare`, the code behind `fastai-anneal compare`, in this process:
- anchor: fastai's own schedules (`fit_one_cycle`, `fit_flat_cos`, `fit_sgdr`, constant-lr `fit`) at Adam lr 1e-2, bs 100;
- this package at the same lr 1e-2 (`fit_cos_anneal`, `fit_sgdr_anneal`, `fit_flat_anneal`, defaults): the schedule alone;
- the range-test recipe: `lr_find` (its `minimum` suggestion, seed 0: `compare --lr minimum`) then the same three variants,
  defaults (`--recipe-lr valley` etc. for another suggestion);
- fastai's one_cycle and flat_cos at the recipe's lr: how much of a difference is the lr, not the schedule;
- with `--sweep`: one_cycle, cos_anneal and flat_anneal at each given lr (lr sensitivity; picked by hand, so optimistic);
- with `--tuned`: the three variants with `lr='auto'` (`compare --lr auto`, every run tuned by `Learner.lr_tune`).
Budget: `--epochs` epochs of 40 batches (60 epochs = 2400 steps); `sgdr*` use `sgdr_cycles` (60 -> 4 cycles of 4, 8, 16, 32).
Seeds 0..K-1 set the weight init and the shuffling. The MNIST-1D test split (1000 samples) is the validation set.
Published (Greydanus 2020, table 1): logistic regression 32%, MLP 68%, CNN 94% (6000 steps), human 96%.

    python benchmarks/bench_quality.py                        # 60 epochs x 3 seeds: 36 runs, ~6 min on 2 quiet CPU cores
    python benchmarks/bench_quality.py --sweep 8.3e-3,1.3e-2,2e-2,3e-2   # + 36 runs
    python benchmarks/bench_quality.py --epochs 5 --seeds 1   # smoke run
"""
import argparse, tempfile, time
from fastai_anneal.cli import compare

FASTAI = 'one_cycle,flat_cos,sgdr,constant'
OURS = 'cos_anneal,sgdr_anneal,flat_anneal'

def _run(label, lr, schedules, epochs, seeds):
    with tempfile.TemporaryDirectory() as d: res = compare('mnist1d', epochs, lr, schedules, seeds, d, 'cpu', bar=False)
    return [dict(s, group=label, lr=res['config']['lr']) for s in res['summary']]

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--epochs', type=int, default=60, help="epochs per run (default: 60 = 2400 steps)")
    p.add_argument('--seeds', type=int, default=3, help="seeds per schedule (default: 3)")
    p.add_argument('--lr', type=float, default=1e-2, help="lr of the anchor runs (default: 1e-2)")
    p.add_argument('--recipe-lr', default='minimum', choices=['valley', 'slide', 'minimum', 'steep'],
                   help="lr_find suggestion of the recipe (default: minimum)")
    p.add_argument('--tuned', action='store_true', help="also run the three variants with lr='auto' (tuned per run)")
    p.add_argument('--sweep', default='', help="comma-separated lrs at which to also run one_cycle, cos_anneal and flat_anneal")
    a = p.parse_args()
    start = time.perf_counter()
    rows = _run('fastai', a.lr, FASTAI, a.epochs, a.seeds) + _run('ours, same lr', a.lr, OURS, a.epochs, a.seeds)
    rows += _run('recipe: lr_find', a.recipe_lr, OURS, a.epochs, a.seeds)
    rows += _run("fastai, recipe's lr", rows[-1]['lr'], 'one_cycle,flat_cos', a.epochs, a.seeds)
    for lr in filter(None, a.sweep.split(',')): rows += _run(f'sweep lr {float(lr):g}', float(lr), 'one_cycle,cos_anneal,flat_anneal', a.epochs, a.seeds)
    if a.tuned: rows += _run("lr='auto'", 'auto', OURS, a.epochs, a.seeds)
    anchor = max((r for r in rows if r['group'] == 'fastai'), key=lambda r: r['accuracy_mean'])
    print(f"MNIST-1D, paper's CNN, Adam, bs 100, {a.epochs} epochs ({a.epochs*40} steps), mean of {a.seeds} seeds; "
          f"anchor: best fastai schedule = {anchor['schedule']} {anchor['accuracy_mean']:.4f}")
    print(f"{'group':<20}{'schedule':<13}{'lr':>9}{'accuracy':>10}{'± std':>8}{'min':>8}{'max':>8}{'vs anchor':>11}{'vs 94%':>8}")
    for r in rows:
        lr = (f"{r['lr']:.3g}" if r['lr'] != 'auto' else f"{r['lr_min']:.2g}"  # tuned: the range over seeds
              + (f"-{r['lr_max']:.2g}" if r['lr_max'] != r['lr_min'] else ''))
        print(f"{r['group']:<20}{r['schedule']:<13}{lr:>9}{r['accuracy_mean']:>10.4f}{r['accuracy_std']:>8.4f}{r['accuracy_min']:>8.4f}"
              f"{r['accuracy_max']:>8.4f}{r['accuracy_mean']-anchor['accuracy_mean']:>+11.4f}{r['accuracy_mean']-0.94:>+8.4f}")
    recipe = max((r for r in rows if r['group'] == 'recipe: lr_find'), key=lambda r: r['accuracy_mean'])
    print(f"recipe (best variant after lr_find): {recipe['schedule']} at lr {recipe['lr']:.3g}: {recipe['accuracy_mean']:.4f}, "
          f"{recipe['accuracy_mean']-anchor['accuracy_mean']:+.4f} vs the anchor, {recipe['accuracy_mean']-0.94:+.4f} vs the paper's 94% "
          f"(the best of 3 variants on the validation set: optimistic)")
    print(f"total {time.perf_counter()-start:.0f} s")

if __name__ == '__main__': main()
