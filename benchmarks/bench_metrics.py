"""Streaming metrics against fastai's, measured in the same process: `python benchmarks/bench_metrics.py [--quick]`.

1. `accumulate` cost per batch: our `Accuracy` / fastai's `AvgMetric(accuracy)` (how `Learner(metrics=accuracy)` wraps
   it), both fed through the same fake `learn` (`pred`, `yb`, `to_detach`), median of repeated timings. Goal <= 1.
2. Memory of balanced accuracy over N predictions: our `BalancedAccuracy` / fastai's `BalancedAccuracy` (`AccumMetric`
   + sklearn). Two honest measures, each in a fresh process per (metric, N): the bytes of the tensors the metric holds
   after accumulating (storage accounting), and the peak resident memory (VmHWM, reset through /proc/self/clear_refs)
   above the baseline while accumulating and computing `value`. Goal: ours flat in N.
"""
import json, os, re, statistics, subprocess, sys, time
from functools import partial
from types import SimpleNamespace
import torch

def _timings(quick):
    from fastai.learner import AvgMetric
    from fastai.metrics import accuracy, top_k_accuracy, BalancedAccuracy as FastaiBalancedAccuracy
    from fastai.torch_core import to_detach
    from fastai_anneal.metrics import Accuracy, BalancedAccuracy
    cases = [  # name, pred shape, n_classes, ours, fastai's
        ('accuracy (64, 10)', (64, 10), 10, lambda: Accuracy(), lambda: AvgMetric(accuracy)),
        ('accuracy (256, 1000)', (256, 1000), 1000, lambda: Accuracy(), lambda: AvgMetric(accuracy)),
        ('top-5 accuracy (64, 100)', (64, 100), 100, lambda: Accuracy(top_k=5), lambda: AvgMetric(partial(top_k_accuracy, k=5))),
        ('accuracy axis=1 (8, 21, 64, 64)', (8, 21, 64, 64), 21, lambda: Accuracy(axis=1), lambda: AvgMetric(partial(accuracy, axis=1))),
        ('balanced accuracy (64, 10)', (64, 10), 10, lambda: BalancedAccuracy(), lambda: FastaiBalancedAccuracy()),
    ]
    n_batches,n_rep = (20, 7) if quick else (50, 31)
    rows = []
    for name,shape,n_cls,ours,theirs in cases:
        g = torch.Generator().manual_seed(0)
        tshape = shape[:1] + shape[2:]
        batches = [(torch.randn(shape, generator=g), torch.randint(0, n_cls, tshape, generator=g)) for _ in range(n_batches)]
        def per_batch(metric):
            metric.reset()
            learn = SimpleNamespace(to_detach=to_detach, dl=None)
            t0 = time.perf_counter()
            for pred,targ in batches:
                learn.pred,learn.yb,learn.y = pred,(targ,),targ
                metric.accumulate(learn)
            return (time.perf_counter() - t0) / len(batches)
        ms = dict(ours=ours(), fastai=theirs())
        for m in ms.values(): per_batch(m)  # warm-up
        ts = {k:[] for k in ms}
        for _ in range(n_rep):
            for k,m in ms.items(): ts[k].append(per_batch(m))  # interleaved: drift hits both alike
        med = {k:statistics.median(v) for k,v in ts.items()}
        rows.append(dict(case=name, ours_us=med['ours']*1e6, fastai_us=med['fastai']*1e6, ratio=med['ours']/med['fastai']))
    return rows

def _kib(key): return int(re.search(key + r':\s+(\d+) kB', open('/proc/self/status').read()).group(1))

def _held_bytes(tensors):
    "Bytes of the distinct storages behind `tensors`"
    seen = {}
    for t in tensors:
        if isinstance(t, torch.Tensor): seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
    return sum(seen.values())

def _memory_child(which, n, n_cls=10, bs=256):
    "One measurement, in this (fresh) process: accumulate `n` predictions into `which` metric, then `value`"
    from fastai.metrics import BalancedAccuracy as FastaiBalancedAccuracy
    from fastai.torch_core import to_detach
    from fastai_anneal.metrics import BalancedAccuracy
    g = torch.Generator().manual_seed(0)
    metric = BalancedAccuracy() if which == 'ours' else FastaiBalancedAccuracy()
    metric.reset()
    learn = SimpleNamespace(to_detach=to_detach, dl=None)
    learn.pred = torch.randn(bs, n_cls, generator=g); learn.y = torch.randint(0, n_cls, (bs,), generator=g); learn.yb = (learn.y,)
    metric.accumulate(learn); metric.value; metric.reset()  # code pages, allocator and lazy imports warmed up before the baseline
    with open('/proc/self/clear_refs', 'w') as f: f.write('5')  # reset the peak (VmHWM) to the current RSS
    base = _kib('VmRSS')
    for i in range(0, n, bs):  # fresh tensors per batch, as a DataLoader yields them
        b = min(bs, n - i)
        learn.pred = torch.randn(b, n_cls, generator=g); learn.y = torch.randint(0, n_cls, (b,), generator=g); learn.yb = (learn.y,)
        metric.accumulate(learn)
    held = _held_bytes(metric.preds + metric.targs if which == 'fastai' else metric._state.values())
    value = float(metric.value)
    print(json.dumps(dict(which=which, n=n, held_bytes=held, peak_rss_kib=_kib('VmHWM') - base, value=value)))

def _memory(ns):
    rows = []
    for n in ns:
        for which in ('ours', 'fastai'):
            out = subprocess.run([sys.executable, __file__, '--memory-child', which, str(n)], capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return rows

def main(quick=False):
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print("\naccumulate cost per batch (median), ours / fastai's (goal <= 1.0)")
    for r in _timings(quick): print(f"  {r['case']:34s} ours {r['ours_us']:9.1f} us   fastai {r['fastai_us']:9.1f} us   ratio {r['ratio']:.3f}")
    ns = [10**4, 10**5] if quick else [10**4, 10**5, 10**6]
    rows = _memory(ns)
    print("\nbalanced accuracy memory over N predictions (C=10, bs=256): held tensor bytes, peak RSS above baseline")
    by = {(r['which'], r['n']):r for r in rows}
    for n in ns:
        o,f = by['ours', n],by['fastai', n]
        assert abs(o['value'] - f['value']) <= 1e-12, (o, f)  # same number, or the comparison is moot
        print(f"  N={n:>8,d}  ours held {o['held_bytes']:>10,d} B  peak {o['peak_rss_kib']:>7,d} KiB   "
              f"fastai held {f['held_bytes']:>10,d} B  peak {f['peak_rss_kib']:>7,d} KiB   held ratio {o['held_bytes']/f['held_bytes']:.2e}")
    lo,hi = by['ours', ns[0]],by['ours', ns[-1]]
    print(f"  ours held bytes N={ns[-1]:,d} / N={ns[0]:,d}: {hi['held_bytes']/lo['held_bytes']:.3f} (flat = 1)")

if __name__ == '__main__':
    if sys.argv[1:2] == ['--memory-child']: _memory_child(sys.argv[2], int(sys.argv[3]))
    else: main(quick='--quick' in sys.argv)
