"""Quality and cost of `lr='auto'`: per task and schedule, the grid oracle, 'auto', fastai's recipe and fit_one_cycle at its best.

For each task of `autolr_tasks.py` (4 families, offline data) and each of `fit_cos_anneal`, `fit_flat_anneal`:
- grid oracle: the fit at every lr of a factor-2 grid, each seed; the grid grows until the best mean is inside it (bracketed
  on both sides); the oracle is the best mean over the grid;
- auto: `fit_*(epochs, 'auto')`, each seed: the lr it picked, its score, the extra training batches, and the wall-time ratio
  (tuning + fit) / fit, both timed inside the same call;
- fastai's recipe: `lr_find().valley` then `fit_one_cycle(epochs, lr)`, each seed;
- fit_one_cycle at its own grid best (the same grid procedure).
Scores: final validation accuracy (higher is better) or validation loss (the LM; lower is better). Seeds 0..K-1 set the weight
init and the shuffling; all runs on CPU, one thread per process. Every run is appended to a JSON-lines cache, so an
interrupted benchmark resumes where it stopped (`--fresh` starts over).

    python benchmarks/bench_autolr.py                                   # 4 tasks x 3 seeds (about 2 hours on 2 shared cores)
    python benchmarks/bench_autolr.py --tasks mnist1d --seeds 1         # one task, one seed
    python benchmarks/bench_autolr.py --tasks mnist1d_gru               # the held-out task
    python benchmarks/bench_autolr.py --jobs 2                          # tasks split over 2 processes
"""
import argparse, json, math, os, statistics, subprocess, sys, time
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).parent))
from _provenance import stamp, summary
from autolr_tasks import BASE

GRIDS = {'mnist1d': [1e-2, 2e-2, 4e-2], 'bn_sgd': [0.1, 0.2, 0.4], 'tabular': [2.5e-3, 5e-3, 1e-2], 'char_lm': [5e-3, 1e-2, 2e-2],
         'mnist1d_gru': [5e-3, 1e-2, 2e-2], 'friedman_mlp': [2.5e-3, 5e-3, 1e-2],
         'mnist1d_mlp': [2.5e-2, 5e-2, 0.1], 'mnist1d_20ep': [1e-2, 2e-2, 4e-2], 'tabular_4ep': [2.5e-3, 5e-3, 1e-2],
         'digits_cnn': [2.5e-3, 5e-3, 1e-2], 'mnist1d_mixup': [1e-2, 2e-2, 4e-2], 'mnist1d_vit': [2.5e-3, 5e-3, 1e-2]}
# where each grid starts (a variant: its base task's); it grows by factors of 2 until the best is bracketed
FITS = {'cos': 'fit_cos_anneal', 'flat': 'fit_flat_anneal', 'one_cycle': 'fit_one_cycle'}
DEFAULT_TASKS = 'mnist1d,bn_sgd,tabular,char_lm'

def _score(learn, kind):
    names = learn.recorder.metric_names[1:-1]
    v = float(learn.recorder.values[-1][names.index(kind)])
    return v if math.isfinite(v) else (math.inf if kind == 'valid_loss' else 0.)

def run(task:str, kind:str, sched:str, seed:int, lr=None) -> dict:
    "One run: kind 'grid' (fit at `lr`), 'auto' (fit at 'auto') or 'recipe' (lr_find valley, then fit_one_cycle)"
    import fastai_anneal.all  # noqa: F401, the Learner patches
    from autolr_tasks import TASKS, FIT_KW
    make,epochs,score = TASKS[task]
    kw = FIT_KW.get(task, {}) if sched in ('cos', 'flat') else {}
    learn = make(seed)
    rec = dict(task=task, kind=kind, sched=sched, seed=seed, epochs=epochs, score_name=score, n_steps=epochs*len(learn.dls.train))
    with learn.no_bar(), learn.no_logging():
        start = time.perf_counter()
        if kind == 'recipe':
            lr = float(learn.lr_find(show_plot=False).valley)
            fit_start = time.perf_counter()
            learn.fit_one_cycle(epochs, lr)
        elif kind == 'auto':
            getattr(learn, FITS[sched])(epochs, 'auto', **kw)
            res = learn.lr_tune_result
            lr,fit_start = res.scale,start + res.time_s
            rec.update(extra_batches=res.cost, extra_valid_batches=res.valid_cost, rule=res.rule, n_trials=len(res.trials))
        else:
            fit_start = start
            getattr(learn, FITS[sched])(epochs, lr, **kw)
        end = time.perf_counter()
    rec.update(lr=lr, score=_score(learn, score), time_s=end-start, fit_s=end-fit_start)
    return rec

def _key(task, kind, sched, seed, lr=None): return (task, kind, sched, seed, None if lr is None else round(math.log2(lr), 3))
def _row_key(r): return _key(r['task'], r['kind'], r['sched'], r['seed'], r['lr'] if r['kind'] == 'grid' else None)

class Cache:
    "Every run so far, one JSON line each; `get` runs what is missing (`read_only`: raises instead)"
    def __init__(self, path, fresh=False, read_only=False):
        self.path,self.read_only = Path(path),read_only
        if fresh and self.path.exists(): self.path.unlink()
        self.rows = [json.loads(l) for l in self.path.read_text().splitlines()] if self.path.exists() else []
    def _hits(self, task, kind, sched, seed, lr=None):
        if sched == 'one_cycle': task = BASE.get(task, task)  # a variant's fastai runs are its base task's (`autolr_tasks.BASE`)
        k = _key(task, kind, sched, seed, lr)
        return [r for r in self.rows if _row_key(r) == k]
    def has(self, *args): return bool(self._hits(*args))
    def get(self, task, kind, sched, seed, lr=None):
        if sched == 'one_cycle': task = BASE.get(task, task)
        hit = self._hits(task, kind, sched, seed, lr)
        if hit: return hit[-1]
        if self.read_only: raise KeyError(f"no run of {(task, kind, sched, seed, lr)} in {self.path}: run bench_autolr.py first")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        r = stamp(run(task, kind, sched, seed, lr))
        self.rows.append(r)
        with open(self.path, 'a') as f: f.write(json.dumps(r) + '\n')
        print(f"  {task:<17}{kind:<7}{sched:<10}seed {seed}  lr {r['lr']:.3g}  {r['score_name']} {r['score']:.4g}  {r['time_s']:.1f}s", flush=True)
        return r

def _better(kind): return (lambda a, b: a < b) if kind == 'valid_loss' else (lambda a, b: a > b)

def grid_oracle(cache, task, sched, seeds) -> dict:
    "Run the grid, grow it by factors of 2 until the best mean lr has a neighbour on both sides; returns {lr: [scores]}"
    if sched == 'one_cycle': task = BASE.get(task, task)
    done = {r['lr'] for r in cache.rows if (r['task'], r['kind'], r['sched']) == (task, 'grid', sched)}
    lrs = sorted(set(GRIDS[BASE.get(task, task)]) | {lr for lr in done if all(cache.has(task, 'grid', sched, s, lr) for s in seeds)})
    for _ in range(6):
        res = {lr: [cache.get(task, 'grid', sched, s, lr)['score'] for s in seeds] for lr in lrs}
        kind = cache.get(task, 'grid', sched, seeds[0], lrs[0])['score_name']
        means = {lr: statistics.fmean(v) for lr,v in res.items()}
        best = min(means, key=means.get) if kind == 'valid_loss' else max(means, key=means.get)
        if best == min(lrs): lrs.insert(0, best/2)
        elif best == max(lrs): lrs.append(best*2)
        else: return res
    return res

def report(cache, tasks, seeds):
    from autolr_tasks import TASKS
    lines,ok = [],[]
    hdr = (f"{'task':<17}{'schedule':<16}{'oracle lr':>10}{'oracle':>10}{'auto lrs (per seed)':>28}{'auto':>10}{'gap':>9}{'se':>6}{'recipe lr':>10}"
           f"{'recipe':>10}{'1cycle lr':>10}{'1cycle':>10}{'cost x':>8}{'batches':>9}  goal")
    lines.append(hdr)
    for task in tasks:
        kind = TASKS[task][2]
        f = '.4g' if kind == 'valid_loss' else '.4f'  # losses from 1e-4 (a regression's MSE) to 2 (the LM's)
        better = _better(kind)
        recipe = [cache.get(task, 'recipe', 'one_cycle', s) for s in seeds]
        rmean = statistics.fmean(r['score'] for r in recipe)
        oc = grid_oracle(cache, task, 'one_cycle', seeds)
        ocm = {lr: statistics.fmean(v) for lr,v in oc.items()}
        oc_lr = (min if kind == 'valid_loss' else max)(ocm, key=ocm.get)
        for sched in ('cos', 'flat'):
            g = grid_oracle(cache, task, sched, seeds)
            gm = {lr: statistics.fmean(v) for lr,v in g.items()}
            o_lr = (min if kind == 'valid_loss' else max)(gm, key=gm.get)
            auto = [cache.get(task, 'auto', sched, s) for s in seeds]
            am = statistics.fmean(r['score'] for r in auto)
            cost = statistics.median(r['time_s']/r['fit_s'] for r in auto)
            extra = statistics.median(r['extra_batches'] for r in auto)
            if kind == 'valid_loss': gap,within = (am - gm[o_lr]) / gm[o_lr], (am - gm[o_lr]) / gm[o_lr] <= 0.01
            else: gap,within = 100*(am - gm[o_lr]), 100*(gm[o_lr] - am) <= 0.5
            beats = not better(rmean, am) or rmean == am
            goal = within and beats and cost <= 1.3
            ok.append(goal)
            gap_s = f"{100*gap:+.2f}%" if kind == 'valid_loss' else f"{gap:+.2f}pt"
            # the gap's standard error, in its unit, from the per-seed differences of the 'auto' runs and the runs at the oracle's
            # lr (a seed fixes the init and the batch order of both fits; n-1 degrees of freedom, 2 at 3 seeds): what the
            # verdict can resolve
            d = [r['score'] - v for r,v in zip(auto, g[o_lr])]
            se = statistics.stdev(d)/math.sqrt(len(d)) if len(seeds) > 1 else math.nan
            se *= 100/abs(gm[o_lr]) if kind == 'valid_loss' else 100
            auto_lrs = ' '.join(format(r['lr'], '.3g') for r in auto)
            lines.append(f"{task:<17}{FITS[sched]:<16}{o_lr:>10.3g}{gm[o_lr]:>10{f}}{auto_lrs:>28}{am:>10{f}}"
                         f"{gap_s:>9}{se:>6.2f}{statistics.fmean(r['lr'] for r in recipe):>10.3g}{rmean:>10{f}}{oc_lr:>10.3g}{ocm[oc_lr]:>10{f}}"
                         f"{cost:>8.2f}{extra:>9.0f}  {'met' if goal else 'NOT met'}"
                         f"{'' if within else ' (gap)'}{'' if beats else ' (below recipe)'}{'' if cost <= 1.3 else ' (cost)'}")
        lines.append(f"{'':<17}{'grid ' + kind:<16}" + '  '.join(f"{FITS[s]}: " + ' '.join(f"{lr:.3g}={statistics.fmean(v):{f}}"
                     for lr,v in sorted(grid_oracle(cache, task, s, seeds).items())) for s in ('cos', 'flat', 'one_cycle')))
    return '\n'.join(lines),ok

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--tasks', default=DEFAULT_TASKS, help=f"comma-separated task names (default: {DEFAULT_TASKS})")
    p.add_argument('--seeds', type=int, default=3, help="seeds per configuration (default: 3)")
    p.add_argument('--cache', default='benchmarks/results/autolr.jsonl', help="JSON-lines cache of every run")
    p.add_argument('--fresh', action='store_true', help="discard the cache first")
    p.add_argument('--jobs', type=int, default=1, help="processes: the tasks are split between them, then the report is printed")
    p.add_argument('--kinds', default='grid,recipe,auto', help="run only these kinds of runs (fills the cache; the report needs all three)")
    a = p.parse_args()
    torch.set_num_threads(1)
    tasks,seeds = a.tasks.split(','),list(range(a.seeds))
    if a.jobs > 1:  # the shards append to the same cache (one short line per write, opened in append mode)
        if a.fresh and Path(a.cache).exists(): Path(a.cache).unlink()
        # a task and its variants in one shard: they share the base task's fastai runs (`autolr_tasks.BASE`), which two
        # processes would otherwise both run and append
        bases = list(dict.fromkeys(BASE.get(t, t) for t in tasks))
        shards = [[t for t in tasks if BASE.get(t, t) in bases[i::a.jobs]] for i in range(a.jobs)]
        procs = [subprocess.Popen([sys.executable, __file__, '--tasks', ','.join(sh), '--seeds', str(a.seeds), '--cache', a.cache,
                                   '--kinds', a.kinds])
                 for sh in shards if sh]
        for pr in procs: pr.wait()
    start = time.perf_counter()
    cache = Cache(a.cache, a.fresh and a.jobs == 1)
    if set(a.kinds.split(',')) != {'grid', 'recipe', 'auto'}:
        for task in tasks:
            for sched in ('cos', 'flat', 'one_cycle'):
                if 'grid' in a.kinds: grid_oracle(cache, task, sched, seeds)
            if 'recipe' in a.kinds: [cache.get(task, 'recipe', 'one_cycle', s) for s in seeds]
            if 'auto' in a.kinds: [cache.get(task, 'auto', sched, s) for sched in ('cos', 'flat') for s in seeds]
        return
    table,ok = report(cache, tasks, seeds)
    print(f"\nlr='auto' vs the grid oracle, {len(seeds)} seeds, CPU ({os.cpu_count()} cores), read by torch {torch.__version__}")
    read = set(tasks) | {BASE[t] for t in tasks if t in BASE}  # a variant's table reads its base task's fastai rows too
    print(summary([r for r in cache.rows if r['task'] in tasks or (r['task'] in read and r['sched'] == 'one_cycle')]))
    print(table)
    print(f"goal met on {sum(ok)} of {len(ok)} task x schedule rows; {time.perf_counter()-start:.0f} s")

if __name__ == '__main__': main()
