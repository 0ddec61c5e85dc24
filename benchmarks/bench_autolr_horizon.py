"""How far can a short run see? The fit's own first `frac` of batches, uncompressed, at every lr of each combination's grid.

`lr='auto'` ranks lrs by compressed trials (the whole schedule squeezed into about 5% of the fit's batches). Its picks miss the
grid oracle by a factor of 2.7 on average, in both directions, which we read as the trials' horizon. This benchmark checks that
reading against the obvious alternative: run the requested fit itself, uncompressed (its peak lr held, as the fit holds it), for
its first `frac` of batches, at every lr of the combination's grid (the fits of `bench_autolr.py` and `bench_autolr_sweep.py`),
each from the same start (seed 0: same weights, same batches), and rank the lrs by the validation loss at the end (what rung 1
of the tuner scores by default) or by the training loss of the last quarter. If a longer, uncompressed look ranked the lrs as
the full run does, the tuner should spend its budget on it; if it makes the tuner's errors, the horizon is the limit.

Per combination: the grid's best lr (its full-run oracle), the tuner's picks as a factor of it (log2, every cached seed), and
the lr each prefix ranks first (log2 of its factor). Summary: mean |log2 error|, how many are 4x off or more, and the
correlation of the prefix's errors with the tuner's (seed 0).

    python benchmarks/bench_autolr_horizon.py                       # fracs 0.08 and 0.25, all three sets (~15 min on 1 core)
    python benchmarks/bench_autolr_horizon.py --fracs 0.08 --sets design

Reads the grids and the tuner's picks from `results/autolr.jsonl` and `results/autolr_sweep.jsonl` (run those benchmarks first);
caches its own runs in `results/autolr_horizon.jsonl`. One torch thread.
"""
import os, sys, json, math, time, argparse, statistics as st
from collections import defaultdict
os.environ.setdefault('OMP_NUM_THREADS', '1')
import numpy as np, torch
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _provenance import stamp
RES = os.path.join(HERE, 'results')

def combos(sets) -> list:
    "Every combination of `sets`: name, learner factory, fit, args, kwargs, lower-is-better, grid {lr: mean score}, tuner picks"
    from bench_autolr import FITS
    import bench_autolr_sweep as B
    out = []
    if 'design' in sets:
        from autolr_tasks import TASKS, BASE
        rows = [json.loads(l) for l in open(os.path.join(RES, 'autolr.jsonl'))]
        for task,(make,epochs,score) in TASKS.items():
            if task in BASE: continue  # the design rows as they were: no warmup variants
            for sched in ('cos', 'flat'):
                g,picks = defaultdict(list),[]
                for r in rows:
                    if r['task'] == task and r['sched'] == sched:
                        if r['kind'] == 'grid': g[r['lr']].append(r['score'])
                        elif r['kind'] == 'auto': picks.append(r['lr'])
                if g: out.append(dict(name=f'{task}/{sched}', make=make, fit=FITS[sched], args=(epochs,), kw={},
                                      lower='loss' in score or score == 'mse',
                                      grid={lr: st.fmean(v) for lr,v in g.items() if len(v) >= 2}, picks=picks))
    rows = [json.loads(l) for l in open(B.CACHE)]
    from autolr_sweep_tasks import TASKS as T1
    from autolr_heldout3_tasks import TASKS as T3
    for s in ('sweep', 'heldout3'):
        if s not in sets: continue
        for combo in B.SETS[s]:
            task,fit,args,kw,score = B.COMBOS[combo]
            g = defaultdict(list)
            for r in rows:
                if r['combo'] == combo and r['kind'] == 'grid': g[r['lr']].append(r['score'])
            picks = [r['lr'] for r in rows if r['combo'] == combo and r['kind'] == 'auto']
            out.append(dict(name=combo, make={**T1, **T3}[task], fit=fit, args=args, kw=kw, lower=B.lower(score),
                            grid={lr: st.fmean(v) for lr,v in g.items() if len(v) >= 2}, picks=picks))
    return out

def prefixes(c:dict, frac:float) -> dict:
    "The fit's first `frac` of batches at each grid lr, from seed 0's start: {lr: (valid_loss, train loss of the last quarter)}"
    import fastai_anneal.all  # noqa: F401
    from fastai_anneal import tune as T
    from fastai_anneal.snapshot import LearnerSnapshot
    learn = c['make'](0)
    p = T._plan_call(learn, c['fit'], c['args'], c['kw'])
    n = max(1, round(frac*p['n_steps']))
    res = {}
    with learn.no_bar(), learn.no_logging():
        for lr in sorted(c['grid']):
            with LearnerSnapshot(learn):
                losses,div,valid = T._run_phases(learn, T._prefix(p['plan'](lr, 1.), n), p['cbs'], p['wd'], True, p['reset_opt'])
            tr = float(np.mean(losses[-max(1, len(losses)//4):])) if losses and not div else math.inf
            vl = float(valid['valid_loss']) if valid and not div else math.inf
            res[lr] = (vl if math.isfinite(vl) else math.inf, tr if math.isfinite(tr) else math.inf)
    return dict(n_steps=p['n_steps'], n_prefix=n, scores=res)

def log2_err(lr, best): return math.log2(lr/best)

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--fracs', type=float, nargs='+', default=[0.08, 0.25], help="prefix lengths, fractions of the fit (default 0.08 0.25)")
    p.add_argument('--sets', default='design,sweep,heldout3', help="combinations: design (bench_autolr), sweep, heldout3")
    p.add_argument('--cache', default=os.path.join(RES, 'autolr_horizon.jsonl'))
    a = p.parse_args()
    torch.set_num_threads(1)
    cache = {}
    if os.path.exists(a.cache):
        for l in open(a.cache): r = json.loads(l); cache[(r['name'], r['frac'])] = r
    cs = combos(a.sets.split(','))
    for c in cs:
        for f in a.fracs:
            if (c['name'], f) in cache: continue
            t = time.perf_counter()
            r = dict(name=c['name'], frac=f, **prefixes(c, f))
            r['scores'] = {repr(k): v for k,v in r['scores'].items()}
            r['time_s'] = time.perf_counter() - t
            with open(a.cache, 'a') as fh: fh.write(json.dumps(stamp(r)) + '\n')
            cache[(c['name'], f)] = r
            print(f"ran {c['name']} frac {f}: {r['n_prefix']} of {r['n_steps']} batches x {len(c['grid'])} lrs, {r['time_s']:.0f}s",
                  flush=True)
    print(f"{'combination':32s} {'batches':>7s} {'oracle':>7s}  tuner picks (log2 x oracle)  " +
          '  '.join(f"prefix {f:g}: valid/train" for f in a.fracs))
    errs = defaultdict(list)
    for c in cs:
        best = (min if c['lower'] else max)(c['grid'], key=c['grid'].get)
        tun = [log2_err(x, best) for x in c['picks']]
        line = f"{c['name']:32s} {cache[(c['name'], a.fracs[0])]['n_steps']:7d} {best:7.3g}  {' '.join(f'{e:+5.1f}' for e in tun):27s}"
        errs['tuner'] += tun
        if tun: errs['tuner seed 0'].append(tun[0])
        for f in a.fracs:
            sc = {float(k): v for k,v in cache[(c['name'], f)]['scores'].items()}
            for i,kind in enumerate(('valid', 'train')):
                e = log2_err(min(sc, key=lambda lr: sc[lr][i]), best)
                errs[f'prefix {f:g} {kind}'].append(e)
                if kind == 'valid' and tun: errs[f'prefix {f:g} valid (with seed 0)'].append((tun[0], e))
            line += f"  {errs[f'prefix {f:g} valid'][-1]:+5.0f} / {errs[f'prefix {f:g} train'][-1]:+3.0f}      "
        print(line)
    print(f"\nsummary over {len(cs)} combinations (errors in log2 of the factor to the oracle; grid lrs are factor-2 apart)")
    for k,v in errs.items():
        if 'with seed 0' in k:
            t,e = np.array(v).T
            print(f"  {k[:-len(' (with seed 0)')]:24s} correlation with the tuner's seed-0 error: {np.corrcoef(t, e)[0,1]:.2f}")
        else:
            v = np.array(v)
            print(f"  {k:24s} mean |err| {np.abs(v).mean():.2f}  mean err {v.mean():+.2f}  "
                  f"4x off or more: {(np.abs(v) >= 2).sum()} of {len(v)}")

if __name__ == '__main__': main()
