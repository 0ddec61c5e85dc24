"One rank of `tests/test_distributed.py::test_plateau_is_one_decision_for_every_rank`: `python _ddp_plateau_worker.py OUT_DIR`."
import json, sys
from pathlib import Path
import torch
from fastai.basics import *
from fastai.test_utils import synth_dbunch, RegModel
sys.path.insert(0, str(Path(__file__).parent))
from _ddp_common import init, cpu_broadcast, finish
from fastai_anneal.all import *

PLATEAU = dict(patience=0, factor=0.5, threshold=0.03)

class Record(Callback):
    "The lr of every training batch, and the validation loss of every epoch"
    order = 70
    def before_fit(self): self.lrs,self.losses = [],[]
    def after_batch(self):
        if self.training: self.lrs.append(self.opt.hypers[0]['lr'])
    def after_epoch(self): self.losses.append(float(self.recorder.values[-1][1]))

def main(out:str):
    from fastai.distributed import DistributedDL
    DistributedDL._broadcast = cpu_broadcast
    init(out)
    set_seed(0, reproducible=True)
    learn = Learner(synth_dbunch(n_train=8, n_valid=4, bs=8, cuda=False), RegModel(), loss_func=MSELossFlat(), opt_func=Adam, lr=1e-2)
    cb,rec = AnnealPlateau(**PLATEAU),Record()
    with learn.distrib_ctx(cpu=True, sync_bn=False), learn.no_bar(), learn.no_logging(): learn.fit_flat_anneal(6, cbs=[cb, rec])
    res = dict(world=num_distrib(), lrs=rec.lrs, losses=rec.losses, scale=cb.scale)
    (Path(out)/f'rank{rank_distrib()}.json').write_text(json.dumps(res))
    finish()  # only after success: it exits with status 0; a failing rank exits with its traceback, and the launcher kills its peer

if __name__ == '__main__': main(sys.argv[1])
