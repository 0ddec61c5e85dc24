"""A screen for issue 12 (BENCHMARKS.md, "Ninth session"): does an online estimate of the lr scale, found inside the requested fit
itself (so it sees the whole horizon, which the tuner's short trials cannot), land near the grid oracle where `lr='auto'` misses?
The estimate is Prodigy's D (Mishchenko & Defazio 2023, arXiv 2306.06101, its Adam version, written here from the paper's
algorithm); the schedule is the package's (`fit_cos_anneal` / `fit_flat_anneal` at lr=1, the multiplier of d).

    python benchmarks/bench_autolr_prodigy.py OUT.jsonl mnist1d:cos:0 tabular:flat:1 ...   (task:schedule:seed, tasks of autolr_tasks.py)
"""
import sys, json, math, time, warnings
from functools import partial
sys.path.insert(0, str(__import__('pathlib').Path(__file__).parent))
import torch; torch.set_num_threads(1)
warnings.filterwarnings('ignore')
from fastai.basics import *
from fastai_anneal.all import *
from autolr_tasks import TASKS, FIT_KW, score

class Prodigy(torch.optim.Optimizer):
    "Adam whose step size is d*lr, d a running lower bound on the distance to the solution (one d for all params)"
    def __init__(self, params, lr=1., betas=(0.9, 0.999), eps=1e-8, weight_decay=0., d0=1e-6):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        self.d,self.d0,self.d_max,self.num = d0,d0,d0,0.
    @torch.no_grad()
    def step(self, closure=None):
        b1,b2 = self.param_groups[0]['betas']; b3 = math.sqrt(b2)
        lr = max(g['lr'] for g in self.param_groups)
        d,dlr = self.d,self.d*lr
        self.num *= b3
        den = 0.
        for g in self.param_groups:
            for p in g['params']:
                if p.grad is None: continue
                st = self.state[p]
                if not st:
                    st['p0'],st['s'] = p.detach().clone(),torch.zeros_like(p)
                    st['m'],st['v'] = torch.zeros_like(p),torch.zeros_like(p)
                gr = p.grad
                self.num += (d/self.d0)*dlr*float(torch.dot(gr.flatten(), (st['p0'] - p).flatten()))
                st['m'].mul_(b1).add_(gr, alpha=d*(1-b1))
                st['v'].mul_(b2).addcmul_(gr, gr, value=d*d*(1-b2))
                st['s'].mul_(b3).add_(gr, alpha=(d/self.d0)*dlr)
                den += float(st['s'].abs().sum())
        if lr > 0 and den > 0:
            d_hat = self.num/den
            self.d_max = max(self.d_max, d_hat)
            self.d = max(self.d, d_hat) if d == self.d0 else min(self.d_max, max(self.d, d_hat))
        d = self.d
        for g in self.param_groups:
            glr = d*g['lr']
            for p in g['params']:
                if p.grad is None: continue
                st = self.state[p]
                if g['weight_decay']: p.mul_(1 - g['weight_decay']*glr)
                p.addcdiv_(st['m'], st['v'].sqrt().add_(d*g['eps']), value=-glr)

def run(task, sched, seed):
    make,n_epoch,kind = TASKS[task]
    learn = make(seed)
    of = learn.opt_func
    wd = (of.keywords.get('wd', 0.01) if isinstance(of, partial) else 0.01)
    learn.opt_func = partial(OptimWrapper, opt=partial(Prodigy, weight_decay=wd))
    t = time.perf_counter()
    with learn.no_bar(), learn.no_logging(): getattr(learn, f'fit_{sched}_anneal')(n_epoch, 1.0, **FIT_KW.get(task, {}))
    return dict(task=task, sched=sched, seed=seed, score=score(learn, kind),
                d=learn.opt.opt.d, s=time.perf_counter()-t)

if __name__ == '__main__':
    out = open(sys.argv[1], 'a')
    for spec in sys.argv[2:]:
        task,sched,seed = spec.split(':')
        r = run(task, sched, int(seed)); print(json.dumps(r), flush=True); out.write(json.dumps(r)+'\n'); out.flush()
