"""Schedule overhead, as ratios against anchors measured in the same process.

1. Time per hyper-parameter update: our builder's lr schedule vs fastai's `combined_cos` (goal <= 0.5), for a float
   lr and for per-group numpy lrs (what `fit_one_cycle` passes), the schedule call alone and the whole update
   (`ParamScheduler._update_val`: schedule call + `Optimizer.set_hyper`).
2. Epoch time of `fit_cos_anneal` vs plain `fit` on MNIST-1D with the paper's CNN (goal <= 1.02), with fastai's
   `fit_one_cycle` and a constant-valued `ParamScheduler` beside it. On a shared 2-core VM the end-to-end epoch times
   of identical runs spread by 10-20%, more than the effect measured, so the script also times what `fit_cos_anneal`
   adds, each part alone and at its fastest: per batch, the scheduler's answer to every event fastai sends it (its work
   included) and fastai's sort of one more callback before each event; per fit, `prepare_call`. Their sum over a fit,
   against the fastest plain fit, is the attributed ratio.

Run: python benchmarks/bench_schedule.py [--epochs 4] [--reps 15]
"""
import argparse, os, platform, random, statistics, time, timeit
import numpy as np, torch
from fastai.basics import *
from fastai.callback.schedule import combined_cos
from fastai_anneal.all import *

def per_call(f, positions, number):
    "Median over 7 repeats of the mean time of one `f(pos)` call, positions cycling over a whole fit"
    def run():
        for p in positions: f(p)
    return statistics.median(timeit.repeat(run, number=number, repeat=7)) / (number*len(positions))

def bench_update(n_iter=400):
    positions = [i/n_iter for i in range(n_iter)]
    rows = []
    for kind,lr in (('float', 1e-3), ('3-group array', np.array([1e-5, 1e-4, 1e-3]))):
        ours = cos_anneal_scheds(lr, 1e5, pct_warmup=0.25, div_warmup=25., warmup='cos')['lr']  # == 1cycle's lr schedule
        fa = combined_cos(0.25, lr/25, lr, lr/1e5)
        t_ours,t_fa = per_call(ours, positions, 20),per_call(fa, positions, 20)
        rows.append((f'schedule call, {kind}', t_ours, t_fa))
        # the whole update ParamScheduler does before each batch: schedule + Optimizer.set_hyper
        ps = [torch.nn.Parameter(torch.zeros(2)) for _ in range(3 if kind != 'float' else 1)]
        opt = SGD([[p] for p in ps], lr=1e-3)
        upd = lambda f: (lambda p: opt.set_hyper('lr', f(p)))
        rows.append((f'schedule + set_hyper, {kind}', per_call(upd(ours), positions, 10), per_call(upd(fa), positions, 10)))
    return rows

def bench_epoch(epochs, reps):
    "Seconds per epoch of each way to fit, interleaved in a new order every round; returns `{name: [times]}`"
    from fastai_anneal.data import mnist1d_dls, mnist1d_cnn
    from fastai.callback.schedule import ParamScheduler
    dls = mnist1d_dls(bs=100)
    ways = {'fit': lambda l: l.fit(epochs),                                   # the anchor: no scheduler at all
            'fit_cos_anneal': lambda l: l.fit_cos_anneal(epochs),
            'fit_one_cycle': lambda l: l.fit_one_cycle(epochs, 1e-2),          # fastai's scheduler, for scale
            'constant ParamScheduler': lambda l: l.fit(epochs, cbs=ParamScheduler({'lr': lambda pos: 1e-2}))}
    def run(f):
        set_seed(0)
        learn = Learner(dls, mnist1d_cnn(), loss_func=CrossEntropyLossFlat(), opt_func=Adam, lr=1e-2)
        with learn.no_bar(), learn.no_logging():
            start = time.perf_counter(); f(learn)
            return (time.perf_counter() - start) / epochs
    for f in ways.values(): run(f)  # warm up every path
    times,rng = {k: [] for k in ways},random.Random(0)
    for _ in range(reps):  # a shared machine drifts: shuffle the order each round so drift hits every way alike
        for k in rng.sample(list(ways), len(ways)): times[k].append(run(ways[k]))
    return times

# the events fastai's `Learner` sends every callback for one training batch (`one_batch`, `_do_one_batch`, `_do_grad_opt`) and for
# one validation batch
TRAIN_EVENTS = ('before_batch', 'after_pred', 'after_loss', 'before_backward', 'after_backward', 'before_step', 'after_step',
                'after_batch')
VALID_EVENTS = ('before_batch', 'after_pred', 'after_loss', 'after_batch')

def bench_attributed(epochs):
    ("What `fit_cos_anneal` adds to a plain `fit`, each part timed alone (min of alternated repeats: machine noise inflates none): "
     "per training and per validation batch, the scheduler's answer to each event fastai sends it (`cb(event)`: its work included) "
     "and fastai's sort of one more callback before each event (`Learner._call_one`); and `prepare_call` (argument checks, schedule "
     "building and checking) once per fit")
    import fastai_anneal.fit as F
    from fastai_anneal.data import mnist1d_dls, mnist1d_cnn
    from fastai_anneal.registry import VARIANTS
    dls = mnist1d_dls(bs=100)
    learn = Learner(dls, mnist1d_cnn(), loss_func=CrossEntropyLossFlat(), opt_func=Adam, lr=1e-2)
    v = VARIANTS['fit_cos_anneal']
    prepare = lambda: F.prepare_call(v, learn, F.bind_call(v, learn, epochs))
    t_prep = min(timeit.repeat(prepare, number=5, repeat=7)) / 5
    learn.create_opt()
    sched = F._ParamScheduler(prepare()['scheds'])
    learn.n_epoch,learn.epoch,learn.pct_train,learn.iter,learn.n_iter = epochs,0,0.3,3,len(dls.train)
    learn.add_cb(sched); sched.before_fit()
    def calls(events, training):
        learn.training = training
        def run():
            for e in events: sched(e)
        return min(timeit.repeat(run, number=500, repeat=15)) / 500
    res = {'train': calls(TRAIN_EVENTS, True), 'valid': calls(VALID_EVENTS, False)}
    def sort_time(added):
        if not added: learn.remove_cb(sched)
        try: return min(timeit.repeat(lambda: learn.cbs.sorted('order'), number=2000, repeat=3)) / 2000
        finally:
            if not added: learn.add_cb(sched)
    t = {False: [], True: []}
    for _ in range(15):  # alternated, so a slow stretch of the machine hits both
        for added in (False, True): t[added].append(sort_time(added))
    learn.remove_cb(sched)
    sort = max(0., min(t[True]) - min(t[False]))
    return res['train'] + len(TRAIN_EVENTS)*sort,res['valid'] + len(VALID_EVENTS)*sort,t_prep,len(dls.train),len(dls.valid)

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--epochs', type=int, default=4)
    ap.add_argument('--reps', type=int, default=15)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), platform.machine())
    print(f"machine: {cpu}, {os.cpu_count()} cores, torch {torch.__version__}, torch threads 1")
    print(f"{'hyper-parameter update':38s} {'ours':>10s} {'fastai':>10s} {'ratio':>7s}  (goal <= 0.5)")
    for name,a,b in bench_update():
        print(f"{name:38s} {a*1e6:8.2f}us {b*1e6:8.2f}us {a/b:7.3f}")
    times = bench_epoch(args.epochs, args.reps)
    print(f"epoch time, MNIST-1D CNN, bs 100, {args.epochs} epochs a run, {args.reps} rounds; ratios against plain fit (goal for fit_cos_anneal <= 1.02)")
    print(f"{'':26s} {'min':>9s} {'median':>9s} {'ratio of minima':>16s} {'ratio of medians':>17s}")
    t0,m0 = min(times['fit']),statistics.median(times['fit'])
    for k,ts in times.items():
        print(f"{k:26s} {min(ts)*1e3:7.1f}ms {statistics.median(ts)*1e3:7.1f}ms {min(ts)/t0:16.3f} {statistics.median(ts)/m0:17.3f}")
    tr,va,prep,ntr,nva = bench_attributed(args.epochs)
    added = args.epochs*(tr*ntr + va*nva) + prep
    print(f"what fit_cos_anneal adds, each part timed alone: {tr*1e6:.1f}us a training batch, {va*1e6:.1f}us a validation batch "
          f"(its answers to fastai's events, its work and fastai's sort of one more callback included), {prep*1e3:.2f}ms a fit (prepare_call): {added*1e3:.1f}ms a "
          f"{args.epochs}-epoch fit, so fit_cos_anneal / fit = {1 + added/(args.epochs*t0):.4f} against the fastest plain fit "
          f"(goal <= 1.02)")
