"Shared pytest setup, and the helpers several test modules use (`from conftest import ...`)."
import inspect, os, socket, subprocess, sys, time
from pathlib import Path
import matplotlib
matplotlib.use('Agg')  # plots in tests never open a window
os.environ.setdefault('OMP_NUM_THREADS', '1')
import pytest, torch
from fastai.basics import Learner, Callback, Adam, MSELossFlat, set_seed, trainable_params
from fastai.test_utils import synth_dbunch, RegModel

def pytest_pycollect_makeitem(collector, name, obj):
    "Collect only tests defined in the test module itself: `from fastai.basics import *` brings fastcore's `test_eq`, `test_fail`..."
    if inspect.isfunction(obj) and name.startswith('test') and obj.__module__ != collector.obj.__name__: return []

# ------------------------------------------------------------------ learners and callbacks
def synth_splitter(m): return [[m.a], [m.b]]

def mk_learner(n_train:int=5, groups:int=1, opt_func=Adam, lr:float=1e-2, seed:int=0, **kwargs) -> Learner:
    "fastai's synthetic regression, `n_train` batches of 16: the same weights and data order for the same arguments, as a restarted process"
    set_seed(seed, reproducible=True)
    return Learner(synth_dbunch(n_train=n_train, n_valid=1), RegModel(), loss_func=MSELossFlat(), opt_func=opt_func, lr=lr,
                   splitter=synth_splitter if groups == 2 else trainable_params, **kwargs)

def quiet_fit(learn, method:str, *args, **kwargs):
    "`learn.method(*args, **kwargs)` without progress bars or epoch tables"
    with learn.no_bar(), learn.no_logging(): getattr(learn, method)(*args, **kwargs)

class RecordHypers(Callback):
    "lr and mom of every param group after each training batch, across fits (fastai's `Recorder` keeps the last group of the last fit)"
    order = 55  # before `ParamScheduler` (60), whose subclass `LRFinder` cancels the fit in the last batch's `after_batch`
    def __init__(self): self.hps = []
    def after_batch(self):
        if self.training: self.hps.append([(h['lr'], h.get('mom')) for h in self.opt.hypers])
    @property
    def lrs(self): return [[lr for lr,_ in b] for b in self.hps]
    @property
    def moms(self): return [[m for _,m in b] for b in self.hps]

class CountSteps(Callback):
    "Optimizer steps taken over all fits, and how many of them with a frozen group"
    order = 90
    def __init__(self): self.n,self.frozen = 0,0
    def after_step(self): self.n,self.frozen = self.n + 1,self.frozen + (self.opt.frozen_idx > 0)

# ------------------------------------------------------------------ several processes (gloo, CPU)
needs_gloo = pytest.mark.skipif(not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
                                reason='needs torch.distributed with the gloo backend')

def free_port() -> int:
    "A TCP port free now (another process can take it before the launch binds it: `launch_ranks` says so in its log)"
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]

def launch_ranks(script:Path, out:Path, world:int=2, timeout:float=180) -> str:
    "Run `python script out` as `world` ranks; kill them all on the first failure or after `timeout` s; fail the test with their logs"
    port,procs = free_port(),[]
    for r in range(world):
        env = dict(os.environ, MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(r), LOCAL_RANK=str(r),
                   WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world), OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
        log = open(out/f'log{r}.txt', 'w')
        procs.append((subprocess.Popen([sys.executable, str(script), str(out)], env=env, stdout=log, stderr=subprocess.STDOUT), log))
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            codes = [p.poll() for p,_ in procs]
            if all(c == 0 for c in codes) or any(c not in (None, 0) for c in codes): break
            time.sleep(0.2)
    finally:
        for p,log in procs:
            if p.poll() is None: p.kill()
            p.wait(); log.close()
    logs = '\n'.join(f'--- rank {r}, exit {p.returncode}\n' + (out/f'log{r}.txt').read_text()[-3000:] for r,(p,_) in enumerate(procs))
    assert all(p.returncode == 0 for p,_ in procs), logs
    return logs
