"""What a larger `budget` buys `lr='auto'`: the tuner's pick (tuning only, `Learner.lr_tune`, deterministic) at each budget for the
52 task x fit combinations of `bench_autolr.py` (24) and `bench_autolr_sweep.py` (17 + 11), seed 0, read off each combination's
grid (the mean score over its seeds per lr of a factor-2 grid, from those benchmarks' caches, linear in log2(lr) between points).

Per budget: the mean gap to the grid's best in units of the issue's goal (1 = 0.5 point of accuracy or 1% of a loss; each
combination's gap capped at -10 units so that a collapse to chance does not swamp the mean), the mean |log2| distance of the pick
from the grid's best lr, how many are 4x off or more, the verdicts of `bench_autolr_sweep.py` (ok within the goal, marginal
within twice, miss within 2 points or 3%, catastrophic beyond), and the median tuning cost in training batches per batch of the
fit. Reading a grid between its points stands in for a fit at the pick (as the sixth and seventh sessions screened): a pick
near a cliff, where the stability probe or the fit's watchdog would act, reads as the curve says; Lamb's combinations, whose
fits restart after a collapse, read as collapsed.

    python benchmarks/bench_autolr_budget.py                          # the report; tunes what the cache lacks (~25 min, 1 core)
    python benchmarks/bench_autolr_budget.py --budgets 0.25,1.0 --jobs 2

One torch thread per process; the cache is `benchmarks/results/autolr_budget.jsonl`.
"""
import os, sys, json, math, time, argparse, statistics as st, warnings
os.environ.setdefault('OMP_NUM_THREADS', '1')
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _provenance import stamp
HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(HERE, 'results', 'autolr_budget.jsonl')
FITS = {'cos': 'fit_cos_anneal', 'flat': 'fit_flat_anneal'}

def combos() -> dict:
    "name: (set, make(seed), fit, args, kwargs, score): the design and held-out rows, then both sweep sets"
    from autolr_tasks import TASKS, BASE
    from autolr_sweep_tasks import TASKS as T1
    from autolr_heldout3_tasks import TASKS as T3
    import bench_autolr_sweep as B
    res = {f"{t}/{s}": ('bench', make, FITS[s], (epochs,), {}, score) for t,(make,epochs,score) in TASKS.items()
           for s in FITS if t not in BASE}  # the design rows as they were: no warmup variants
    for name,(task,fit,args,kw,score) in B.COMBOS.items():
        if name in B.HELDOUT4: continue  # the 52 of this screen: the fourth set came after it
        res[name] = ('heldout3' if name in B.HELDOUT3 else 'sweep', {**T1, **T3}[task], fit, args, kw, score)
    return res

def grids() -> dict:
    "name: {lr: mean score over the seeds}, from the two benchmarks' caches (every lr that all their seeds ran)"
    runs = {}
    for f,key in (('autolr.jsonl', lambda r: f"{r['task']}/{r['sched']}"), ('autolr_sweep.jsonl', lambda r: r['combo'])):
        for l in open(os.path.join(HERE, 'results', f)):
            r = json.loads(l)
            if r['kind'] == 'grid': runs.setdefault(key(r), {}).setdefault(r['lr'], {})[r['seed']] = r['score']
    res = {}
    for name,g in runs.items():
        n = max(len(v) for v in g.values())
        res[name] = {lr: st.fmean(v.values()) for lr,v in g.items() if len(v) == n}
    return res

def lower(score): return 'loss' in score or score == 'mse'

def read(g:dict, lr:float) -> float:
    "The grid's mean score at `lr`, linear in log2(lr) between its points, its edge value beyond them"
    pts = sorted((math.log2(k), v) for k,v in g.items())
    x = math.log2(lr)
    if x <= pts[0][0]: return pts[0][1]
    if x >= pts[-1][0]: return pts[-1][1]
    for (x0,y0),(x1,y1) in zip(pts, pts[1:]):
        if x0 <= x <= x1: return y0 + (y1-y0)*(x-x0)/(x1-x0)

def judge(name:str, lr:float, C:dict, G:dict) -> tuple:
    ("`(gap in goal units, log2(lr / grid best), verdict)` of `lr` on combination `name`'s grid: units of 0.5 point or 1% of a "
     "loss; ok within the goal, marginal within twice, miss within 2 points or 3%, catastrophic beyond")
    g,lo = G[name],lower(C[name][5])
    best = (min if lo else max)(g, key=g.get)
    v = read(g, lr)
    gap = (v - g[best])/abs(g[best])*100 if lo else (v - g[best])*100  # % of the loss (above: worse) or points
    verdict = ('catastrophic' if (gap > 3 if lo else gap < -2) else 'miss' if (gap > 2 if lo else gap < -1) else
               'marginal' if (gap > 1 if lo else gap < -0.5) else 'ok')
    return (-gap if lo else gap/0.5),math.log2(lr/best),verdict

def summary(judged:list) -> str:
    "One line for `judge`'s results: the mean goal units (each capped at -10), the mean |log2| from the best lr, how many 4x off, verdicts"
    vs = {v: sum(j[2] == v for j in judged) for v in ('ok', 'marginal', 'miss', 'catastrophic')}
    return (f"goal units {st.fmean(max(j[0], -10) for j in judged):+.2f}  |log2| {st.fmean(abs(j[1]) for j in judged):.2f}  "
            f"4x off {sum(abs(j[1]) >= 2 for j in judged)}  " + ', '.join(f"{k} {v}" for k, v in vs.items()))

def fill(cache:str, todo:list, work, jobs:int) -> list:
    ("Run `work((path, part))` for `todo` split over `jobs` processes, each appending to its own part file, gather the parts into "
     "`cache`; every row of `cache`")
    if todo:
        from concurrent.futures import ProcessPoolExecutor
        parts = [(f"{cache}.part{i}", todo[i::jobs]) for i in range(jobs)]
        with ProcessPoolExecutor(jobs) as ex: list(ex.map(work, parts))
        with open(cache, 'a') as out:
            for path,_ in parts:
                if os.path.exists(path): out.write(open(path).read()); os.remove(path)
    return [json.loads(l) for l in open(cache)] if os.path.exists(cache) else []

def tune(name:str, budget:float) -> dict:
    "The pick of `lr_tune` for combination `name` on seed 0 at `budget`"
    import torch
    import fastai_anneal.all  # noqa: F401, the Learner patches
    torch.set_num_threads(1)
    _,make,fit,args,kw,_ = combos()[name]
    learn,t0 = make(0),time.perf_counter()
    with warnings.catch_warnings(), learn.no_bar(), learn.no_logging():
        warnings.simplefilter('ignore')  # a short fit's "tuning costs more than the budget": the cost is reported
        res = learn.lr_tune(*args, fit=fit, budget=budget, **kw)
    return dict(name=name, budget=budget, lr=res.scale, rule=res.rule, top=res.top, cost=res.cost, n_steps=res.n_steps,
                time_s=time.perf_counter() - t0)

def _work(args):
    path,jobs = args
    with open(path, 'a') as f:
        for name,b in jobs:
            r = stamp(tune(name, b))
            f.write(json.dumps(r) + '\n'); f.flush()
            print(f"  {name:<32} budget {b:<5} lr {r['lr']:.4g}  {r['cost']/r['n_steps']:.2f}x  ({r['time_s']:.0f} s)", flush=True)

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--budgets', default='0.25,0.5,1.0'); p.add_argument('--cache', default=CACHE)
    p.add_argument('--jobs', type=int, default=1, help="processes: the missing tunings are split between them")
    a = p.parse_args()
    budgets,C,G = [float(b) for b in a.budgets.split(',')],combos(),grids()
    rows = [json.loads(l) for l in open(a.cache)] if os.path.exists(a.cache) else []
    have = {(r['name'], r['budget']) for r in rows}
    rows = fill(a.cache, [(n, b) for b in budgets for n in C if (n, b) not in have], _work, a.jobs)
    picks = {(r['name'], r['budget']): r for r in rows}
    per = {}
    for name in C:
        for b in budgets:
            r = picks[(name, b)]
            units,err,verdict = judge(name, r['lr'], C, G)
            per[(name, b)] = dict(set=C[name][0], units=units, err=err, cost=r['cost']/r['n_steps'], verdict=verdict)
    print(f"lr_tune's pick (seed 0) read off each grid, by budget; {len(C)} combinations")
    for sets in (('bench',), ('sweep',), ('heldout3',), ('bench', 'sweep', 'heldout3')):
        names = [n for n,c in C.items() if c[0] in sets]
        print(f"\n{' + '.join(sets)} ({len(names)} combinations)")
        print(f"  {'budget':>6} {'goal units':>11} {'|log2|':>7} {'4x off':>7} {'cost':>6}   verdicts")
        for b in budgets:
            ps = [per[(n, b)] for n in names]
            vs = {k: sum(p['verdict'] == k for p in ps) for k in ('ok', 'marginal', 'miss', 'catastrophic')}
            print(f"  {b:>6} {st.fmean(max(p['units'], -10) for p in ps):>+11.2f} {st.fmean(abs(p['err']) for p in ps):>7.2f} "
                  f"{sum(abs(p['err']) >= 2 for p in ps):>7} {st.median(p['cost'] for p in ps):>5.2f}x   "
                  + ', '.join(f"{k} {v}" for k,v in vs.items()))
    print(f"\nper combination: gap in goal units, log2(pick / grid best)")
    for n in C:
        print(f"  {n:<32}" + ''.join(f"  {b}: {per[(n, b)]['units']:>+7.2f} {per[(n, b)]['err']:>+5.2f}" for b in budgets))
