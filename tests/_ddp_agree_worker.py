"""One rank of `test_distributed.py::test_the_tuner_decides_once_when_the_ranks_see_different_things`: `python _ddp_agree_worker.py OUT`.
fastai's Recorder averages the smoothed loss over the ranks, but each rank scores its own batches: a range test, a trial's divergence
or the stability probe can read differently on two ranks. Here rank 1 alone is told something else, one decision at a time (its
range test's top doubled, one trial diverged, its first probe unstable, the watched fit collapsed at its first check), and each
tuning's decisions are written for the test."""
import json, math, sys, warnings
from pathlib import Path
from fastai.basics import *
from torch.utils.data import TensorDataset
sys.path.insert(0, str(Path(__file__).parent))
from _ddp_common import init, cpu_broadcast, finish
from fastai_anneal.all import *
import fastai_anneal.tune as tune

def mk_learner() -> Learner:
    set_seed(0, reproducible=True)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(528, 8, generator=g); y = (x[:, 0] - x[:, 1] > 0).long()
    train,valid = TensorDataset(x[:512], y[:512]),TensorDataset(x[512:], y[512:])
    dls = DataLoaders(TfmdDL(train, bs=16, shuffle=True, drop_last=True, num_workers=0), TfmdDL(valid, bs=16, num_workers=0))
    return Learner(dls, nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2)), loss_func=CrossEntropyLossFlat(), opt_func=Adam)

def on_rank1(name:str, wrap):
    "`tune.name` replaced by `wrap(original)` on rank 1 only"
    orig = getattr(tune, name)
    if rank_distrib() == 1: setattr(tune, name, wrap(orig))
    return orig

def top_doubled(f): return lambda *a, **k: 2*f(*a, **k)

def second_trial_diverged(f):
    n = [0]
    def run(*a, **k):
        losses,div,valid = f(*a, **k)  # run as every rank runs it: the same collectives
        n[0] += 1
        return (losses,True,None) if n[0] == 2 else (losses,div,valid)
    return run

def first_probe_unstable(f):
    n = [0]
    def unstable(losses):
        n[0] += 1
        return (True, 0.5) if n[0] == 1 else f(losses)
    return unstable

def first_check_collapsed(f):
    n = [0]
    def collapsed(*a, **k):
        n[0] += 1
        return n[0] == 1 or f(*a, **k)
    return collapsed

def decisions(r) -> dict:
    return dict(lr=r.scale, top=r.top, rule=r.rule, trials=[[t['lr'], t['rung'], t['diverged'], t['score']] for t in r.trials],
                probes=[[p['lr'], p['unstable']] for p in r.probes], restarts=[[x['lr'], x['batch']] for x in r.restarts])

def main(out:str):
    from fastai.distributed import DistributedDL
    DistributedDL._broadcast = cpu_broadcast
    out = Path(out)
    init(out)
    res = dict(world=num_distrib())
    for case,name,wrap in (('same', None, None), ('top', '_range_top', top_doubled), ('diverged', '_run_phases', second_trial_diverged),
                           ('probe', '_unstable', first_probe_unstable), ('collapse', '_collapsed', first_check_collapsed)):
        learn = mk_learner()
        orig = on_rank1(name, wrap) if name else None
        try:
            with learn.distrib_ctx(cpu=True, sync_bn=False), learn.no_bar(), learn.no_logging(), warnings.catch_warnings():
                warnings.simplefilter('ignore')  # a short fit: its trials run at their minimum length
                tune.PROBE_NEAR = 0. if case == 'probe' else 0.5  # every pick probed: the probe runs whatever the pick
                if case == 'collapse':  # the fit itself, watched: it restarts at half the lr on every rank
                    learn.fit_cos_anneal(6, 'auto')
                    res[case] = dict(decisions(learn.lr_tune_result), fit_lrs=[float(v) for v in learn.recorder.lrs])
                else: res[case] = decisions(learn.lr_tune(6, fit='fit_cos_anneal'))
        finally:
            if name: setattr(tune, name, orig)
    (out/f'rank{rank_distrib()}.json').write_text(json.dumps(res))
    finish()

if __name__ == '__main__': main(sys.argv[1])
