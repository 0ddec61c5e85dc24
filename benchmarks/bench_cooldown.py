"""Anytime training: one stable run with cooldown branches against separate `fit_cos_anneal` runs at each budget.

For a budget of B epochs and the three budgets T = B/4, B/2, B (issue 13, item 1):
- separate: `fit_cos_anneal(T, lr)` for each T, from scratch (the fixed-budget schedule; 1.75 B epochs in all);
- anytime: one stable run `fit_flat_anneal(S, lr, pct_start=1.)` with `SaveModelCallback(every_epoch=True, with_opt=True)`,
  then for each T a fresh learner that loads the checkpoint of epoch T-k and runs `fit_cooldown(k)` (1-sqrt to lr/1e5), with
  k = max(1, round(c*T)) for a cooldown fraction c; S is the latest branch point, so it costs S + sum(k) epochs.
Both use the same lr (`BUDGETS`; MNIST-1D's is `fit_cos_anneal`'s grid best at 60 epochs in bench_autolr). The separate runs
also run on a factor-2 grid around it (`--grid`, multipliers of that lr) at every T: the oracle column is each budget's best
grid mean, so a branch is compared with a separate run tuned for its own length, not only with one at the shared lr. Scores
are final validation accuracies, mean of the seeds; compute is counted in training batches (the same per epoch for both) and
timed as well. Every row records its lr.
The tasks come from `autolr_tasks.py`: the MNIST-1D CNN with Adam at B = 60, the BatchNorm residual CNN with SGD at B = 40.
Every run is appended to a JSON-lines cache (`--fresh` starts over).

    python benchmarks/bench_cooldown.py                         # both tasks, 3 seeds, cooldown fractions 1/15, 0.1 and 0.2
    python benchmarks/bench_cooldown.py --tasks mnist1d --seeds 1 --jobs 1 --grid 1   # smoke: no grid
"""
import argparse, json, math, os, statistics, subprocess, sys, tempfile, time
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).parent))
from _provenance import stamp, summary

BUDGETS = {'mnist1d': (60, 2e-2), 'bn_sgd': (40, 0.1)}  # task: (B epochs, lr: fit_cos_anneal's grid best in bench_autolr)
GRID = (0.25, 0.5, 1., 2., 4.)  # the separate runs' lrs, as multiples of the task's lr
COOLDOWNS = (1/15, 0.1, 0.2)  # fractions of each budget spent cooling down (1/15 keeps the anytime run at 0.6x the separate runs)

def budgets(task): B = BUDGETS[task][0]; return (B//4, B//2, B)
def cooldown_epochs(T:int, c:float) -> int: return max(1, round(c*T))

def _acc(learn): return float(learn.recorder.values[-1][learn.recorder.metric_names[1:-1].index('accuracy')])

def run_separate(task, seed, T, lr) -> dict:
    "`fit_cos_anneal(T, lr)` from scratch"
    import fastai_anneal.all  # noqa: F401, the Learner patches
    from autolr_tasks import TASKS
    learn = TASKS[task][0](seed)
    start = time.perf_counter()
    with learn.no_bar(), learn.no_logging(): learn.fit_cos_anneal(T, lr)
    return [dict(task=task, kind='separate', seed=seed, T=T, c=None, lr=lr, epochs=T, score=_acc(learn),
                 time_s=time.perf_counter()-start)]

def _lr(r) -> float: return r.get('lr', BUDGETS[r['task']][1])  # rows from before the grid ran at the task's lr and did not say

def run_anytime(task, seed, c) -> list:
    "One stable run checkpointed every epoch, then a `fit_cooldown` branch per budget, each from a fresh learner that loads its checkpoint"
    import fastai_anneal.all  # noqa: F401
    from fastai.callback.tracker import SaveModelCallback
    from autolr_tasks import TASKS
    make,lr = TASKS[task][0],BUDGETS[task][1]
    ks = {T: cooldown_epochs(T, c) for T in budgets(task)}
    S = max(T - k for T,k in ks.items())
    rows = []
    with tempfile.TemporaryDirectory() as d:
        learn = make(seed)
        learn.path,learn.model_dir = Path(d),'.'
        start = time.perf_counter()
        with learn.no_bar(), learn.no_logging():
            learn.fit_flat_anneal(S, lr, pct_start=1., cbs=SaveModelCallback(every_epoch=True, with_opt=True, fname='stable'))
        stable_s = time.perf_counter() - start
        rows.append(dict(task=task, kind='stable', seed=seed, T=S, c=c, lr=lr, epochs=S, score=_acc(learn), time_s=stable_s))
        for T,k in ks.items():
            b = make(seed)
            b.path,b.model_dir = Path(d),'.'
            b.load(f'stable_{T-k-1}', with_opt=True)  # the weights and optimizer after T-k stable epochs
            start = time.perf_counter()
            with b.no_bar(), b.no_logging(): b.fit_cooldown(k)
            rows.append(dict(task=task, kind='branch', seed=seed, T=T, c=c, lr=lr, epochs=k, score=_acc(b),
                             time_s=time.perf_counter()-start))
    return rows

def _units(tasks, seeds, cs, grid=(1.,)):
    for task in tasks:
        for s in seeds:
            for T in budgets(task):
                for m in grid: yield ('separate', task, s, (T, BUDGETS[task][1]*m))
            for c in cs: yield ('anytime', task, s, c)

def _done(rows, unit):
    kind,task,s,x = unit
    if kind == 'separate':
        return any(r['kind'] == 'separate' and (r['task'], r['seed'], r['T']) == (task, s, x[0]) and math.isclose(_lr(r), x[1])
                   for r in rows)
    return any(r['kind'] == 'stable' and (r['task'], r['seed']) == (task, s) and abs(r['c'] - x) < 1e-9
               and math.isclose(_lr(r), BUDGETS[task][1]) for r in rows)

def fill(cache:Path, units):
    "Run every unit of `units` missing from `cache`, appending its rows"
    for unit in units:
        rows = [json.loads(l) for l in cache.read_text().splitlines()] if cache.exists() else []  # other shards append too
        if _done(rows, unit): continue
        kind,task,s,x = unit
        new = run_separate(task, s, *x) if kind == 'separate' else run_anytime(task, s, x)
        with open(cache, 'a') as f: f.writelines(json.dumps(stamp(r)) + '\n' for r in new)
        for r in new: print(f"  {task:<9}{r['kind']:<9}seed {s}  T {r['T']:<4}c {r['c'] or 0:.3f}  acc {r['score']:.4f}  {r['time_s']:.1f}s",
                            flush=True)

def _oracle(rows, seeds) -> tuple:
    "`(lr, mean score, at an edge of the grid)` of the best grid lr among `rows` (separate runs of one task and T), over `seeds`"
    by = {}
    for r in rows: by.setdefault(round(_lr(r), 12), {})[r['seed']] = r['score']
    means = {lr: statistics.fmean(v[s] for s in seeds) for lr,v in by.items() if all(s in v for s in seeds)}
    best = max(means, key=means.get)
    return best,means[best],len(means) > 1 and best in (min(means), max(means))

def report(rows, tasks, seeds, cs) -> tuple:
    ("The table, the goal per row (branch within 0.3 points of the separate run at the same lr, at <= 0.6x the batches) and the "
     "same against each budget's grid oracle")
    mean = statistics.fmean
    lines,ok,ok_oracle = [f"{'task':<9}{'lr':>7}{'cooldown':>14}{'budget':>8}{'separate':>10}{'oracle (lr)':>16}{'branch':>9}"
                          f"{'gap pt':>8}{'vs oracle':>10}{'batches x':>11}{'time x':>8}  goal (gap >= -0.3 pt, batches <= 0.6x)"],[],[]
    def pick(**kw): return [r for r in rows if all(r.get(k) == v if k != 'c' else abs((r['c'] or 0) - v) < 1e-9 for k,v in kw.items())
                            and r['seed'] in seeds]
    for task in tasks:
        Ts,lr0 = budgets(task),BUDGETS[task][1]
        sep = {T: [r for r in pick(task=task, kind='separate', T=T) if math.isclose(_lr(r), lr0)] for T in Ts}
        orc = {T: _oracle(pick(task=task, kind='separate', T=T), seeds) for T in Ts}
        for c in cs:
            br = {T: pick(task=task, kind='branch', T=T, c=c) for T in Ts}
            st = pick(task=task, kind='stable', c=c)
            ratio = (st[0]['epochs'] + sum(br[T][0]['epochs'] for T in Ts)) / sum(Ts)
            t_ratio = mean([sum(r['time_s'] for r in st + [b for T in Ts for b in br[T]] if r['seed'] == s) /
                            sum(r['time_s'] for T in Ts for r in sep[T] if r['seed'] == s) for s in seeds])
            for T in Ts:
                b,s_mean = 100*mean(r['score'] for r in br[T]),100*mean(r['score'] for r in sep[T])
                gap,o_lr,o,edge = b - s_mean,*orc[T]
                gap_o = b - 100*o
                goal = gap >= -0.3 and ratio <= 0.6
                ok.append(goal); ok_oracle.append(gap_o >= -0.3 and ratio <= 0.6)
                o_txt = f"{100*o:.2f} ({o_lr:.3g}{'!' if edge else ''})"
                lines.append(f"{task:<9}{lr0:>7.3g}{f'{c:.3f} ({cooldown_epochs(T, c)} ep)':>14}{T:>8}"
                             f"{s_mean:>10.2f}{o_txt:>16}"
                             f"{b:>9.2f}{gap:>+8.2f}{gap_o:>+10.2f}{ratio:>11.3f}{t_ratio:>8.2f}  {'met' if goal else 'NOT met'}"
                             f"{'' if gap >= -0.3 else ' (gap)'}{'' if ratio <= 0.6 else ' (compute)'}")
    return '\n'.join(lines),ok,ok_oracle

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--tasks', default=','.join(BUDGETS), help=f"comma-separated, from {', '.join(BUDGETS)}")
    p.add_argument('--seeds', type=int, default=3, help="seeds (default: 3)")
    p.add_argument('--grid', default=','.join(f'{m:g}' for m in GRID),
                   help="the separate runs' lrs, as multiples of the task's lr (default: %(default)s; 1: no grid)")
    p.add_argument('--cooldowns', default=','.join(f'{c:.6g}' for c in COOLDOWNS), help="cooldown fractions of each budget")
    p.add_argument('--cache', default='benchmarks/results/cooldown.jsonl', help="JSON-lines cache of every run")
    p.add_argument('--fresh', action='store_true', help="discard the cache first")
    p.add_argument('--jobs', type=int, default=2, help="processes (each one thread); the units are split between them")
    p.add_argument('--shard', default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    torch.set_num_threads(1)
    tasks,seeds,cs = a.tasks.split(','),list(range(a.seeds)),[float(c) for c in a.cooldowns.split(',')]
    grid = [float(m) for m in a.grid.split(',')]
    cache = Path(a.cache)
    if a.shard is not None:  # one of the `--jobs` processes: every n-th unit
        i,n = map(int, a.shard.split('/'))
        return fill(cache, list(_units(tasks, seeds, cs, grid))[i::n])
    if a.fresh and cache.exists(): cache.unlink()
    cache.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, __file__, '--tasks', a.tasks, '--seeds', str(a.seeds), '--cooldowns', a.cooldowns,
                               '--grid', a.grid, '--cache', a.cache, '--shard', f'{i}/{a.jobs}']) for i in range(a.jobs)]
    for pr in procs: pr.wait()
    rows = [json.loads(l) for l in cache.read_text().splitlines()]
    table,ok,ok_oracle = report(rows, tasks, seeds, cs)
    print(f"\nAnytime (stable + cooldown branches) vs separate fit_cos_anneal runs, {len(seeds)} seeds, CPU ({os.cpu_count()} cores), "
          f"read by torch {torch.__version__}, {time.perf_counter()-start:.0f} s")
    print(summary([r for r in rows if r['task'] in tasks]))
    print(table)
    print(f"goal met on {sum(ok)} of {len(ok)} rows; against each budget's grid oracle (lr marked ! at the grid's edge): "
          f"{sum(ok_oracle)} of {len(ok_oracle)}")

if __name__ == '__main__': main()
