"One rank of the 2-process gloo run of `tests/test_metrics_distributed.py`: `python _ddp_metrics_worker.py OUT_DIR`."
import json, os, sys
from pathlib import Path
import torch
from torch import nn
from torch.utils.data import TensorDataset
from fastai.basics import *
from fastai_anneal.metrics import *
sys.path.insert(0, str(Path(__file__).parent))
from _ddp_common import init, cpu_broadcast, finish

# odd validation sizes, so fastai's `DistributedDL` pads every rank to the same length with a repeated sample
N_VALID = dict(multiclass=37, segment=11, multilabel=13, labels=9)
BS = 4

class _Labels(nn.Module):
    "Outputs the class index its input's second column holds (a parameter, unused, for DDP's wrapper)"
    def __init__(self): super().__init__(); self.w = nn.Parameter(torch.zeros(1))
    def forward(self, x): return x[:, 1]

def make_task(name:str, seed:int=0) -> Learner:
    "Learner of task `name` (data, initial weights, metrics), identical in every process for the same `seed`"
    g = torch.Generator().manual_seed(seed)
    n = N_VALID[name]
    torch.manual_seed(seed)
    if name == 'multiclass':
        x,y = torch.randn(n, 6, generator=g),torch.randint(0, 4, (n,), generator=g)  # class 4 is never a target
        model,loss = nn.Linear(6, 5),nn.CrossEntropyLoss()
        weighted = BalancedAccuracy(adjusted=True, sample_weight=torch.rand(n, generator=g))
        weighted.name = 'weighted_adjusted_balanced_accuracy'
        metrics = [Accuracy(), Accuracy(top_k=3), BalancedAccuracy(), weighted]
    elif name == 'segment':
        x,y = torch.randn(n, 2, 3, 3, generator=g),torch.randint(0, 3, (n, 3, 3), generator=g)
        y[torch.rand(y.shape, generator=g) < 0.2] = 255
        model,loss = nn.Conv2d(2, 3, 1),nn.CrossEntropyLoss(ignore_index=255)
        metrics = [Accuracy(axis=1, ignore_index=255), Accuracy(axis=1, top_k=2, ignore_index=255),
                   BalancedAccuracy(axis=1, ignore_index=255)]
    elif name == 'labels':  # class-index predictions: each rank infers the number of classes from the labels it sees, and
        # the largest (4) is the last sample's only, so one rank sees 4 classes and the other 5 until they agree
        y = torch.tensor([0, 1, 2, 3, 1, 0, 2, 3, 4])
        x = torch.stack([y, torch.tensor([0, 1, 1, 3, 2, 0, 2, 4, 4])], 1)  # column 1: the predicted class
        model,loss = _Labels(),lambda p,t: (p != t).float().mean()
        adjusted = BalancedAccuracy(adjusted=True)
        adjusted.name = 'adjusted_balanced_accuracy'
        metrics = [BalancedAccuracy(), adjusted]
    else:
        x,y = torch.randn(n, 6, generator=g),(torch.rand(n, 4, generator=g) < 0.4).float()
        model,loss = nn.Linear(6, 4),nn.BCEWithLogitsLoss()
        low = AccuracyMulti(thresh=0.3)
        low.name = 'accuracy_multi_thresh_0.3'
        metrics = [AccuracyMulti(), low]
    ds = TensorDataset(x, y)
    dls = DataLoaders(TfmdDL(ds, bs=BS, shuffle=True, drop_last=True, device='cpu', num_workers=0),  # in memory: no worker forks
                      TfmdDL(ds, bs=BS, device='cpu', num_workers=0))
    return Learner(dls, model, loss_func=loss, metrics=metrics)

def main(out:str):
    from fastai.distributed import DistributedDL
    DistributedDL._broadcast = cpu_broadcast
    init(out)
    rank,res = rank_distrib(),{}
    for name in N_VALID:
        learn = make_task(name)
        with learn.distrib_ctx(cpu=True):
            # multiclass goes through a real (DDP-wrapped) fit; its last recorded row is [train_loss, valid_loss, *metrics]
            if name == 'multiclass': learn.fit(1, 1e-2); vals = learn.recorder.values[-1][2:]
            else: vals = learn.validate()[1:]
        res[name] = dict(zip(learn.metrics.attrgot('name'), map(float, vals)))
        if rank == 0: torch.save(learn.model.state_dict(), os.path.join(out, f'{name}.pth'))
    with open(os.path.join(out, f'rank{rank}.json'), 'w') as f: json.dump(res, f)
    finish()  # only after success: it exits with status 0; a failing rank exits with its traceback, and the launcher kills its peer

if __name__ == '__main__': main(sys.argv[1])
