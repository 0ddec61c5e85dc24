"""One rank of `tests/test_distributed.py::test_a_search_leaves_the_model_as_distrib_ctx_left_it`: `python _ddp_search_worker.py OUT`.
fastai's `DistributedTrainer` rebuilds parts of the model at every fit and never puts them back: each BatchNorm becomes a new
`SyncBatchNorm` (`sync_bn=True`, its default), and accelerate wraps `forward` in autocast once more (`mixed_precision`). A search
runs dozens of fits: after it, the model holds the modules, modes and `forward` it held before."""
import json, sys, warnings
from pathlib import Path
from fastai.basics import *
from torch.utils.data import TensorDataset
sys.path.insert(0, str(Path(__file__).parent))
from _ddp_common import init, cpu_broadcast, finish
from fastai_anneal.all import *

def mk_learner() -> Learner:
    set_seed(0, reproducible=True)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(272, 8, generator=g); y = (x[:, 0] + x[:, 1] > 0).long()
    train,valid = TensorDataset(x[:256], y[:256]),TensorDataset(x[256:], y[256:])
    dls = DataLoaders(TfmdDL(train, bs=16, shuffle=True, drop_last=True, num_workers=0), TfmdDL(valid, bs=16, num_workers=0))
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2))
    return Learner(dls, model, loss_func=CrossEntropyLossFlat(), opt_func=Adam)

def main(out:str):
    from fastai.distributed import DistributedDL
    DistributedDL._broadcast = cpu_broadcast
    # the CPU: `SyncBatchNorm` trains on GPUs only, so it normalises as BatchNorm (each rank its own batch), and DDP's check that
    # it holds GPU modules is skipped. torch's conversion of the modules, the part under test, is unchanged
    nn.SyncBatchNorm.forward = nn.modules.batchnorm._BatchNorm.forward
    nn.parallel.DistributedDataParallel._passing_sync_batchnorm_handle = lambda self, module: None
    out = Path(out)
    init(out)
    learn,res = mk_learner(),{}
    seen = lambda: dict(modules=[id(m) for m in learn.model.modules()], modes=[m.training for m in learn.model.modules()],
                        forward=id(vars(learn.model).get('forward')))
    with learn.distrib_ctx(cpu=True, mixed_precision='bf16'), learn.no_bar(), learn.no_logging(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        learn.fit(1, 1e-3)  # ends with validation: every module in eval mode, the BatchNorm converted, `forward` wrapped
        res['after_fit'] = seen()
        res['converted'] = isinstance(learn.model[1], nn.SyncBatchNorm) and 'forward' in vars(learn.model)
        learn.lr_find(num_it=20, show_plot=False)
        res['after_lr_find'] = seen()
        learn.lr_tune(6)
        res['after_lr_tune'] = seen()
    (out/f'rank{rank_distrib()}.json').write_text(json.dumps(res))
    finish()

if __name__ == '__main__': main(sys.argv[1])
