"""A margin below the range test's top, pre-registered and screened on a fourth held-out set (sixteenth session of issue 12).

Rule under test: after the whole tuner (range test, rungs, margin, ceiling, stability probe), a pick at or above `THR` x the range
test's `top` is divided by `SHRINK`. Mechanism: `top` stands near the short-horizon stability edge; a fit 20-40x longer than the
trials sharpens as it trains (progressive sharpening, Cohen et al. 2021) and pays late for a pick that close. (THR, SHRINK) =
(0.3, 1.5) were chosen on the 52 old combinations (seed 0 picks of `bench_autolr_budget.py`), so those rows are not evidence.
Written down before the fourth set (`autolr_heldout4_tasks.py`) ran: adopt only if, on its 8 combinations x seeds 0-1, the mean
goal units improve, the catastrophic count does not rise and no combination falls from ok or marginal to catastrophic.
Every pick is read off its combination's grid (mean over seeds, linear in log2 lr), as the budget screen reads them.

    python benchmarks/bench_autolr_near_top.py     # from the caches of bench_autolr_budget.py and bench_autolr_sweep.py, 2 s
"""
import os, sys, json
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_autolr_budget as H, bench_autolr_sweep as B
THR,SHRINK = 0.3,1.5

def shrink(lr:float, top:float) -> float: return lr/SHRINK if lr >= THR*top else lr

if __name__ == '__main__':
    G = H.grids()
    C = H.combos()
    old = {r['name']: r for r in map(json.loads, open(H.CACHE)) if r['budget'] == 0.25}
    print("the 52 old combinations, seed 0 (the rule was chosen on them):")
    for s in ('bench', 'sweep', 'heldout3'):
        ns = [n for n in C if C[n][0] == s and n in old]
        now = [H.judge(n, old[n]['lr'], C, G) for n in ns]
        new = [H.judge(n, shrink(old[n]['lr'], old[n]['top']), C, G) for n in ns]
        print(f"  {s:<9} now: {H.summary(now)}\n  {'':<9} rule: {H.summary(new)}  ({sum(shrink(old[n]['lr'], old[n]['top']) != old[n]['lr'] for n in ns)} picks moved)")
    C4 = {n: (None,)*5 + (B.HELDOUT4[n][4],) for n in B.HELDOUT4}
    rows = [json.loads(l) for l in open(B.CACHE)]
    autos = [r for r in rows if r['combo'] in B.HELDOUT4 and r['kind'] == 'auto' and r['seed'] in (0, 1)]
    print(f"\nthe fourth held-out set ({len(B.HELDOUT4)} combinations x seeds 0-1, {len(autos)} picks):")
    for r in sorted(autos, key=lambda r: (list(B.HELDOUT4).index(r['combo']), r['seed'])):
        a,b = H.judge(r['combo'], r['lr'], C4, G),H.judge(r['combo'], shrink(r['lr'], r['top']), C4, G)
        print(f"  {r['combo']:<22} seed {r['seed']}  pick {r['lr']:.3g} = {r['lr']/r['top']:.2f} x top  now {a[2]:<12} rule {b[2]}")
    now = [H.judge(r['combo'], r['lr'], C4, G) for r in autos]
    new = [H.judge(r['combo'], shrink(r['lr'], r['top']), C4, G) for r in autos]
    print(f"  now:  {H.summary(now)}\n  rule: {H.summary(new)}")
