"One rank of `tests/test_distributed.py::test_resume_under_distributed_dl`: `python _ddp_resume_worker.py OUT_DIR`."
import json, os, sys
from pathlib import Path
import torch
from fastai.basics import *
from fastai.callback.tracker import SaveModelCallback
from fastai.test_utils import synth_dbunch, RegModel
sys.path.insert(0, str(Path(__file__).parent))
from _ddp_common import init, cpu_broadcast, finish
from fastai_anneal.all import *

EPOCHS,STOP = 3,1  # the dying run saves after epoch 0 and dies at the start of epoch 1

def mk_learner(path) -> Learner:
    "The same learner, data order included, in every rank and every 'process restart'"
    set_seed(0, reproducible=True)
    return Learner(synth_dbunch(n_train=12, bs=8, cuda=False), RegModel(), loss_func=MSELossFlat(), opt_func=Adam, lr=1e-2,
                   path=path, model_dir='models')

class Die(Callback):
    "The machine dies at the start of epoch `epoch`"
    def __init__(self, epoch): self.at = epoch
    def before_epoch(self):
        if self.epoch == self.at: raise CancelFitException()

def fit(learn, **kw):
    with learn.distrib_ctx(cpu=True, sync_bn=False), learn.no_bar(), learn.no_logging(): learn.fit_cos_anneal(EPOCHS, pct_warmup=0.2, **kw)

def weights(learn) -> list: return [p.detach().double().flatten().tolist() for p in learn.model.parameters()]

def main(out:str):
    from fastai.distributed import DistributedDL
    DistributedDL._broadcast = cpu_broadcast
    out = Path(out)
    init(out)
    full = mk_learner(out/'full'); fit(full)
    dying = mk_learner(out/'run'); fit(dying, cbs=[SaveModelCallback(every_epoch=True, with_opt=True), Die(STOP)])
    resumed = mk_learner(out/'run')  # a new process: same construction, then fastai's loader (rank 0 wrote the file)
    resumed.load(f'model_{STOP-1}', with_opt=True)
    fit(resumed, start_epoch=STOP)
    res = dict(world=num_distrib(), full=weights(full), resumed=weights(resumed), n_batches=len(full.dls.train))
    (out/f'rank{rank_distrib()}.json').write_text(json.dumps(res))
    finish()  # only after success: it exits with status 0; a failing rank exits with its traceback, and the launcher kills its peer

if __name__ == '__main__': main(sys.argv[1])
