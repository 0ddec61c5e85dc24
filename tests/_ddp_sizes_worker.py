"""One rank of `tests/test_distributed.py::test_what_a_fit_runs_is_sized_on_each_rank_s_share`: `python _ddp_sizes_worker.py OUT`.
Under `distrib_ctx` each rank runs its share of the batches (fastai shards the loaders only as a fit starts): a cosine `lr_find`,
`lr_tune` and the schedules that count batches (`fit_cyclic`, `fit_time_decay`), each recorded for the test to compare."""
import json, sys, warnings
from pathlib import Path
from fastai.basics import *
from fastai.test_utils import RegModel
from torch.utils.data import TensorDataset
sys.path.insert(0, str(Path(__file__).parent))
from _ddp_common import init, cpu_broadcast, finish
from fastai_anneal.all import *

N_ITEMS,BS = 203,8  # padded to 204: 102 items a rank, 12 full batches and 6 dropped (fastai's `DistributedDL.__len__` says 13)

def mk_learner(n:int=N_ITEMS, bs:int=BS) -> Learner:
    set_seed(0, reproducible=True)
    x = torch.randn(n + 16, 1); ds = TensorDataset(x, 2*x + 3 + 0.1*torch.randn_like(x))
    train,valid = torch.utils.data.Subset(ds, range(n)),torch.utils.data.Subset(ds, range(n, n + 16))
    # in memory: no worker processes (`TfmdDL` forks one per core each epoch, from a rank whose gloo threads run: a child can hang)
    dls = DataLoaders(TfmdDL(train, bs=bs, shuffle=True, drop_last=True, num_workers=0), TfmdDL(valid, bs=bs, num_workers=0))
    return Learner(dls, RegModel(), loss_func=MSELossFlat(), opt_func=Adam, lr=1e-2)

def main(out:str):
    from fastai.distributed import DistributedDL
    DistributedDL._broadcast = cpu_broadcast
    out = Path(out)
    init(out)
    res = dict(world=num_distrib())
    learn = mk_learner()
    with learn.distrib_ctx(cpu=True, sync_bn=False), learn.no_bar(), learn.no_logging(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        s = learn.lr_find(num_it=40, anneal='cos', show_plot=False)
        res.update(find_cos=[float(v) for v in s], find_n=len(learn.recorder.lrs))
        t = learn.lr_tune(10, fit='fit_cos_anneal')
        res.update(tune_lr=t.scale, tune_steps=t.n_steps, sweep_n=len(t.sweep['lrs']), sweep_losses=t.sweep['losses'])
        for m,kw in (('fit_cyclic', dict(max_lr=1e-2, base_lr=1e-3, step_size_up=5)), ('fit_time_decay', dict(lr=1e-2, decay_steps=4))):
            learn = mk_learner()
            with learn.distrib_ctx(cpu=True, sync_bn=False): getattr(learn, m)(2, **kw)
            res[m] = [float(v) for v in learn.recorder.lrs]
    learn = mk_learner(n=24, bs=16)  # 12 items a rank: no full batch of 16
    for f in (lambda: learn.lr_find(show_plot=False), lambda: learn.lr_tune(3), lambda: learn.fit_cos_anneal(1)):
        try:
            with learn.distrib_ctx(cpu=True, sync_bn=False), learn.no_bar(), learn.no_logging(): f()
        except ValueError as e: res.setdefault('empty_share', []).append(str(e))
    (out/f'rank{rank_distrib()}.json').write_text(json.dumps(res))
    finish()

if __name__ == '__main__': main(sys.argv[1])
