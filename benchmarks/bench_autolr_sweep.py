"""`lr='auto'` on held-out task families, 2 seeds: a search for failures. Three sets, each written by a reviewer (a helper agent):
twelve families, 17 task x fit combinations (`autolr_sweep_tasks.py`), then seven more, 11 combinations
(`autolr_heldout3_tasks.py`, `--combos` of `HELDOUT3`), both asked to break `'auto'`; then a fourth, never seen before its runs,
to test a change honestly: six families, 8 combinations (`autolr_heldout4_tasks.py`, `--combos` of `HELDOUT4`).

Per combination: `lr='auto'` on each seed (the lr it picked, its rule, its score), then a factor-2 grid of fixed lrs (1e-3 * 2^k)
around the picks, grown until the grid's best (mean over the seeds) is bracketed on both sides. The table gives the gap of 'auto'
to the grid's best (points of the metric, or % of a loss) and how far its pick lies from the best lr (a factor). A combination is
`ok` when it meets the issue's goal (within 0.5 point of the grid's best, 1% of a loss), `marginal` within 1 point (2%), `miss`
within 2 points (3%), `catastrophic` beyond.

    python benchmarks/bench_autolr_sweep.py                    # the table from the cache, running what it lacks (~1 h on 2 cores)
    python benchmarks/bench_autolr_sweep.py --rerun-auto       # 'auto' again with the package as it is now (the grid is kept)
    python benchmarks/bench_autolr_sweep.py --before FILE      # a column with an earlier method's 'auto' rows (a cache file)
    python benchmarks/bench_autolr_sweep.py --valley           # and fastai's range-test `valley` on the same fit, each seed
    PYTHONPATH=OLD_CHECKOUT python benchmarks/bench_autolr_sweep.py --cache FILE   # an earlier method's rows into FILE

One torch thread per process. The cache is `benchmarks/results/autolr_sweep.jsonl`; a fixed-lr run does not depend on the method,
so `--rerun-auto` replaces only the 'auto' rows.
"""
import os, sys, json, math, time, argparse, statistics as st, warnings
os.environ.setdefault('OMP_NUM_THREADS', '1')
import torch
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _provenance import stamp

# combination: (task, fit, args before the lr, kwargs, score)
COMBOS = {
    'bc_rmsprop/cos':               ('bc_rmsprop', 'fit_cos_anneal', (12,), {}, 'valid_loss'),
    'bc_rmsprop/cos_long':          ('bc_rmsprop', 'fit_cos_anneal', (30,), {}, 'valid_loss'),
    'wine_sgd/cos':                 ('wine_sgd', 'fit_cos_anneal', (30,), {}, 'valid_loss'),
    'digits_mlp_lamb/cos':          ('digits_mlp_lamb', 'fit_cos_anneal', (6,), {}, 'accuracy'),
    'digits_mlp_lamb/cos_long':     ('digits_mlp_lamb', 'fit_cos_anneal', (20,), {}, 'accuracy'),
    'digits_mlp_lamb/one_cycle_long': ('digits_mlp_lamb', 'fit_one_cycle', (20,), {}, 'accuracy'),
    'diabetes_adamw/flat':          ('diabetes_adamw', 'fit_flat_anneal', (24,), {}, 'valid_loss'),
    'multilabel/one_cycle':         ('multilabel', 'fit_one_cycle', (6,), {}, 'accuracy_multi'),
    'imbalanced_bn/sgdr':           ('imbalanced_bn', 'fit_sgdr_anneal', (3, 2), {}, 'accuracy'),
    'seq_lstm/cos_wu':              ('seq_lstm', 'fit_cos_anneal', (3,), dict(pct_warmup=0.1), 'accuracy'),
    'motif_conv_sgdm/flat':         ('motif_conv_sgdm', 'fit_flat_anneal', (5,), {}, 'accuracy'),
    'motif_conv_sgdm/flat_long':    ('motif_conv_sgdm', 'fit_flat_anneal', (12,), {}, 'accuracy'),
    'bag_emb_radam/cos':            ('bag_emb_radam', 'fit_cos_anneal', (3,), {}, 'accuracy'),
    'tab_bigbs/cos':                ('tab_bigbs', 'fit_cos_anneal', (24,), {}, 'accuracy'),
    'tab_bigbs/flat':               ('tab_bigbs', 'fit_flat_anneal', (24,), {}, 'accuracy'),
    'mnist1d_rmsprop/flat':         ('mnist1d_rmsprop', 'fit_flat_anneal', (2,), {}, 'accuracy'),
    'sparse_reg_sgdm/cos':          ('sparse_reg_sgdm', 'fit_cos_anneal', (4,), {}, 'valid_loss'),
}
# the third held-out set (`autolr_heldout3_tasks.py`, seven families, written after the method's fifth revision: its first runs were
# of commit 121669c's method)
HELDOUT3 = {
    'dae_digits/cos':               ('dae_digits', 'fit_cos_anneal', (10,), {}, 'valid_loss'),
    'quant_ls/flat':                ('quant_ls', 'fit_flat_anneal', (4,), {}, 'accuracy'),
    'm1d_resmlp/cos_wu':            ('m1d_resmlp', 'fit_cos_anneal', (6,), dict(pct_warmup=0.05), 'accuracy'),
    'tab_reg/cos':                  ('tab_reg', 'fit_cos_anneal', (5,), {}, 'mse'),
    'ts_gn_adamw/flat_ps05':        ('ts_gn_adamw', 'fit_flat_anneal', (3,), dict(pct_start=0.5), 'accuracy'),
    'shapes_nest/cos':              ('shapes_nest', 'fit_cos_anneal', (3,), {}, 'accuracy'),
    'tok_lm/cos':                   ('tok_lm', 'fit_cos_anneal', (2,), {}, 'valid_loss'),
    'm1d_resmlp/sgdr':              ('m1d_resmlp', 'fit_sgdr_anneal', (3, 1), {}, 'accuracy'),
    'quant_ls/cos_wu':              ('quant_ls', 'fit_cos_anneal', (4,), dict(pct_warmup=0.05), 'accuracy'),
    'tab_reg/flat_ps05':            ('tab_reg', 'fit_flat_anneal', (5,), dict(pct_start=0.5), 'mse'),
    'ts_gn_adamw/cos':              ('ts_gn_adamw', 'fit_cos_anneal', (3,), {}, 'accuracy'),
}
# the fourth held-out set (`autolr_heldout4_tasks.py`, six families, every task written before any of its runs)
HELDOUT4 = {
    'hastie_bn_sgdm/flat':          ('hastie_bn_sgdm', 'fit_flat_anneal', (5,), {}, 'accuracy'),
    'dyck_attn/cos_wu':             ('dyck_attn', 'fit_cos_anneal', (3,), dict(pct_warmup=0.05), 'accuracy'),
    'collab_mf/flat':               ('collab_mf', 'fit_flat_anneal', (2,), {}, 'valid_loss'),
    'adding_gru/cos':               ('adding_gru', 'fit_cos_anneal', (3,), {}, 'valid_loss'),
    'swissroll_huber/cos':          ('swissroll_huber', 'fit_cos_anneal', (2,), {}, 'valid_loss'),
    'm1d_ranger/flat':              ('m1d_ranger', 'fit_flat_anneal', (6,), {}, 'accuracy'),
    'hastie_bn_sgdm/cos':           ('hastie_bn_sgdm', 'fit_cos_anneal', (3,), {}, 'accuracy'),
    'dyck_attn/flat':               ('dyck_attn', 'fit_flat_anneal', (3,), {}, 'accuracy'),
}
SETS = {'sweep': list(COMBOS), 'heldout3': list(HELDOUT3), 'heldout4': list(HELDOUT4)}
COMBOS = {**COMBOS, **HELDOUT3, **HELDOUT4}
CACHE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'results', 'autolr_sweep.jsonl')

def lower(score): return 'loss' in score or score == 'mse'
def glr(k): return 1e-3 * 2. ** k

def run(combo:str, kind:str, seed:int, lr=None) -> dict:
    ("One run: kind 'auto' (the fit tuned and run by `Learner.fit_tuned`, fastai's `fit_one_cycle` too), 'grid' (the fit at `lr`) "
     "or 'valley' (the fit at `lr_find().valley`, the range test run on the seed's learner, which it restores)")
    import fastai_anneal.all  # noqa: F401, the Learner patches
    from autolr_sweep_tasks import TASKS
    from autolr_heldout3_tasks import TASKS as TASKS3
    from autolr_heldout4_tasks import TASKS as TASKS4
    TASKS = {**TASKS, **TASKS3, **TASKS4}
    torch.set_num_threads(1)
    task,fit,args,kw,score = COMBOS[combo]
    learn = TASKS[task](seed)
    rec = dict(combo=combo, kind=kind, seed=seed, lr=lr)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as ws, learn.no_bar(), learn.no_logging():
        warnings.simplefilter('always')
        if kind == 'auto':
            learn.fit_tuned(*args, fit=fit, **kw)  # `fit(*args, 'auto', **kw)` for the package's fits; fastai's too, watched
            res = learn.lr_tune_result
            rec.update(lr=res.scale, rule=res.rule, top=res.top, cost=res.cost, n_steps=res.n_steps,
                       probes=[dict(lr=p['lr'], unstable=p['unstable']) for p in res.probes])
        else:
            if kind == 'valley':
                rec['lr'] = lr = float(learn.lr_find(show_plot=False).valley)
                if not math.isfinite(lr): raise RuntimeError(f"{combo}, seed {seed}: lr_find found no valley ({lr})")
            getattr(learn, fit)(*args, lr, **kw)
    rec['warnings'] = sorted({str(w.message).split(';')[0] for w in ws if 'lr=' in str(w.message)})
    names = learn.recorder.metric_names[1:-1]
    v = float(learn.recorder.values[-1][names.index(score)])
    rec['score'] = v if math.isfinite(v) else (math.inf if lower(score) else 0.)
    rec['time_s'] = time.perf_counter() - t0
    return rec

class Cache:
    def __init__(self, path=CACHE): self.path,self.rows = path,[json.loads(l) for l in open(path)] if os.path.exists(path) else []
    def find(self, combo, kind, seed, lr=None):
        for r in self.rows:
            if (r['combo'],r['kind'],r['seed']) == (combo,kind,seed) and (kind != 'grid' or abs(math.log2(r['lr']/lr)) < 1e-3): return r
    def get(self, combo, kind, seed, lr=None):
        r = self.find(combo, kind, seed, lr)
        if r is None:
            r = stamp(run(combo, kind, seed, lr))
            self.rows.append(r)
            with open(self.path, 'a') as f: f.write(json.dumps(r) + '\n')
            print(f"  {combo:<32}{kind:<5} seed {seed} lr {r['lr']:.4g} score {r['score']:.4f} ({r['time_s']:.0f} s)", flush=True)
        return r
    def drop_auto(self, combos):
        self.rows = [r for r in self.rows if not (r['kind'] == 'auto' and r['combo'] in combos)]
        with open(self.path, 'w') as f: f.writelines(json.dumps(r) + '\n' for r in self.rows)

def grid(cache, combo, seeds, center):
    "Mean score per lr of a factor-2 grid around `center` (every lr any seed ran), grown while its best is at an edge"
    kc = round(math.log2(center/1e-3))
    done = [round(math.log2(r['lr']/1e-3)) for r in cache.rows if r['combo'] == combo and r['kind'] == 'grid']
    ks = list(range(min([kc-2] + done), max([kc+2] + done) + 1))
    mean = lambda k: st.fmean(cache.get(combo, 'grid', s, glr(k))['score'] for s in seeds)
    pick = min if lower(COMBOS[combo][4]) else max
    for _ in range(7):
        m = {k: mean(k) for k in ks}
        best = pick(m, key=m.get)
        if best == ks[0]: ks.insert(0, ks[0]-1)
        elif best == ks[-1]: ks.append(ks[-1]+1)
        else: break
    return {glr(k): m[k] for k in ks if k in m}

def verdict(gap, lo):
    "The goal (0.5 point, 1% of a loss), then each step twice as far, then beyond 2 points (3%)"
    if gap > 3 if lo else gap < -2: return 'catastrophic'
    if (gap > 2 if lo else gap < -1): return 'miss'
    return 'marginal' if (gap > 1 if lo else gap < -0.5) else 'ok'

def row(combo, g, autos, lo):
    best = (min if lo else max)(g, key=g.get)
    am = st.fmean(a['score'] for a in autos)
    gap = (am - g[best])/g[best]*100 if lo else (am - g[best])*100
    fac = max(max(a['lr']/best, best/a['lr']) for a in autos)
    return best,am,gap,fac,verdict(gap, lo)

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--combos', default=None, help="comma-separated combinations (default: every one of `--sets`)")
    p.add_argument('--sets', default=','.join(SETS), help=f"comma-separated sets of combinations, of {', '.join(SETS)} (default: all)")
    p.add_argument('--seeds', default='0,1')
    p.add_argument('--rerun-auto', action='store_true', help="drop the cached 'auto' rows of these combinations first")
    p.add_argument('--before', default=None, help="a cache file whose 'auto' rows are shown as an earlier method's column")
    p.add_argument('--cache', default=CACHE, help="the cache file (default: benchmarks/results/autolr_sweep.jsonl)")
    p.add_argument('--valley', action='store_true', help="also the same fit at fastai's `lr_find().valley`, each seed (runs what is missing)")
    a = p.parse_args()
    combos = a.combos.split(',') if a.combos else [c for k in a.sets.split(',') for c in SETS[k]]
    seeds,start = [int(s) for s in a.seeds.split(',')],time.time()
    cache = Cache(a.cache)
    if a.rerun_auto: cache.drop_auto(combos)
    before = Cache(a.before) if a.before else None
    print(f"lr='auto' on held-out tasks, seeds {seeds}, CPU ({os.cpu_count()} cores), torch {torch.__version__}")
    counts,by_set = {},{k: {} for k in SETS}
    vcounts,vs_valley = {},{k: [0, 0] for k in SETS}  # the valley's verdicts; per set, combinations where 'auto' ends better, worse
    for combo in combos:
        task,fit,args,kw,score = COMBOS[combo]
        autos = [cache.get(combo, 'auto', s) for s in seeds]
        g = grid(cache, combo, seeds, math.exp(st.fmean(math.log(r['lr']) for r in autos)))
        lo = lower(score)
        best,am,gap,fac,v = row(combo, g, autos, lo)
        counts[v] = counts.get(v, 0) + 1
        for k,names in SETS.items():
            if combo in names: by_set[k][v] = by_set[k].get(v, 0) + 1
        unit = '%' if lo else 'pt'
        print(f"\n{combo}: {fit}{args}{kw or ''}, {autos[0].get('n_steps')} batches, {score}")
        print("  grid   " + ' '.join(f"{lr:.3g}={s:.4g}" for lr,s in g.items()) + f"   best {best:.3g} = {g[best]:.4g}")
        if before:
            olds = [before.find(combo, 'auto', s) for s in seeds]
            if all(olds):
                *_,ogap,ofac,ov = row(combo, g, olds, lo)
                print("  before " + ', '.join(f"{o['lr']:.3g} -> {o['score']:.4g}" for o in olds) + f"   gap {ogap:+.2f}{unit}, x{ofac:.1f}: {ov}")
        print("  auto   " + ', '.join(f"{r['lr']:.3g} -> {r['score']:.4g}" for r in autos) +
              f"   gap {gap:+.2f}{unit}, x{fac:.1f}: {v}   cost {st.fmean(r['cost']/r['n_steps'] for r in autos):.2f}x batches")
        for r in autos: print(f"    seed {r['seed']}: {r['rule']}" + (f"  [{'; '.join(r['warnings'])}]" if r['warnings'] else ''))
        if a.valley:
            vals = [cache.get(combo, 'valley', s) for s in seeds]
            *_,vgap,vfac,vv = row(combo, g, vals, lo)
            vcounts[vv] = vcounts.get(vv, 0) + 1
            for k,names in SETS.items():  # a gap in % of a loss: lower is better; in points: higher (a tie counts as worse)
                if combo in names: vs_valley[k][0 if (gap < vgap if lo else gap > vgap) else 1] += 1
            print("  valley " + ', '.join(f"{r['lr']:.3g} -> {r['score']:.4g}" for r in vals) + f"   gap {vgap:+.2f}{unit}, x{vfac:.1f}: {vv}")
    for k,c in by_set.items():
        if c: print(f"\n{k}: {', '.join(f'{v} {n}' for v,n in sorted(c.items()))} of {sum(c.values())}")
    print(f"\n{', '.join(f'{v} {n}' for v,n in sorted(counts.items()))} of {len(combos)}; {time.time()-start:.0f} s")
    if a.valley:
        b,w = (sum(v[i] for v in vs_valley.values()) for i in (0, 1))
        print(f"the same fits at fastai's valley: {', '.join(f'{v} {n}' for v,n in sorted(vcounts.items()))}; 'auto' ends better on "
              f"{b}, worse on {w} (mean over the seeds; " + ', '.join(f"{k} {v[0]} of {sum(v)}" for k,v in vs_valley.items() if sum(v)) + ")")
