"""Screen of one more way to see the fit's horizon: `lr_tune`'s validated trials (rung 1) on a fixed subset of the training data,
sized so that each trial makes as many passes over it as the fit makes over the whole set.

The tuner's trials last a few percent of the fit; on small data the fit overfits where no trial does, and the trials favour an
lr 4-64x too high (breast cancer, diabetes, the autoencoder, the token LM: BENCHMARKS.md). A trial of n batches on
`N*n/n_steps` items repeats each item as often as the fit does (data subsampling in hyper-parameter search: Klein et al. 2017,
"Fast Bayesian optimization of machine learning hyperparameters on large datasets"). The range test and rung 0 are unchanged,
and the validation set is whole. Tuning only (deterministic), seed 0, for the 52 combinations of `bench_autolr_budget.py`, each
pick read off its combination's grid, against the unchanged tuner at the same budget (0.25, that benchmark's cache).

    python benchmarks/bench_autolr_subset.py --jobs 2     # ~3 minutes; the cache is benchmarks/results/autolr_subset.jsonl
"""
import os, sys, json, argparse, statistics as st
os.environ.setdefault('OMP_NUM_THREADS', '1')
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np
import bench_autolr_budget as BB
from _provenance import stamp
CACHE = os.path.join(BB.HERE, 'results', 'autolr_subset.jsonl')

def subset_trials():
    "Patch the tuner: its validated trials run on a fixed random subset of `N*n/n_steps` training items (at least a batch)"
    import fastai_anneal.tune as T
    tune,run = T._tune,T._run_phases
    fit = {}
    def _tune(learn, plan, n_steps, *args, **kwargs):
        fit['n_steps'] = n_steps
        try: return tune(learn, plan, n_steps, *args, **kwargs)
        finally: fit.clear()
    def _run_phases(learn, phases, cbs, wd, validate, reset_opt=False, snap=None):
        dl,n = learn.dls.train,sum(p[2] for p in phases)
        m = max(dl.bs, round(dl.n*n/fit['n_steps'])) if validate and fit else dl.n
        if m >= dl.n: return run(learn, phases, cbs, wd, validate, reset_opt, snap)
        N,sub = dl.n,np.random.RandomState(0).choice(dl.n, m, replace=False).tolist()
        dl.n,dl.get_idxs = m,lambda: dl.shuffle_fn(list(sub)) if dl.shuffle else list(sub)
        try: return run(learn, phases, cbs, wd, validate, reset_opt, snap)
        finally: del dl.get_idxs; dl.n = N
    T._tune,T._run_phases = _tune,_run_phases

def _work(args):
    path,names = args
    subset_trials()
    with open(path, 'a') as f:
        for name in names:
            r = stamp(BB.tune(name, 0.25))
            f.write(json.dumps(r) + '\n'); f.flush()
            print(f"  {name:<32} lr {r['lr']:.4g}  {r['cost']/r['n_steps']:.2f}x  ({r['time_s']:.0f} s)", flush=True)

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--cache', default=CACHE); p.add_argument('--jobs', type=int, default=1)
    a = p.parse_args()
    C,G = BB.combos(),BB.grids()
    rows = [json.loads(l) for l in open(a.cache)] if os.path.exists(a.cache) else []
    rows = BB.fill(a.cache, [n for n in C if n not in {r['name'] for r in rows}], _work, a.jobs)
    new = {r['name']: r for r in rows}
    base = {r['name']: r for r in map(json.loads, open(BB.CACHE)) if r['budget'] == 0.25}
    per = {n: {'tuner': BB.judge(n, base[n]['lr'], C, G), 'subset': BB.judge(n, new[n]['lr'], C, G)} for n in C}
    print(f"lr_tune's pick (seed 0, budget 0.25) read off each grid: the tuner as it is vs validated trials on a subset; {len(C)} combinations")
    for sets in (('bench',), ('sweep',), ('heldout3',), ('bench', 'sweep', 'heldout3')):
        names = [n for n in C if C[n][0] in sets]
        print(f"\n{' + '.join(sets)} ({len(names)} combinations)")
        for k in ('tuner', 'subset'):
            ps = [per[n][k] for n in names]
            vs = {v: sum(p[2] == v for p in ps) for v in ('ok', 'marginal', 'miss', 'catastrophic')}
            print(f"  {k:<7} goal units {st.fmean(max(p[0], -10) for p in ps):+6.2f}  |log2| {st.fmean(abs(p[1]) for p in ps):.2f}  "
                  f"4x off {sum(abs(p[1]) >= 2 for p in ps):>2}   " + ', '.join(f"{v} {c}" for v,c in vs.items()))
    print("\nper combination: log2(pick / grid best), tuner -> subset")
    for n in C: print(f"  {n:<32} {per[n]['tuner'][1]:+5.2f} -> {per[n]['subset'][1]:+5.2f}  ({per[n]['tuner'][2]} -> {per[n]['subset'][2]})")
