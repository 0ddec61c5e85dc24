"Shared pytest setup, and the helpers several test modules use (`from conftest import ...`)."
import inspect, os, random, signal, socket, subprocess, sys, time
from pathlib import Path
import matplotlib
matplotlib.use('Agg')  # plots in tests never open a window
os.environ.setdefault('OMP_NUM_THREADS', '1')
import numpy as np, pytest, torch
from fastai.basics import Learner, Callback, Adam, MSELossFlat, set_seed, trainable_params, L
from fastai.test_utils import synth_dbunch, RegModel

def pytest_xdist_auto_num_workers(config):
    ("`-n auto` (pytest.ini): one worker per core this process may run on (pytest-xdist counts the host's physical cores, which a "
     "container may not have), at most one per 2 GiB of memory, none on one core (the tests run in this process); "
     "`PYTEST_XDIST_AUTO_NUM_WORKERS` still overrides")
    if os.environ.get('PYTEST_XDIST_AUTO_NUM_WORKERS', '').isdigit(): return int(os.environ['PYTEST_XDIST_AUTO_NUM_WORKERS'])
    n = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1
    try: mem = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
    except (AttributeError, ValueError, OSError): mem = 2**31 * n  # no sysconf (Windows)
    n = min(n, mem // 2**31)
    return n if n > 1 else 0

def pytest_configure(config):
    ("A run started with Ctrl-C ignored (`nohup pytest &`, a background job of a non-interactive shell) has no Python handler for "
     "SIGINT, so the tests that send one to check what a Ctrl-C does would see nothing: they get Python's own, as in a terminal")
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN: signal.signal(signal.SIGINT, signal.default_int_handler)

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

class DrawsRNGs(Callback):
    ("Draws from python's, numpy's and torch's global RNGs every training batch, as augmentations do: a sweep or a tuning that "
     "does not put one of them back shows in `learner_state`'s `rng`")
    def before_batch(self):
        if self.training: random.random(); np.random.rand(); torch.rand(1)

# ------------------------------------------------------------------ a learner's state, to check nothing changed
def learner_state(learn) -> dict:
    "Everything a sweep, a tuning or a rejected call must leave as it was, as plain copies"
    ps = list(learn.model.parameters())
    opt = learn.opt
    res = dict(tensors={k: v.clone() for k,v in learn.model.state_dict().items()},
               grads=[None if p.grad is None else p.grad.clone() for p in ps], rg=[p.requires_grad for p in ps],
               modes=[m.training for m in learn.model.modules()], lr=learn.lr, opt=opt,
               rng=(random.getstate(), np.random.get_state(), torch.get_rng_state()), dl_rng=learn.dls.train.rng.getstate())
    if opt is not None:
        res.update(hypers=[dict(h) for h in opt.hypers], frozen=opt.frozen_idx, state_type=type(opt.state),
                   state=[{k: v.clone() if isinstance(v, torch.Tensor) else v for k,v in opt.state[p].items()} for p in ps if p in opt.state])
    return res

def bitwise_equal(a, b):
    if isinstance(a, torch.Tensor): return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and bool((a == b).all() | (a.isnan() & b.isnan()).all())
    if isinstance(a, np.ndarray): return np.array_equal(a, b)
    if isinstance(a, L): a,b = list(a),list(b) if isinstance(b, L) else b
    if isinstance(a, dict): return isinstance(b, dict) and a.keys() == b.keys() and all(bitwise_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)): return isinstance(b, (list, tuple)) and len(a) == len(b) and all(bitwise_equal(x, y) for x,y in zip(a, b))
    if isinstance(a, type) or a is None or hasattr(a, 'step'): return a is b  # classes, None, optimizers: identity
    return a == b

def assert_restored(before, after):
    "`learner_state` before and after: equal, bit for bit (optimizers, classes and None by identity)"
    for k in before: assert bitwise_equal(before[k], after[k]), f"{k} differs"
    assert before.keys() == after.keys()

# ------------------------------------------------------------------ several processes (gloo, CPU)
needs_gloo = pytest.mark.skipif(not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
                                reason='needs torch.distributed with the gloo backend')

def free_port() -> int:
    "A TCP port free now (another process can take it before the launch binds it: `launch_ranks` says so in its log)"
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]

def _ask_stacks(pid:int):
    "Send SIGUSR1 to `pid` and its children (Linux): a worker that called `_ddp_common.init` writes its threads' stacks to its log"
    if not hasattr(signal, 'SIGUSR1'): return
    kids = []
    for f in Path(f'/proc/{pid}/task').glob('*/children'):
        try: kids += [int(c) for c in f.read_text().split()]
        except (OSError, ValueError): pass
    for q in [pid, *kids]:
        try: os.kill(q, signal.SIGUSR1)
        except OSError: pass

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
        hung = [p for p,_ in procs if p.poll() is None]
        for p in hung: _ask_stacks(p.pid)  # where each hung rank, and any process it forked (a loader's workers), waits
        if hung: time.sleep(2)
        for p,log in procs:
            if p.poll() is None: p.kill()
            p.wait(); log.close()
    tail = 12000 if hung else 3000
    why = f' (killed: still running after {timeout:g} s)' if time.monotonic() >= deadline else ' (killed: a peer failed)'
    logs = '\n'.join(f'--- rank {r}, exit {p.returncode}' + (why if p in hung else '') + '\n'
                     + (out/f'log{r}.txt').read_text()[-tail:] for r,(p,_) in enumerate(procs))
    assert all(p.returncode == 0 for p,_ in procs), logs
    return logs

def ctrl_c_at_tensor(monkeypatch, k:int) -> list:
    "Send SIGINT while a `LearnerSnapshot` puts back its `k`-th tensor (from 1); the list returned counts the tensors put back"
    from fastai_anneal.snapshot import LearnerSnapshot
    orig,n = LearnerSnapshot._restore_tensor,[]
    def at_k(*a):
        n.append(1)
        if len(n) == k: signal.raise_signal(signal.SIGINT)
        orig(*a)
    monkeypatch.setattr(LearnerSnapshot, '_restore_tensor', staticmethod(at_k))
    return n
