"""Does the gradient noise scale tell which way `lr='auto'` misses? A pre-registered screen (sixteenth session of issue 12).

Hypothesis (McCandlish et al. 2018, "An Empirical Model of Large-Batch Training"): when training is noise-dominated (B_simple =
tr(Sigma)/|G|^2 large against the batch size B) the best lr falls with the horizon, so short trials over-shoot; when it is
curvature-dominated it hardly moves. Target per combination of `bench_autolr_budget.py` (52: 24 design rows, 28 held out), seed 0,
budget 0.25: y = log2(grid best lr / the tuner's cached pick), positive when the tuner undershoots. Declared before y was read:
the primary feature is log2(B_simple/B) after a warm-in (the fit's first 5% at a constant lr, the tuner's pick: the stability
probe already runs there); it counts only if its Spearman rho has the same sign on the design and the held-out rows and |rho| >= 0.4
on both; a correction is then fitted on the design rows only and judged on the held-out ones. Secondary features: B_simple/B at
init, the rung-1 generalisation gap at the pick, passes over the data, pick/top, the rung-1 score curvature.

Estimator (McCandlish et al. App. A, B_small = B, B_big = K*B): the loss gradients g_1..g_K of K = min(32, full batches per epoch)
consecutive full training batches of one epoch, through the learner's own loop (callbacks, train mode; the step skipped):
   |G_small|^2 = mean_k |g_k|^2,  |G_big|^2 = |mean_k g_k|^2,  s2 = K/(K-1) (|G_small|^2 - |G_big|^2)
   |G|^2 = |G_big|^2 - (1 - K/nb) s2/K  (finite population: K of nb batches),  tr(Sigma) = B s2 (N-1)/(N-B),  B_simple = tr/|G|^2

    python benchmarks/bench_autolr_noise.py             # the report, from the cache (a few seconds)
    python benchmarks/bench_autolr_noise.py --measure   # fills the cache first (~7 minutes, one core)

Cache: `benchmarks/results/autolr_noise.jsonl`. One torch thread.
"""
import os, sys, json, math, time, argparse, warnings, statistics as st
os.environ.setdefault('OMP_NUM_THREADS', '1')
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np, torch
torch.set_num_threads(1)
import fastai_anneal.all  # noqa: F401, the Learner patches
from fastai.callback.core import Callback, CancelFitException, CancelStepException
from fastai_anneal.snapshot import LearnerSnapshot
import bench_autolr_budget as H
from _provenance import stamp

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'results', 'autolr_noise.jsonl')
KMAX, WARM = 32, 0.05

class GradCollect(Callback):
    "Collect each training batch's loss gradient (flattened, float64) before the step, skip the step; stop after `k` full batches"
    order = 99
    def __init__(self, k, bs): self.k,self.bs,self.grads,self.losses = k,bs,[],[]
    def before_step(self):
        if len(self.yb[0]) != self.bs: raise CancelStepException()  # a partial batch: not counted
        ps = [p for p in self.learn.model.parameters() if p.requires_grad]
        g = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).detach().reshape(-1).double() for p in ps])
        self.grads.append(g); self.losses.append(float(self.learn.loss.detach()))
        if len(self.grads) >= self.k: raise CancelFitException()
        raise CancelStepException()

class StopAfter(Callback):
    order = 99
    def __init__(self, n): self.n,self.i,self.losses = n,0,[]
    def after_batch(self):
        if not self.training: return
        self.i += 1; self.losses.append(float(self.learn.loss.detach()))
        if self.i >= self.n: raise CancelFitException()

def noise_scale(grads, B, nb):
    K = len(grads)
    G = torch.stack(grads)
    small = float((G*G).sum(1).mean()); m = G.mean(0); big = float((m*m).sum())
    s2 = K/(K-1)*(small - big)
    g2 = big - (1 - K/nb)*s2/K
    N = nb*B
    tr = B*s2*(N-1)/(N-B)
    return dict(tr_sigma=tr, g2=g2, B_simple=(tr/g2 if g2 > 0 else math.inf), K=K)

def measure(learn, B, nb):
    "B_simple on `learn` as it is (restored afterwards): K full batches of one epoch; also each half's estimate (its noise)"
    K = min(KMAX, nb)
    cb = GradCollect(K, B)
    with LearnerSnapshot(learn), learn.no_bar(), learn.no_logging(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        learn.fit(1, lr=1e-3, cbs=cb)
    r = noise_scale(cb.grads, B, nb)
    h = len(cb.grads)//2
    r['halves'] = [noise_scale(cb.grads[:h], B, nb)['B_simple'], noise_scale(cb.grads[h:2*h], B, nb)['B_simple']]
    r['loss'] = float(np.mean(cb.losses))
    return r

def rung1_features(res):
    t1 = sorted([t for t in res.trials if t['rung'] == 1], key=lambda t: t['lr'])
    near = min(t1, key=lambda t: abs(math.log2(t['lr']/res.scale)))
    tr = float(np.mean(near['losses'][-max(1, len(near['losses'])//4):]))
    gap = near['score']/tr - 1 if math.isfinite(near['score']) and tr > 0 else math.inf  # score = valid_loss (monitor default)
    fin = [t for t in t1 if math.isfinite(t['score'])]
    curv = math.nan
    if len(fin) >= 3:
        i = min(max(min(range(len(fin)), key=lambda j: fin[j]['score']), 1), len(fin)-2)
        a,b,c = fin[i-1]['score'],fin[i]['score'],fin[i+1]['score']
        curv = (a - 2*b + c)/abs(b)
    return dict(gap=gap, gap_lr=near['lr'], gap_valid=near['score'], gap_train=tr, curv=curv,
                r1=[(t['lr'], t['score']) for t in t1])

def one(name, C, cached):
    _,make,fit,args,kw,score = C[name]
    t0 = time.perf_counter()
    learn = make(0)
    with warnings.catch_warnings(), learn.no_bar(), learn.no_logging():
        warnings.simplefilter('ignore')
        res = learn.lr_tune(*args, fit=fit, budget=0.25, **kw)
    nb_all = len(learn.dls.train)
    rec = dict(name=name, set=C[name][0], pick=res.scale, cached_pick=cached['lr'], top=res.top, rule=res.rule,
               n_steps=res.n_steps, passes=res.n_steps/nb_all, pick_top=res.scale/res.top, **rung1_features(res))
    t1 = time.perf_counter()
    learn = make(0)  # fresh: nothing of the tuning
    dl = learn.dls.train
    B = dl.bs; nb = len(dl.dataset)//B
    rec.update(B=B, nb=nb, N=len(dl.dataset))
    rec['init'] = measure(learn, B, nb)
    n_warm = max(1, round(WARM*res.n_steps))
    stop = StopAfter(n_warm)
    with learn.no_bar(), learn.no_logging(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        learn.fit(math.ceil(n_warm/nb_all) + 1, lr=res.scale, cbs=stop)
    wl = stop.losses
    rec.update(n_warm=n_warm, warm_loss_first=float(np.mean(wl[:max(1, len(wl)//8)])),
               warm_loss_last=float(np.mean(wl[-max(1, len(wl)//8):])), warm_finite=bool(np.isfinite(wl).all()))
    rec['warm'] = measure(learn, B, nb) if rec['warm_finite'] else None
    rec.update(tune_s=t1 - t0, measure_s=time.perf_counter() - t1)
    return rec


def report():
    "The table, each feature's Spearman rho with y (design rows, held-out rows), and a correction for any feature that passes"
    from scipy.stats import spearmanr
    C, G = H.combos(), H.grids()
    cached = {r['name']: r for r in map(json.loads, open(H.CACHE)) if r['budget'] == 0.25}
    rows = {r['name']: r for r in map(json.loads, open(OUT))}

    def best_lr(n):
        g = G[n]; return (min if H.lower(C[n][5]) else max)(g, key=g.get)

    def lg(v): return math.log2(v) if v > 0 and math.isfinite(v) else (math.inf if v == math.inf or v <= 0 else math.nan)

    # features: name -> value; ratios in log2 (Spearman does not care; the correction's fit does)
    def feats(r):
        B = r['B']
        w = r['warm']['B_simple'] if r['warm'] else math.nan
        return {'log2 Bs/B warm (primary)': lg(w/B) if math.isfinite(w) else (math.inf if w == math.inf else math.nan),
                'log2 Bs/B init': lg(r['init']['B_simple']/B),
                'log2 Bs warm (abs)': lg(w) if math.isfinite(w) else math.nan,
                'gap (rung-1 valid/train - 1)': r['gap'],
                'log2 passes': math.log2(r['passes']),
                'log2 pick/top': math.log2(r['pick_top']),
                'rung-1 curvature': r['curv']}

    names = [n for s in ('bench', 'sweep', 'heldout3') for n in C if C[n][0] == s and n in rows]
    y = {n: math.log2(best_lr(n)/cached[n]['lr']) for n in names}
    F = {n: feats(rows[n]) for n in names}
    design = [n for n in names if C[n][0] == 'bench']
    held = [n for n in names if C[n][0] != 'bench']
    print(f"rows: design {len(design)}, held-out {len(held)}; picks reproduced: "
          f"{sum(abs(math.log2(rows[n]['pick']/cached[n]['lr'])) < 1e-6 for n in names)}/{len(names)}")

    print(f"\n{'name':<32}{'set':<9}{'y':>6}{'Bs init':>9}{'Bs warm':>9}{'B':>6}{'Bs/B w':>8}{'halves':>16}{'gap':>7}{'passes':>7}"
          f"{'pick/top':>9}{'curv':>7}")
    for n in names:
        r = rows[n]; w = r['warm']
        ws = f"{w['B_simple']:.4g}" if w else 'nan'
        hv = '/'.join(f"{h:.3g}" for h in w['halves']) if w else ''
        print(f"{n:<32}{C[n][0]:<9}{y[n]:>+6.2f}{r['init']['B_simple']:>9.4g}{ws:>9}{r['B']:>6}"
              f"{(w['B_simple']/r['B'] if w else math.nan):>8.3g}{hv:>16}{r['gap']:>7.3f}{r['passes']:>7.1f}{r['pick_top']:>9.3f}{r['curv']:>7.3f}")

    def rho(ns, k):
        xs = [F[n][k] for n in ns]; ys = [y[n] for n in ns]
        ok = [(a, b) for a, b in zip(xs, ys) if not (isinstance(a, float) and math.isnan(a))]
        x_ = [a if math.isfinite(a) else (1e9 if a > 0 else -1e9) for a, _ in ok]  # inf ranks at the top
        res = spearmanr(x_, [b for _, b in ok])
        return res.statistic, res.pvalue, len(ok)

    print(f"\nSpearman rho with y = log2(grid best / pick) (positive y: the tuner undershoots)")
    print(f"{'feature':<32}{'design rho':>11}{'p':>7}{'n':>4}{'held rho':>10}{'p':>7}{'n':>4}{'all rho':>9}  passes test")
    passing = []
    for k in F[names[0]]:
        d, h, a = rho(design, k), rho(held, k), rho(names, k)
        ok = (np.sign(d[0]) == np.sign(h[0])) and abs(d[0]) >= 0.4 and abs(h[0]) >= 0.4
        if ok: passing.append(k)
        print(f"{k:<32}{d[0]:>+11.2f}{d[1]:>7.3f}{d[2]:>4}{h[0]:>+10.2f}{h[1]:>7.3f}{h[2]:>4}{a[0]:>+9.2f}  {'YES' if ok else 'no'}")

    def summary(ns, lrs): return H.summary([H.judge(n, lrs[n], C, G) for n in ns])

    print("\nuncorrected picks:")
    for lab, ns in (('design', design), ('held-out', held)): print(f"  {lab:<9} {summary(ns, {n: cached[n]['lr'] for n in ns})}")
    for k in passing:
        xs = np.array([F[n][k] for n in design], dtype=float); ys = np.array([y[n] for n in design])
        m = np.isfinite(xs)
        a, b = np.polyfit(xs[m], ys[m], 1)
        print(f"\ncorrection on '{k}' (fitted on the design rows only): pick x 2^({a:+.3f} * f {b:+.3f})")
        for lab, ns in (('design', design), ('held-out', held)):
            lrs = {n: cached[n]['lr']*2**(a*F[n][k] + b) if math.isfinite(F[n][k]) else cached[n]['lr'] for n in ns}
            print(f"  {lab:<9} {summary(ns, lrs)}")
    if not passing: print("\nno feature passes the pre-registered test: no correction fitted")

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--measure', action='store_true', help="measure what the cache lacks first (~8 s a combination)")
    p.add_argument('--only', default='', help="with --measure: these combinations only (comma-separated)")
    a = p.parse_args()
    if a.measure:
        C = H.combos()
        cached = {r['name']: r for r in map(json.loads, open(H.CACHE)) if r['budget'] == 0.25}
        done = {json.loads(l)['name'] for l in open(OUT)} if os.path.exists(OUT) else set()
        names = a.only.split(',') if a.only else [n for s in ('bench', 'sweep', 'heldout3') for n in C if C[n][0] == s]
        for name in names:
            if name in done: continue
            r = one(name, C, cached[name])
            r = stamp(r)  # what made the row (the 52 rows cached before the twenty-first session's audit carry none)
            with open(OUT, 'a') as f: f.write(json.dumps(r) + '\n')
            w = r['warm']['B_simple'] if r['warm'] else math.nan
            print(f"{name:<32} pick {r['pick']:.4g} (cache {r['cached_pick']:.4g})  B {r['B']}  Bs init {r['init']['B_simple']:.4g}  "
                  f"warm {w:.4g}  ({r['tune_s']:.0f}+{r['measure_s']:.0f} s)", flush=True)
    report()
