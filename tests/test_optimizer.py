"Tests of `fastai_anneal.optimizer`: bad input, equivalences (fastai, torch), the anneal clock, the fast paths, Learner integration."
import copy, math, os, warnings
from functools import partial
import numpy as np, pytest, torch
from torch import nn
from fastai.basics import Learner, Callback, DataLoaders, params, CrossEntropyLossFlat, accuracy
from torch.utils.data import TensorDataset
from fastai.callback.schedule import ParamScheduler, SchedCos, sched_exp
from fastai.callback.fp16 import MixedPrecision
from fastai.optimizer import (Optimizer, Lookahead, SGD, RMSProp, Adam, RAdam, QHAdam, Lamb, Larc, ranger, sgd_step,
                              weight_decay, average_grad, momentum_step)
from fastai_anneal.all import *  # the fit variants and the project's `lr_find`
from fastai_anneal.optimizer import *
from fastai_anneal.optimizer import FROZEN
from fastai_anneal._multi_tensor import KERNELS, Kernels, fast_kind, path as fast_path
from conftest import quiet_fit, CountSteps
_FUSED_DEVICES = KERNELS.fused_devices

# settings.ini allows torch >= 2.1; torch's fused Adam/SGD kernels run on the CPU from 2.4 on
needs_cpu_fused = pytest.mark.skipif(not (KERNELS.fused and 'cpu' in _FUSED_DEVICES),
                                     reason=f"torch {torch.__version__} has no fused Adam/SGD kernels on the CPU (torch >= 2.4 has them)")
IMPLS = ['stepper', 'foreach', pytest.param('fused', marks=needs_cpu_fused)]
from fastai_anneal.data import mnist1d_dls, mnist1d_cnn
from fastai_anneal.schedules import sched_cos, sched_lin

# ---------------------------------------------------------------- helpers
def make_params(n=4, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    shapes = [(6, 5), (6,), (3, 6), (3,), (4, 3, 2)][:n]
    return [nn.Parameter(torch.randn(s, generator=g).to(dtype)) for s in shapes]

def set_grads(ps, k, scale=1.):
    g = torch.Generator().manual_seed(1000 + k)
    for p in ps: p.grad = (torch.randn(p.shape, generator=g) * scale).to(p.dtype)

def run(opt_f, n=100, ps=None, groups=None, scale=1.):
    "`n` steps of `opt_f(params)` on fixed pseudo-random gradients; returns (params, opt)"
    ps = make_params() if ps is None else ps
    opt = opt_f(ps if groups is None else groups(ps))
    for k in range(n): set_grads(ps, k, scale); opt.step(); opt.zero_grad()
    return ps,opt

def rel_err(a, b): return max(((x.detach().float()-y.detach().float()).abs().max() / y.detach().float().abs().max().clamp_min(1e-30)).item() for x,y in zip(a, b))
def bitwise(a, b): return all(torch.equal(x, y) for x,y in zip(a, b))
def two_groups(ps): return [ps[:2], ps[2:]]

def record_lr(p, lr, lrs=None, **kwargs):
    "A stepper recording the lr it sees"
    return {'lrs': (lrs or []) + [lr]}

def recording_sgd(params, lr, wd=0.):
    "fastai SGD with a stepper that records the lr every step"
    return Optimizer(params, [weight_decay, record_lr, sgd_step], lr=lr, wd=wd)

@pytest.fixture(scope='module')
def dls(): return mnist1d_dls(bs=500)  # 8 batches an epoch: fits are quick

class Net(nn.Module):
    "MNIST-1D model with a batchnorm in the body, so `train_bn` matters when frozen"
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv1d(1, 8, 5, stride=2), nn.BatchNorm1d(8), nn.ReLU(), nn.Flatten())
        self.head = nn.Linear(8*18, 10)
    def forward(self, x): return self.head(self.body(x))

def learner(dls, opt_func, **kwargs):
    torch.manual_seed(0)
    return Learner(dls, Net(), loss_func=CrossEntropyLossFlat(), opt_func=opt_func, metrics=accuracy,
                   splitter=lambda m: [params(m.body), params(m.head)], **kwargs)

# ---------------------------------------------------------------- bad input
FACTORIES = [SGDAnneal, RMSPropAnneal, AdamAnneal, annealed(RAdam), partial(AnnealOptimizer, cbs=[sgd_step])]

@pytest.mark.parametrize('kwargs,exc,msg', [
    (dict(lr=-1e-3), ValueError, 'lr must be in [0, inf)'),
    (dict(lr=float('nan')), ValueError, 'lr must be a finite number'),
    (dict(lr=slice(-1., 1e-3)), ValueError, 'lr.start must be in [0, inf)'),
    (dict(lr=[1e-3, -1.]), ValueError, 'lr[1] must be in [0, inf)'),
    (dict(lr='big'), TypeError, 'lr must be a real number'),
    (dict(anneal_rate=0.), ValueError, 'anneal_rate must be in (0, 1]'),
    (dict(anneal_rate=1.5), ValueError, 'anneal_rate must be in (0, 1]'),
    (dict(anneal_every=0), ValueError, 'anneal_every must be >= 1'),
    (dict(anneal_every=1.5), TypeError, 'anneal_every must be a whole number >= 1'),
    (dict(anneal='cos'), ValueError, 'total_steps (the number of optimizer steps to anneal over, >= 1) is required'),
    (dict(anneal='cos', total_steps=0), ValueError, 'total_steps must be >= 1'),
    (dict(anneal='exp', total_steps=100), ValueError, 'total_steps applies to shaped anneals'),
    (dict(anneal='cos', total_steps=100, anneal_rate=0.9), ValueError, "anneal_rate=0.9 applies to anneal='exp' only"),
    (dict(anneal='lin', total_steps=100, anneal_every=10), ValueError, "anneal_every=10 applies to anneal='exp' only"),
    (dict(anneal='sqrt', total_steps=100, anneal_rate=0.9999, anneal_every=1), ValueError,
     "anneal_rate=0.9999 and anneal_every=1 applies to anneal='exp' only"),
    (dict(anneal='step'), ValueError, "anneal must be one of 'cos', 'lin', 'exp', 'sqrt', 'poly'"),
    (dict(anneal=3), TypeError, 'anneal must be a name in'),
    (dict(lr_min=-1.), ValueError, 'lr_min must be in [0, inf)'),
    (dict(impl='fast'), ValueError, "impl must be one of 'auto', 'fused', 'foreach', 'stepper'"),
])
@pytest.mark.parametrize('factory', FACTORIES, ids=['SGDAnneal', 'RMSPropAnneal', 'AdamAnneal', 'annealed(RAdam)', 'AnnealOptimizer'])
def test_bad_anneal_args(factory, kwargs, exc, msg):
    ps = make_params()
    before = [p.detach().clone() for p in ps]
    with pytest.raises(exc) as e: factory(ps, **({'lr': 1e-3} | kwargs))
    assert msg in str(e.value), str(e.value)
    assert bitwise(ps, before)

@pytest.mark.parametrize('factory,kwargs,exc,msg', [
    (AdamAnneal, dict(mom=1.), ValueError, 'mom must be in [0, 1)'),
    (AdamAnneal, dict(mom=-0.1), ValueError, 'mom must be in [0, 1)'),
    (AdamAnneal, dict(sqr_mom=1.), ValueError, 'sqr_mom must be in [0, 1)'),
    (AdamAnneal, dict(eps=0.), ValueError, 'eps must be in (0, inf)'),
    (AdamAnneal, dict(wd=-0.1), ValueError, 'wd must be in [0, inf)'),
    (AdamAnneal, dict(decouple_wd='yes'), TypeError, 'decouple_wd must be True or False'),
    (SGDAnneal, dict(mom=1.5), ValueError, 'mom must be in [0, 1)'),
    (RMSPropAnneal, dict(sqr_mom=1.), ValueError, 'sqr_mom must be in [0, 1)'),
    (RMSPropAnneal, dict(eps=-1e-8), ValueError, 'eps must be in (0, inf)'),
    (RMSPropAnneal, dict(impl='fused'), ValueError, "impl='fused' needs fastai's Adam or SGD steppers"),
    (annealed(RAdam, impl='foreach'), dict(), ValueError, "impl='foreach' needs fastai's Adam or SGD steppers"),
    (AdamAnneal, dict(params=[]), ValueError, 'params must hold at least one tensor or param group'),
    (AdamAnneal, dict(params='mix'), TypeError, 'params must be all tensors or all param-group dicts'),
    (AdamAnneal, dict(params='nokey'), ValueError, "param group 0 must have a 'params' key"),
    (AdamAnneal, dict(params='badkey'), ValueError, "param group 0: unknown hyper-parameter 'nesterov'"),
    (AdamAnneal, dict(params='badbeta'), ValueError, 'sqr_mom must be in [0, 1)'),
    (SGDAnneal, dict(params='badlr'), ValueError, 'param group 0 lr must be in [0, inf)'),
    (SGDAnneal, dict(params='betas'), ValueError, 'param group 0: betas sets mom and sqr_mom, and no stepper of this optimizer takes'),
    (AdamAnneal, dict(weight_decay=0.1), TypeError, "AdamAnneal got unknown argument(s) ['weight_decay']; it takes lr, mom, sqr_mom"),
    (SGDAnneal, dict(momentum=0.9, nesterov=True), TypeError, "SGDAnneal got unknown argument(s) ['momentum', 'nesterov']"),
    (RMSPropAnneal, dict(anneal_rte=0.5), TypeError, "RMSPropAnneal got unknown argument(s) ['anneal_rte']"),
    (AdamAnneal, dict(betas=(0.9, 0.99)), TypeError, "betas=(b1, b2) is mom=b1, sqr_mom=b2"),
    (partial(AnnealOptimizer, cbs=[weight_decay, sgd_step]), dict(weight_decay=0.1), TypeError,
     "AnnealOptimizer got torch's hyper name(s) ['weight_decay']"),
    (AdamAnneal, dict(wd=[0.01, -1.]), ValueError, 'wd[1] must be in [0, inf)'),
    (SGDAnneal, dict(mom=[0.9, 1.]), ValueError, 'mom[1] must be in [0, 1)'),
    (AdamAnneal, dict(eps=[1e-5, 1e-5, 1e-5], params='two'), ValueError, 'eps has 3 values but the optimizer has 2 parameter group(s)'),
    # a flat list of tensors is one group (fastai's rule), however many tensors it holds
    (AdamAnneal, dict(lr=[1e-3, 1e-2], params='flat2'), ValueError, 'lr has 2 values but the optimizer has 1 parameter group(s)'),
    (SGDAnneal, dict(mom=[0.9, 0.5], params='flat2'), ValueError, 'mom has 2 values but the optimizer has 1 parameter group(s)'),
    # annealed(...) checks the lengths before fastai's `set_hyper` (a bare AssertionError; under `python -O` it kept the first value)
    (annealed(RAdam), dict(lr=[1e-3, 1e-2, 1e-1], params='flat2'), ValueError, 'lr has 3 values but the optimizer has 1 parameter group'),
    (annealed(Adam), dict(mom=[0.9, 0.8, 0.7], params='two'), ValueError, 'mom has 3 values but the optimizer has 2 parameter group'),
    (annealed(Adam), dict(wd=slice(-1., 0.1), params='two'), ValueError, 'wd.start must be in [0, inf)'),
    (AdamAnneal, dict(mom=slice(0.9, 0.9, 2), params='two'), ValueError, 'mom as a slice must be slice(stop) or slice(start, stop)'),
    (AdamAnneal, dict(wd=np.array([0.1, -1.]), params='two'), ValueError, 'wd[1] must be in [0, inf)'),
    (AdamAnneal, dict(impl='fused', params='complex'), ValueError,
     "impl='fused' takes real floating-point params only, got a torch.complex64 param in param group 1"),
    (SGDAnneal, dict(impl='foreach', params='complex'), ValueError, "impl='foreach' takes real floating-point params only"),
])
def test_bad_optimizer_args(factory, kwargs, exc, msg):
    ps = make_params()
    groups = {'mix': [ps[0], {'params': ps[1:]}], 'nokey': [{'lr': 1e-3}], 'badkey': [{'params': ps, 'nesterov': True}],
              'badbeta': [{'params': ps, 'betas': (0.9, 1.0)}], 'badlr': [{'params': ps, 'lr': -1.}],
              'betas': [{'params': ps, 'betas': (0.9, 0.99)}], 'two': two_groups(ps),
              'complex': [ps, [nn.Parameter(torch.zeros(2, dtype=torch.complex64))]], 'flat2': ps[:2]}
    kwargs = dict(kwargs)
    p = kwargs.pop('params', ps)
    with pytest.raises(exc) as e: factory(groups.get(p, p) if isinstance(p, str) else p, **kwargs)
    assert msg in str(e.value), str(e.value)

def test_annealed_bad_opt_func():
    with pytest.raises(TypeError, match='opt_func must be a fastai optimizer function'): annealed(torch.optim.AdamW)
    with pytest.raises(TypeError, match='opt_func must be a fastai optimizer function'): annealed('Adam')
    with pytest.raises(ValueError, match=r'anneal_rate must be in \(0, 1\]'): annealed(Adam, anneal_rate=2)  # at definition, before any params
    with pytest.raises(ValueError, match="anneal_every=5 applies to anneal='exp' only"):  # would have been silently ignored
        annealed(Adam, anneal='cos', total_steps=10, anneal_every=5)
    with pytest.raises(TypeError, match='already anneals its lr'): annealed(AdamAnneal)(make_params(), lr=1e-3)
    with pytest.raises(TypeError, match='needs an opt_func returning a fastai Optimizer'):
        annealed(lambda ps, lr: torch.optim.SGD(ps, lr=lr))(make_params(), lr=1e-3)

def test_annealed_passes_the_opt_func_s_own_arguments():
    "`annealed` checks the lengths of fastai's per-group hypers only: an opt_func's own tuple argument is its business"
    def adam_betas(ps, lr, betas=(0.9, 0.99)): return Adam(ps, lr=lr, mom=betas[0], sqr_mom=betas[1])
    opt = annealed(adam_betas)(make_params(), lr=1e-3, betas=(0.8, 0.9))
    assert (opt.hypers[0]['mom'], opt.hypers[0]['sqr_mom']) == (0.8, 0.9)

def test_from_optimizer_bad_args():
    with pytest.raises(TypeError, match=r"from_optimizer got unknown argument\(s\) \['anneal_rat'\]"):
        AnnealOptimizer.from_optimizer(RAdam(make_params(), lr=1e-3), anneal_rat=0.5)
    with pytest.raises(TypeError, match='opt must be a plain fastai Optimizer'): AnnealOptimizer.from_optimizer(ranger(make_params(), lr=1e-3))
    with pytest.raises(ValueError, match=r'lr_min must be in \[0, inf\)'): AnnealOptimizer.from_optimizer(RAdam(make_params(), lr=1e-3), lr_min=-1)
    with pytest.raises(ValueError, match='lr as a slice takes start and stop only'): AdamAnneal(make_params(), lr=slice(1e-4, 1e-3, 2))

def test_bad_opt_func_in_learner_touches_nothing(dls):
    learn = learner(dls, partial(AdamAnneal, anneal_rate=0.))
    before = [p.detach().clone() for p in learn.model.parameters()]
    with pytest.raises(ValueError, match=r'anneal_rate must be in \(0, 1\]'): quiet_fit(learn, 'fit', 1)
    assert bitwise(list(learn.model.parameters()), before)

def test_per_group_hyper_lists_as_fastai():
    "one value per param group for mom/sqr_mom/eps/wd, as fastai's `Optimizer` takes them: same hypers, same steps"
    kw = dict(lr=1e-2, mom=[0.9, 0.8], sqr_mom=(0.99, 0.95), eps=[1e-5, 1e-6], wd=[0., 0.1])
    ps,opt = run(partial(AdamAnneal, anneal_rate=1, impl='stepper', **kw), n=10, groups=two_groups)
    ref,ref_opt = run(partial(Adam, **kw), n=10, groups=two_groups)
    for k in ('mom', 'sqr_mom', 'eps', 'wd'): assert [h[k] for h in opt.hypers] == [h[k] for h in ref_opt.hypers], k
    assert bitwise(ps, ref)
    assert [h['wd'] for h in SGDAnneal(two_groups(make_params()), wd=[0., 0.1]).hypers] == [0., 0.1]
    opt = AnnealOptimizer(two_groups(make_params()), [weight_decay, sgd_step], lr=1e-3, wd=[0., 0.1])
    assert [h['wd'] for h in opt.hypers] == [0., 0.1]

@pytest.mark.parametrize('kw', [dict(wd=slice(1e-3, 1e-1)), dict(wd=slice(0.1)), dict(mom=np.array([0.9, 0.8])),
                                dict(sqr_mom=slice(0.9, 0.99), eps=np.array([1e-5, 1e-6])), dict(eps=slice(0, 1e-5))],
                         ids=['wd_slice', 'wd_stop', 'mom_array', 'both', 'zero_start'])  # a start of 0 is none, as fastai's
@pytest.mark.parametrize('ours,theirs', [(AdamAnneal, Adam), (annealed(Adam), Adam)], ids=['AdamAnneal', 'annealed'])
def test_per_group_hypers_as_slices_and_arrays_as_fastai(kw, ours, theirs):
    "A slice or a 1-d array for a hyper, as fastai's `set_hyper` spreads it over the groups (they were refused as 'not a real number')"
    ps,opt = run(partial(ours, lr=1e-2, anneal_rate=1, impl='stepper', **kw), n=5, groups=two_groups)
    ref,ref_opt = run(partial(theirs, lr=1e-2, **kw), n=5, groups=two_groups)
    for k in kw: assert [h[k] for h in opt.hypers] == pytest.approx([h[k] for h in ref_opt.hypers], rel=1e-15), k
    assert bitwise(ps, ref)

@pytest.mark.parametrize('impl', ['fused', 'foreach'])
def test_forced_impl_refused_at_step_changes_nothing(impl):
    "a group the forced kernels cannot take (sparse grads) is refused before any group steps: params, state and clocks as before"
    if impl == 'fused' and 'cpu' not in _FUSED_DEVICES: pytest.skip('no fused kernels on the CPU')
    torch.manual_seed(0)
    lin,emb = nn.Linear(3, 1),nn.Embedding(10, 3, sparse=True)
    opt = SGDAnneal([list(lin.parameters()), list(emb.parameters())], lr=0.1, mom=0.9, impl=impl)  # SGD's steppers would take it
    lin(emb(torch.tensor([1, 2]))).sum().backward()
    before = [p.detach().clone() for p in lin.parameters()]
    with pytest.raises(RuntimeError, match=rf"impl='{impl}' takes dense real .* got a sparse grad in param group 1; use impl='stepper'"):
        opt.step()
    assert bitwise(list(lin.parameters()), before) and opt.anneal_steps == [0, 0] and 'grad_avg' not in opt.state[lin.weight]

@pytest.mark.parametrize('impl', ['auto', 'stepper', 'foreach', pytest.param('fused', marks=needs_cpu_fused)])
@pytest.mark.parametrize('make', [partial(AdamAnneal, wd=0.1), RMSPropAnneal, partial(SGDAnneal, mom=0.9, wd=0.1, decouple_wd=False)],
                         ids=['adam', 'rmsprop', 'sgd_l2'])
def test_sparse_grad_refused_before_any_change(make, impl):
    ("steppers that cannot take a sparse grad (`average_sqr_grad`, `l2_reg` with wd) refuse it by name before any group steps, on "
     "every path: fastai's own would change the params, then fail inside aten")
    if make is RMSPropAnneal and impl in ('foreach', 'fused'): pytest.skip("RMSProp's steppers have no fast path to force")
    torch.manual_seed(0)
    lin,emb = nn.Linear(3, 1),nn.Embedding(10, 3, sparse=True)
    opt = make([list(lin.parameters()), list(emb.parameters())], lr=0.1, impl=impl)
    lin(emb(torch.tensor([1, 2]))).sum().backward()
    before = [p.detach().clone() for p in [*lin.parameters(), *emb.parameters()]]
    with pytest.raises(RuntimeError, match=r"got a sparse grad in param group 1: this optimizer's `(average_sqr_grad|l2_reg)` stepper"):
        opt.step()
    assert bitwise([*lin.parameters(), *emb.parameters()], before) and opt.anneal_steps == [0, 0]
    assert all(len(opt.state[p]) == 0 for p in [*lin.parameters(), *emb.parameters()])

def test_sparse_grad_steps_with_sgd():
    "SGD with true weight decay takes a sparse grad on the steppers, as fastai's `SGD` does, and counts the step"
    torch.manual_seed(0)
    a,b = nn.Embedding(10, 3, sparse=True),nn.Embedding(10, 3, sparse=True)
    b.load_state_dict(a.state_dict())
    opt,ref = SGDAnneal(a.parameters(), lr=0.1, mom=0.9, wd=0.1, anneal_rate=1),SGD(b.parameters(), lr=0.1, mom=0.9, wd=0.1)
    for o,m in ((opt, a), (ref, b)):
        for _ in range(3): m(torch.tensor([1, 2])).sum().backward(); o.step(); o.zero_grad()
    assert bitwise(list(a.parameters()), list(b.parameters())) and opt.anneal_steps == [3]

@pytest.mark.parametrize('make', [partial(AdamAnneal, wd=0.01), partial(SGDAnneal, mom=0.9, wd=0.01)], ids=['adam', 'sgd'])
def test_tensor_hypers_on_every_path(make):
    "a 0-d tensor lr or momentum (a scheduler computing in torch) steps on the foreach and fused paths as on the steppers"
    res = {}
    for impl in ['stepper', 'foreach'] + (['fused'] if KERNELS.fused and 'cpu' in _FUSED_DEVICES else []):
        ps = make_params()
        opt = make(ps, lr=1e-2, impl=impl)
        for k in range(5):
            for h in opt.hypers: h['lr'],h['mom'] = torch.tensor(1e-2*(1 - k/10)),torch.tensor(0.9)
            set_grads(ps, k); opt.step(); opt.zero_grad()
        res[impl] = ps
    assert all(rel_err(ps, res['stepper']) < 1e-6 for ps in res.values())

def test_an_annealed_lr_gone_bad_mid_training_is_refused_before_any_group_steps():
    ("a custom anneal tried at construction from the groups' lrs, and each step's lr checked before any group steps: a scheduler "
     "may later set an lr the annealer cannot take")
    gate = lambda s, e, p: s*(1 - p) if s < 0.05 else math.nan
    ps = make_params()
    opt = AdamAnneal(two_groups(ps), lr=1e-3, anneal=gate, total_steps=10)
    set_grads(ps, 0); opt.step()
    opt.set_hyper('lr', [1e-3, 0.1])  # as a `ParamScheduler` would
    before = [p.detach().clone() for p in ps]
    set_grads(ps, 1)
    with pytest.raises(ValueError, match=r"gave the lr nan from the lr 0.1 \(param group 1 at anneal step 1\)"): opt.step()
    assert bitwise(ps, before) and opt.anneal_steps == [1, 1]
    opt.set_hyper('lr', [1e-3, math.nan])  # a scheduler's NaN is named as the group's lr, not blamed on the annealer
    with pytest.raises(ValueError, match=r"the lr of param group 1 at anneal step 1 is nan; an lr must be a finite number >= 0"):
        opt.step()
    assert bitwise(ps, before)
    assert AdamAnneal(make_params(), lr=0., anneal=sched_exp, total_steps=10).hypers[0]['lr'] == 0  # fastai's exp at 0: left to step

@pytest.mark.parametrize('key', ['momentum', 'mom', 'betas'])
def test_group_momentum_picks_the_momentum_steppers(key):
    ("torch-style groups asking for momentum (torch's `momentum`, fastai's `mom`, `betas=(mom, sqr_mom)`) get it (torch's SGD, "
     "fastai's RMSProp with that mom), while a group without it steps as plain SGD (the s24 audit's O030, O031)")
    def go(make, key='momentum'):
        ps = make_params()
        opt = make([{'params': ps[:2], key: (0.9, 0.9) if key == 'betas' else 0.9}, {'params': ps[2:]}])
        for k in range(10): set_grads(ps, k); opt.step(); opt.zero_grad()
        return ps
    if key != 'betas':  # torch's SGD has no `betas`
        assert rel_err(go(lambda g: SGDAnneal(g, lr=1e-2, anneal_rate=1), key), go(lambda g: torch.optim.SGD(g, lr=1e-2))) < 1e-6
    ps = go(lambda g: RMSPropAnneal(g, lr=1e-3, anneal_rate=1), key)
    sqr_mom = [0.9, 0.99] if key == 'betas' else 0.99  # `betas` gives the group its sqr_mom too
    ref = go(lambda g: RMSProp([g[0]['params'], g[1]['params']], lr=1e-3, mom=[0.9, 0.], sqr_mom=sqr_mom))
    assert bitwise(ps, ref)

# ---------------------------------------------------------------- the anneal factor
@pytest.mark.parametrize('rate,every', [(0.97, 1), (0.5, 3), (1., 1), (0.9, 40)])
def test_anneal_lr_exp_is_staircase(rate, every):
    for t in [0, 1, every-1, every, 2*every+1, 1000]:
        assert anneal_lr(0.1, t, anneal_rate=rate, anneal_every=every) == pytest.approx(0.1 * rate ** (t // every), rel=1e-12)
    assert anneal_lr(0.1, 10**6, anneal_rate=0.5, lr_min=1e-3) == 1e-3  # floor
    assert anneal_lr(1e-4, 10**6, anneal_rate=0.5, lr_min=1e-3) == 1e-4  # a floor never raises an lr below it

@pytest.mark.parametrize('anneal,f', [('cos', sched_cos), ('lin', sched_lin), ('sqrt', lambda s,e,p: e + (s-e)*(1-math.sqrt(p))),
                                      ('poly', lambda s,e,p: e + (s-e)*(1-p)**2), (lambda s,e,p: s - (s-e)*p**3, lambda s,e,p: s - (s-e)*p**3)])
def test_anneal_lr_shapes(anneal, f):
    for t in range(0, 121, 7):
        assert anneal_lr(0.1, t, anneal=anneal, total_steps=100, lr_min=1e-3) == pytest.approx(f(0.1, 1e-3, min(t/100, 1)), rel=1e-12)

def test_cos_matches_torch_cosine_annealing():
    "`anneal='cos'` with a constant hyper lr is torch's `CosineAnnealingLR(T_max=total_steps, eta_min=lr_min)`"
    opt = torch.optim.SGD(make_params(1), lr=0.1)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=50, eta_min=1e-3)
    for t in range(50):
        assert anneal_lr(0.1, t, anneal='cos', total_steps=50, lr_min=1e-3) == pytest.approx(opt.param_groups[0]['lr'], rel=1e-9)
        opt.step(); sched.step()

@pytest.mark.parametrize('opt_func', [SGD, partial(SGD, mom=0.9), RMSProp, Adam, partial(Adam, decouple_wd=False), RAdam, QHAdam, Lamb, Larc, ranger],
                         ids=['SGD', 'SGD-mom', 'RMSProp', 'Adam', 'Adam-L2', 'RAdam', 'QHAdam', 'Lamb', 'Larc', 'ranger'])
def test_every_stepper_sees_annealed_lr(opt_func):
    "annealed(X) steps exactly as X whose hyper lr is set to lr*factor(t) before each step: every stepper, weight decay included"
    kw = dict(anneal_rate=0.9, anneal_every=3)
    ps,opt = run(annealed(partial(opt_func, wd=0.1), impl='stepper', **kw), n=30, groups=lambda ps: two_groups(ps) if opt_func is not ranger else ps)
    ref_ps = make_params()
    ref = opt_func(two_groups(ref_ps) if opt_func is not ranger else ref_ps, lr=1e-3, wd=0.1)
    for k in range(30):
        ref.set_hyper('lr', anneal_lr(1e-3, k, **kw))
        set_grads(ref_ps, k); ref.step(); ref.zero_grad()
    assert bitwise(ps, ref_ps)
    assert all(h['lr'] == 1e-3 for h in opt.hypers)  # the hyper is never overwritten
    assert opt.anneal_steps == [30] * len(opt.hypers)

def test_recorded_lrs_and_factors():
    ps,opt = run(annealed(recording_sgd, anneal_rate=0.5, anneal_every=2), n=7)
    assert opt.state[ps[0]]['lrs'] == [1e-3 * 0.5 ** (t // 2) for t in range(7)]
    assert opt.anneal_factors == pytest.approx([0.5 ** 3])
    assert opt.anneal_lrs == pytest.approx([1e-3 * 0.5 ** 3])

# ---------------------------------------------------------------- equivalences
@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('decouple_wd', [True, False])
def test_adam_anneal_rate_1_is_fastai_adam(impl, decouple_wd):
    ps,_ = run(partial(AdamAnneal, lr=1e-2, wd=0.05, decouple_wd=decouple_wd, anneal_rate=1, impl=impl), groups=two_groups)
    ref,_ = run(partial(Adam, lr=1e-2, wd=0.05, decouple_wd=decouple_wd), groups=two_groups)
    if impl == 'fused': assert rel_err(ps, ref) < 1e-6
    else: assert bitwise(ps, ref)  # same steppers / same operations in the same order

@pytest.mark.parametrize('impl', IMPLS)
def test_adam_anneal_is_torch_adamw_and_adam(impl):
    ps,_ = run(partial(AdamAnneal, lr=1e-2, mom=0.8, sqr_mom=0.95, eps=1e-6, wd=0.1, anneal_rate=1, impl=impl))
    ref,_ = run(lambda p: torch.optim.AdamW(p, lr=1e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1))
    assert rel_err(ps, ref) < 1e-6
    ps,_ = run(partial(AdamAnneal, lr=1e-2, wd=0.1, decouple_wd=False, anneal_rate=1, impl=impl))
    ref,_ = run(lambda p: torch.optim.Adam(p, lr=1e-2, betas=(0.9, 0.99), eps=1e-5, weight_decay=0.1))
    assert rel_err(ps, ref) < 1e-6

@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('mom,wd,decouple_wd', [(0., 0., True), (0.9, 0., True), (0.9, 0.1, True), (0.9, 0.1, False), (0., 0.1, False)])
def test_sgd_anneal_rate_1_is_fastai_sgd(impl, mom, wd, decouple_wd):
    ps,_ = run(partial(SGDAnneal, lr=1e-2, mom=mom, wd=wd, decouple_wd=decouple_wd, anneal_rate=1, impl=impl), groups=two_groups)
    ref,_ = run(partial(SGD, lr=1e-2, mom=mom, wd=wd, decouple_wd=decouple_wd), groups=two_groups)
    assert rel_err(ps, ref) < 1e-6
    if impl != 'fused': assert bitwise(ps, ref)
    if not decouple_wd:  # L2 is torch's weight decay
        tps,_ = run(lambda p: torch.optim.SGD(p, lr=1e-2, momentum=mom, weight_decay=wd))
        ps,_ = run(partial(SGDAnneal, lr=1e-2, mom=mom, wd=wd, decouple_wd=False, anneal_rate=1, impl=impl))
        assert rel_err(ps, tps) < 1e-6

def test_rmsprop_anneal_rate_1_is_fastai_rmsprop():
    for mom in (0., 0.9):
        ps,_ = run(partial(RMSPropAnneal, lr=1e-3, mom=mom, wd=0.01, anneal_rate=1))
        ref,_ = run(partial(RMSProp, lr=1e-3, mom=mom, wd=0.01))
        assert bitwise(ps, ref)

@pytest.mark.parametrize('factory', [partial(AdamAnneal, wd=0.1), partial(AdamAnneal, wd=0.1, decouple_wd=False),
                                     partial(SGDAnneal, mom=0.9, wd=0.1), partial(SGDAnneal, wd=0.1, decouple_wd=False)],
                         ids=['AdamW', 'Adam-L2', 'SGD-mom', 'SGD-L2'])
@needs_cpu_fused
def test_fast_paths_match_stepper_after_100_annealed_steps(factory):
    "fused and foreach agree with the per-parameter reference to 1e-6 relative, state included, with annealing on and per-param `do_wd`"
    def go(impl):
        ps = make_params()
        opt = factory(two_groups(ps), lr=1e-2, anneal_rate=0.99, impl=impl)
        opt.state[ps[1]]['do_wd'] = False  # as `Learner` does for biases and norms
        for k in range(100): set_grads(ps, k); opt.step(); opt.zero_grad()
        return ps,opt
    ref,ref_opt = go('stepper')
    for impl in ('foreach', 'fused'):
        ps,opt = go(impl)
        assert rel_err(ps, ref) < 1e-6, impl
        for p,rp in zip(ps, ref):
            st,rst = opt.state[p],ref_opt.state[rp]
            assert st.keys() == rst.keys() and st.get('step') == rst.get('step')
            for k in ('grad_avg', 'sqr_avg'):
                if k in st: assert rel_err([st[k]], [rst[k]]) < 1e-6, (impl, k)
        assert opt.anneal_steps == ref_opt.anneal_steps == [100, 100]

@needs_cpu_fused
def test_sgd_fast_path_when_momentum_is_scheduled_to_0():
    "a momentum schedule reaching 0 (the fused kernel refuses buffers then): the fast paths still update the buffer as fastai does"
    def go(impl):
        ps = make_params()
        opt = SGDAnneal(ps, lr=1e-2, mom=0.9, anneal_rate=0.99, impl=impl)
        for k in range(10):
            opt.set_hyper('mom', 0. if k % 3 == 0 else 0.9)
            set_grads(ps, k); opt.step(); opt.zero_grad()
        return ps,[opt.state[p]['grad_avg'] for p in ps]
    ref,ref_bufs = go('stepper')
    for impl in ('foreach', 'fused'):
        ps,bufs = go(impl)
        assert rel_err(ps, ref) < 1e-6 and rel_err(bufs, ref_bufs) < 1e-6, impl

@needs_cpu_fused
def test_fast_path_mixed_steps_in_a_group():
    "params of one group that started at different steps (e.g. trained batchnorms while frozen) keep their own debiasing"
    def go(impl):
        ps = make_params()
        opt = AdamAnneal(ps, lr=1e-2, anneal_rate=0.95, impl=impl)
        for k in range(10):
            set_grads(ps, k)
            if k < 5: ps[0].grad = ps[2].grad = None
            opt.step(); opt.zero_grad()
        return ps,opt
    ref,ref_opt = go('stepper')
    assert [ref_opt.state[p]['step'] for p in ref] == [5, 10, 5, 10]
    for impl in ('foreach', 'fused'): assert rel_err(go(impl)[0], ref) < 1e-6

def test_auto_picks_fused_on_cpu():
    opt = AdamAnneal(make_params(), lr=1e-3)
    set_grads(opt.param_lists[0], 0)
    assert opt._path(opt.param_lists[0]) == ('fused' if 'cpu' in _FUSED_DEVICES else 'foreach')
    opt = annealed(Adam)(make_params(), lr=1e-3)  # fastai's Adam steppers are recognised
    assert opt.fast_kind == ('adam', True, True)
    assert RMSPropAnneal(make_params()).fast_kind is None

@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
@needs_cpu_fused
def test_low_precision_params_fast_vs_stepper(dtype):
    ("half-precision params (a model cast with `.to(dtype)`): the foreach path is the steppers' bit for bit (torch's foreach multiply "
     "rounds half precision otherwise, so it multiplies one tensor at a time), the fused kernel within a few ulps")
    for f in (partial(AdamAnneal, lr=1e-2, anneal_rate=0.99, wd=0.1), partial(SGDAnneal, lr=1e-2, mom=0.9, anneal_rate=0.99, wd=0.1)):
        ref,_ = run(partial(f, impl='stepper'), n=20, ps=make_params(dtype=dtype))
        ps,_ = run(partial(f, impl='foreach'), n=20, ps=make_params(dtype=dtype))
        assert ps[0].dtype == dtype and bitwise(ps, ref), f.func
        ps,_ = run(partial(f, impl='fused'), n=20, ps=make_params(dtype=dtype))
        # the kernel rounds its intermediates otherwise: it stays as close to the fp32 run as the steppers do (bf16: both ~4% off
        # after 20 steps, fp16 ~0.3%)
        full,_ = run(partial(f, impl='stepper'), n=20, ps=make_params())
        full = [p.to(dtype) for p in full]
        assert ps[0].dtype == dtype and rel_err(ps, full) < 1.5*rel_err(ref, full) + 1e-3, f.func

def test_foreach_half_bucket_with_mixed_state_dtypes():
    ("an fp16 bucket whose state mixes fp32 buffers (made before `model.half()`) and fp16 ones: foreach still multiplies each "
     "fp16 buffer as the steppers do (its choice is per tensor, not the bucket's first)")
    def go(impl):
        torch.manual_seed(0)
        p0,p1 = nn.Parameter(torch.randn(64).half()),nn.Parameter(torch.randn(64, 16).half()[:, ::2])  # a view: not fusable
        opt = SGDAnneal([p0, p1], lr=1e-2, mom=0.9, anneal_rate=0.99, impl=impl)
        opt.state[p0],opt.state[p1] = {'grad_avg': torch.randn(64)},{'grad_avg': torch.randn(64, 8).half()}
        g = torch.Generator().manual_seed(1)
        for _ in range(10):
            p0.grad,p1.grad = torch.randn(64, generator=g).half(),torch.randn(64, 8, generator=g).half()
            opt.step()
        return [p0, p1, opt.state[p0]['grad_avg'], opt.state[p1]['grad_avg']]
    assert bitwise(go('foreach'), go('stepper'))

# ---------------------------------------------------------------- the clock
def test_clock_resumes_from_state_dict():
    f = partial(AdamAnneal, lr=1e-2, anneal_rate=0.9, anneal_every=2)
    ps,opt = run(f, n=10, groups=two_groups)
    sd = copy.deepcopy(opt.state_dict())
    ps2 = [p.detach().clone().requires_grad_() for p in ps]
    for k in range(10, 20): set_grads(ps, k); opt.step(); opt.zero_grad()
    opt2 = f(two_groups(ps2))
    opt2.load_state_dict(sd)
    assert opt2.anneal_steps == [10, 10]
    for k in range(10, 20): set_grads(ps2, k); opt2.step(); opt2.zero_grad()
    assert bitwise(ps, ps2) and opt2.anneal_steps == opt.anneal_steps == [20, 20]

def test_group_without_grads_keeps_its_clock():
    ps = make_params()
    opt = AdamAnneal(two_groups(ps), lr=1e-2, anneal_rate=0.5)
    for k in range(4):
        set_grads(ps, k)
        for p in ps[:2]: p.grad = None
        opt.step()
    assert opt.anneal_steps == [0, 4] and opt.anneal_factors == pytest.approx([1., 0.5**4])

def test_learner_save_load_resumes_clock(dls, tmp_path):
    f = partial(AdamAnneal, anneal_rate=0.9, anneal_every=3)
    learn = learner(dls, f, path=tmp_path)
    quiet_fit(learn, 'fit', 1, 1e-2)
    learn.save('ck', with_opt=True)
    dls.train.rng.seed(1)  # the same batches for both continuations
    quiet_fit(learn, 'fit', 1, 1e-2)
    learn2 = learner(dls, f, path=tmp_path)
    learn2.load('ck', with_opt=True)
    assert learn2.opt.anneal_steps == [8, 8]
    dls.train.rng.seed(1)
    quiet_fit(learn2, 'fit', 1, 1e-2)
    assert learn2.opt.anneal_steps == learn.opt.anneal_steps == [16, 16]
    assert bitwise(list(learn.model.parameters()), list(learn2.model.parameters()))

def test_freeze_keeps_body_clock_with_train_bn(dls):
    "frozen groups' clocks stay put, even though `train_bn` trains their batchnorms; unfreezing starts them"
    learn = learner(dls, partial(AdamAnneal, anneal_rate=0.9))
    learn.freeze()
    quiet_fit(learn, 'fit', 1, 1e-2)
    assert learn.opt.anneal_steps == [0, 8]
    bn = learn.model.body[1].weight
    assert learn.opt.state[bn]['step'] == 8  # trained, at the group's unannealed lr
    learn.unfreeze()
    quiet_fit(learn, 'fit', 1, 1e-2)
    assert learn.opt.anneal_steps == [8, 16]

@pytest.mark.parametrize('how', ['export', 'load_learner', 'reset_opt', 'ranger_export'])
def test_frozen_body_keeps_its_clock_when_frozen_idx_is_lost(dls, how, tmp_path):
    ("A still-frozen body's clock stays put after what resets `frozen_idx` to 0 while the model stays frozen: `learn.export()`, "
     "`load_learner` and `fit(reset_opt=True)` (fastai's `create_opt`), for `annealed(ranger)` too. The clock read `frozen_idx` only, "
     "and the body's batchnorms (`train_bn`) advanced it; `freeze_to` now marks the params it freezes (`optimizer.FROZEN`)")
    f = annealed(ranger, anneal_rate=0.9) if how == 'ranger_export' else partial(AdamAnneal, anneal_rate=0.9)
    learn = learner(dls, f, path=tmp_path)
    learn.freeze()
    quiet_fit(learn, 'fit', 1, 1e-2)
    if how in ('export', 'ranger_export', 'load_learner'): learn.export('e.pkl')
    if how == 'load_learner':
        from fastai.learner import load_learner
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            learn = load_learner(tmp_path/'e.pkl')
        learn.dls = dls
    quiet_fit(learn, 'fit', 1, 1e-2, reset_opt=how == 'reset_opt')
    opt = getattr(learn.opt, 'opt', learn.opt)
    assert not learn.model.body[0].weight.requires_grad
    assert opt.anneal_steps == [0, 8 if how in ('reset_opt', 'load_learner') else 16]  # load_learner: a new optimizer (export keeps none)
    learn.unfreeze()
    quiet_fit(learn, 'fit', 1, 1e-2)
    assert opt.anneal_steps[0] == 8  # unfrozen: the body's clock starts

@pytest.mark.parametrize('first', ['fastai_adam', 'torch_adamw'])
def test_frozen_with_another_optimizer_then_annealed(dls, first):
    ("A learner frozen while it had fastai's own optimizer or a torch one, then given an `AdamAnneal`: only an annealing optimizer "
     "marks what it freezes (the package patches no fastai name but `lr_find`), so the documented way is to freeze again once the "
     "annealing optimizer is there; the frozen body then keeps its clock still, and unfreezing leaves no mark")
    from fastai.optimizer import OptimWrapper
    learn = learner(dls, Adam if first == 'fastai_adam' else partial(OptimWrapper, opt=torch.optim.AdamW))
    learn.freeze()
    learn.opt_func = partial(AdamAnneal, anneal_rate=0.9)
    learn.create_opt(); learn.freeze()
    quiet_fit(learn, 'fit', 1, 1e-2)
    assert learn.opt.anneal_steps == [0, 8]
    learn.unfreeze()
    quiet_fit(learn, 'fit', 1, 1e-2)
    assert learn.opt.anneal_steps == [8, 16]
    assert not any(FROZEN in vars(p) for p in learn.model.parameters())

@pytest.mark.parametrize('how', ['embeddings', 'norms_only'])
def test_params_frozen_by_hand_are_not_a_frozen_group(how):
    ("Params a user turns off by hand, without `freeze_to`, leave the group's clock running while what is left of it trains (the "
     "norms, which fastai's `train_bn` marks): a frozen embedding table beside its LayerNorm, a model whose norms alone train")
    torch.manual_seed(0)
    emb,ln,bn,head = nn.Embedding(10, 4),nn.LayerNorm(4),nn.BatchNorm1d(4),nn.Linear(4, 2)
    class M(nn.Module):
        def __init__(self): super().__init__(); self.emb,self.ln,self.bn,self.head = emb,ln,bn,head
        def forward(self, x): return self.head(self.bn(self.ln(self.emb(x))))
    x,y = torch.randint(0, 10, (64,)),torch.randint(0, 2, (64,))
    dls = DataLoaders.from_dsets(TensorDataset(x, y), TensorDataset(x[:16], y[:16]), bs=16)
    split = (lambda m: [params(m.emb) + params(m.ln), params(m.bn) + params(m.head)]) if how == 'embeddings' else params
    learn = Learner(dls, M(), loss_func=CrossEntropyLossFlat(), opt_func=partial(AdamAnneal, anneal_rate=0.9), splitter=split)
    learn.create_opt()
    frozen = [emb.weight] if how == 'embeddings' else [emb.weight, head.weight, head.bias]
    for p in frozen: p.requires_grad_(False)
    quiet_fit(learn, 'fit', 1, 1e-2)
    assert learn.opt.anneal_steps == [4]*len(learn.opt.param_lists)

def test_lr_find_restores_clock(dls):
    learn = learner(dls, partial(AdamAnneal, anneal_rate=0.9))
    quiet_fit(learn, 'fit', 1, 1e-2)
    sd = copy.deepcopy(learn.opt.state_dict())
    w = [p.detach().clone() for p in learn.model.parameters()]
    with learn.no_bar(): learn.lr_find(num_it=10, show_plot=False)
    assert learn.opt.anneal_steps == [8, 8]
    assert bitwise(list(learn.model.parameters()), w)
    for s,s0 in zip(learn.opt.state_dict()['state'], sd['state']):
        assert s.keys() == s0.keys() and all(torch.equal(v, s0[k]) if torch.is_tensor(v) else v == s0[k] for k,v in s.items())

# ---------------------------------------------------------------- with the Learner
def test_composes_with_param_scheduler(dls):
    "the steppers see the scheduler's lr (the recorded hyper) times the optimizer's own factor"
    learn = learner(dls, annealed(recording_sgd, anneal_rate=0.8, anneal_every=3))
    quiet_fit(learn, 'fit_one_cycle', 2, 1e-2)
    hps,seen = learn.recorder.hps['lr'],learn.opt.state[learn.model.head.weight]['lrs']
    assert len(seen) == len(hps) == 16
    assert seen == pytest.approx([lr * 0.8 ** (t // 3) for t,lr in enumerate(hps)], rel=1e-12)

def test_cos_inside_equals_fit_cos_anneal(dls):
    "`annealed(Adam, 'cos', total_steps)` + `fit` steps as `fit_cos_anneal(div_final=inf)` + plain `Adam`"
    learn = learner(dls, annealed(Adam, anneal='cos', total_steps=16, impl='stepper'))
    dls.train.rng.seed(2)
    quiet_fit(learn, 'fit', 2, 1e-2)
    ref = learner(dls, Adam)
    dls.train.rng.seed(2)
    quiet_fit(ref, 'fit_cos_anneal', 2, 1e-2, div_final=float('inf'))
    assert bitwise(list(learn.model.parameters()), list(ref.model.parameters()))

FITS = [('fit', (1, 1e-2), {}), ('fit_one_cycle', (1, 1e-2), {}), ('fit_flat_cos', (1, 1e-2), {}), ('fit_sgdr', (2, 1, 1e-2), {}),
        ('fine_tune', (1, 1e-2), {}), ('fit_cos_anneal', (1, 1e-2), {}), ('fit_sgdr_anneal', (2, 1, 1e-2), {}),
        ('fit_flat_anneal', (1, 1e-2), {}), ('fine_tune_anneal', (1, 1e-2), {}), ('fit', (1, slice(1e-3, 1e-2)), {})]

@pytest.mark.parametrize('meth,args,kwargs', FITS, ids=[f"{m}{'-slice' if isinstance(a[-1], slice) else ''}" for m,a,_ in FITS])
def test_every_fit_variant(dls, meth, args, kwargs):
    counter = CountSteps()
    learn = learner(dls, partial(AdamAnneal, anneal_rate=0.99), cbs=counter)
    w = [p.detach().clone() for p in learn.model.parameters()]
    quiet_fit(learn, meth, *args, **kwargs)
    assert learn.opt.anneal_steps == [counter.n - counter.frozen, counter.n]  # a frozen phase leaves the body's clock
    assert counter.frozen == (8 if meth.startswith('fine_tune') else 0)
    assert learn.opt.anneal_lrs == pytest.approx([h['lr'] * 0.99**s for h,s in zip(learn.opt.hypers, learn.opt.anneal_steps)], rel=1e-12)
    if isinstance(args[-1], slice): assert [h['lr'] for h in learn.opt.hypers] == pytest.approx([1e-3, 1e-2])  # discriminative lrs kept
    assert not bitwise(list(learn.model.parameters()), w)
    assert all(math.isfinite(v) for v in learn.recorder.values[-1])

@pytest.mark.parametrize('mode', ['fp16', 'bf16'])
def test_mixed_precision_learner(dls, mode):
    "fastai's `MixedPrecision` runs (on CPU its autocast is CUDA-only, so the maths stay fp32) and the clock counts steps"
    learn = learner(dls, AdamAnneal)
    learn = learn.to_fp16() if mode == 'fp16' else learn.to_bf16()
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter('always')
        quiet_fit(learn, 'fit', 1, 1e-2)
    if not torch.cuda.is_available(): assert any('Disabling autocast' in str(w.message) for w in ws)
    assert learn.opt.anneal_steps == [8, 8] and math.isfinite(learn.recorder.values[-1][0])

@needs_cpu_fused
def test_cpu_autocast_bf16_loop():
    "a plain loop under `torch.autocast('cpu', torch.bfloat16)`: fp32 params, bf16 compute; fused and stepper paths agree"
    def go(impl):
        torch.manual_seed(0)
        m = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1))
        opt = AdamAnneal(m.parameters(), lr=1e-2, anneal_rate=0.99, impl=impl)
        x = torch.randn(64, 10, generator=torch.Generator().manual_seed(1)); y = x.sum(1, keepdim=True)
        for _ in range(20):
            with torch.autocast('cpu', dtype=torch.bfloat16): loss = ((m(x).float() - y)**2).mean()
            loss.backward(); opt.step(); opt.zero_grad()
        return list(m.parameters()),loss.item()
    (ps,loss),(ref,_) = go('fused'),go('stepper')
    assert rel_err(ps, ref) < 1e-5 and ps[0].dtype == torch.float32

# ---------------------------------------------------------------- plain PyTorch
def test_plain_pytorch_loop_param_groups():
    "torch-style: `model.parameters()` or group dicts with torch names, `zero_grad(set_to_none=True)`, a closure"
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1))
    opt = AdamAnneal([{'params': m[0].parameters(), 'lr': 1e-3, 'betas': (0.8, 0.9), 'weight_decay': 0.},
                      {'params': m[2].parameters()}], lr=1e-2, anneal_rate=0.99)
    assert [h['lr'] for h in opt.hypers] == [1e-3, 1e-2] and opt.hypers[0]['mom'] == 0.8 and opt.hypers[0]['sqr_mom'] == 0.9
    assert opt.hypers[0]['wd'] == 0. and opt.hypers[1]['wd'] == 0.01
    x = torch.randn(256, 10, generator=torch.Generator().manual_seed(1)); y = x.sum(1, keepdim=True)
    def closure():
        opt.zero_grad(set_to_none=True)
        loss = ((m(x) - y)**2).mean(); loss.backward()
        return loss
    first = closure().item()
    opt.zero_grad(set_to_none=True)
    assert all(p.grad is None for p in m.parameters())
    for _ in range(200): loss = opt.step(closure)
    assert loss.item() < first / 10 and opt.anneal_steps == [200, 200]
    opt2 = SGDAnneal(m.parameters(), lr=1e-3, mom=0.9)  # a generator of params
    assert len(opt2.param_lists) == 1 and len(opt2.param_lists[0]) == 4

@pytest.mark.slow
def test_learns_mnist1d():
    "every annealed optimizer learns MNIST-1D with the paper's CNN: accuracy well above chance (10%); 3 epochs (FASTAI_ANNEAL_FULL=1: 20)"
    full = os.environ.get('FASTAI_ANNEAL_FULL') == '1'
    epochs,min_acc = (20, 0.8) if full else (3, 0.25)
    dls = mnist1d_dls(bs=100)
    for of,lr in [(partial(SGDAnneal, mom=0.9), 0.1), (AdamAnneal, 1e-2), (annealed(RAdam, anneal='cos', total_steps=len(dls.train)*epochs), 1e-2)]:
        torch.manual_seed(0)
        learn = Learner(dls, mnist1d_cnn(), loss_func=CrossEntropyLossFlat(), opt_func=of, metrics=accuracy)
        quiet_fit(learn, 'fit', epochs, lr)
        assert learn.recorder.values[-1][2] > min_acc, (of, learn.recorder.values[-1])

# ---------------------------------------------------------------- state and params that do not fit (review, seventeenth session)
@pytest.mark.parametrize('impl', IMPLS)
@pytest.mark.parametrize('factory', [partial(AdamAnneal, lr=1e-2), partial(SGDAnneal, lr=1e-2, mom=0.9)], ids=['adam', 'sgd'])
def test_state_of_another_shape_raises_before_anything_steps(factory, impl):
    ("Moments of another shape than their param (a param resized through `.data`, as a grown vocabulary is): a clear error at "
     "`step`, before any group steps; torch's fused kernels would walk the smaller buffers past their end (it aborted the process)")
    emb,other = nn.Parameter(torch.randn(10, 4)),nn.Parameter(torch.randn(3))
    opt = factory([[other], [emb]], impl=impl)
    for p in (emb, other): p.grad = torch.randn_like(p)
    opt.step()
    emb.data = torch.cat([emb.data, torch.randn(40, 4)])  # the same Parameter, grown: its state was made for 10 rows
    for p in (emb, other): p.grad = torch.randn_like(p)
    before,sd = [p.detach().clone() for p in (emb, other)],copy.deepcopy(opt.state_dict())
    with pytest.raises(ValueError, match=r"param group 1, param 0: its optimizer state 'grad_avg' has shape \(10, 4\) and the param "
                                         r"\(50, 4\).*clear_state\(\)"):
        opt.step()
    assert bitwise([emb, other], before) and opt.state_dict()['hypers'] == sd['hypers']  # group 0 did not step, nor its clock
    opt.clear_state(); opt.step()  # what the message says works
    assert opt.state[emb]['grad_avg'].shape == emb.shape

@pytest.mark.parametrize('impl', IMPLS)
def test_load_state_dict_checks_and_copies(impl):
    "A state dict for other params is refused (the optimizer unchanged); a good one loads, its hypers copied: no shared anneal clock"
    ps = make_params(2)  # shapes (6, 5) and (6,)
    opt = AdamAnneal(ps, lr=1e-2, impl=impl)
    set_grads(ps, 0); opt.step()
    sd = opt.state_dict()
    rev = AdamAnneal([nn.Parameter(p.detach().clone()) for p in ps[::-1]], lr=1e-2, impl=impl)
    with pytest.raises(ValueError, match=r"sd.s state of param 0 has a moment of shape \(6, 5\), the param \(6,\)"): rev.load_state_dict(sd)
    assert rev.anneal_steps == [0] and not any(rev.state[p] for p in rev.param_lists[0])
    with pytest.raises(ValueError, match=r"sd has 1 param group\(s\) and 2 param state\(s\); this optimizer has 1 and 1"):
        AdamAnneal([nn.Parameter(torch.zeros(3))], lr=1e-2).load_state_dict(sd)
    with pytest.raises(TypeError, match=r"torch's format \('param_groups'\)"): opt.load_state_dict(torch.optim.AdamW(ps).state_dict())
    twin = AdamAnneal([nn.Parameter(p.detach().clone()) for p in ps], lr=1e-2, impl=impl)
    twin.load_state_dict(sd)  # no deepcopy, as a plain-PyTorch user clones an optimizer
    set_grads(twin.param_lists[0], 1); twin.step()
    assert twin.anneal_steps == [2] and opt.anneal_steps == [1]

def test_params_checked_as_torch_checks_them():
    "Tuples and generators are groups; a module, a non-tensor or a param in two groups raise as the optimizer is built"
    m = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    opt = AdamAnneal([tuple(m[0].parameters()), (p for p in m[1].parameters())], lr=[1e-3, 1e-2])
    assert len(opt.param_lists) == 2 and [h['lr'] for h in opt.hypers] == [1e-3, 1e-2]
    for bad,msg in ((m, 'got a Sequential'), (m[0], 'got a Linear'), ([[m[0].weight], ['w']], 'got a str in param group 1'),
                    ([m[0].weight, [m[0].bias]], 'got a mix')):
        with pytest.raises(TypeError, match=msg): AdamAnneal(bad, lr=1e-3)
    dup = [{'params': m.parameters()}, {'params': m[0].parameters(), 'lr': 1e-3}]  # torch's usual mistake
    with pytest.raises(ValueError, match=r"param of shape \(4, 3\) is in param group 0 and in param group 1"): SGDAnneal(dup)
    with pytest.raises(TypeError, match='for torch-style group dicts use'): annealed(RAdam)([{'params': m.parameters()}], lr=1e-3)
    with pytest.raises(ValueError, match='in param group 0 and in param group 1'):
        annealed(RAdam)([list(m.parameters()), [m[1].bias]], lr=1e-3)

def test_annealed_keeps_a_partials_lr(dls):
    "`annealed(partial(Adam, lr=...))` steps at that lr, and a Learner reads it as fastai's `create_opt` reads a partial's"
    ps = make_params(2)
    assert annealed(partial(Adam, lr=0.1))(ps).hypers[0]['lr'] == 0.1 == partial(Adam, lr=0.1)(ps).hypers[0]['lr']
    assert annealed(partial(Adam, lr=0.1))(ps, lr=0.3).hypers[0]['lr'] == 0.3
    with pytest.raises(ValueError, match=r'lr must be in \[0, inf\), got -5'): annealed(partial(Adam, lr=-5.))
    learn = Learner(dls, mnist1d_cnn(), loss_func=CrossEntropyLossFlat(), opt_func=annealed(partial(Adam, lr=0.1)))
    learn.create_opt()
    assert learn.lr == 0.1 and learn.opt.hypers[0]['lr'] == 0.1
    # the package's fits read it before the first optimizer exists, as `create_opt` would: the first fit and the next agree
    from conftest import mk_learner as _synth, RecordHypers
    for opt_func in (annealed(partial(Adam, lr=0.1)), partial(Adam, lr=0.1)):
        learn,peaks = _synth(n_train=2, opt_func=opt_func),[]
        for _ in range(2):
            learn.fit_cos_anneal(1, cbs=(rec := RecordHypers()))
            peaks.append(max(lr for lrs in rec.lrs for lr in lrs))
        assert peaks == [0.1, 0.1], peaks

def test_own_arguments_and_clock_checked():
    "One stepper as fastai takes it; no stepper, no lr, or a clock given or set below 0 raise (the last at `step`, nothing stepped)"
    p = nn.Parameter(torch.ones(2))
    opt = AnnealOptimizer([p], sgd_step, lr=0.1)
    p.grad = torch.ones(2); opt.step()
    assert torch.equal(p.detach(), torch.full((2,), 0.9)) and opt.anneal_steps == [1]
    for kw,msg in ((dict(cbs=[], lr=0.1), 'cbs must be one fastai stepper'), (dict(cbs=[sgd_step]), 'needs lr='),
                   (dict(cbs=[sgd_step], lr=0.1, anneal_step=5), "anneal_step is the optimizer's own clock")):
        with pytest.raises(TypeError, match=msg): AnnealOptimizer([p], **kw)
    opt.set_hyper('anneal_step', -3)
    with pytest.raises(ValueError, match=r"anneal_step \(its anneal clock\) must be an int >= 0, got -3"): opt.step()
    assert torch.equal(p.detach(), torch.full((2,), 0.9))

def test_annealed_takes_eps_0_as_fastai_does():
    "fastai's `radam_step` is written for eps=0 (`if eps:`): `annealed(RAdam)` takes it, as fastai's `RAdam` does"
    ps = make_params(2)
    opt = annealed(RAdam)(ps, lr=1e-2, eps=0.)
    assert opt.hypers[0]['eps'] == 0. == RAdam(ps, lr=1e-2, eps=0.).hypers[0]['eps']
    assert annealed(partial(RAdam, eps=0.))(ps, lr=1e-2).hypers[0]['eps'] == 0.

def test_tuple_groups_count_as_the_optimizer_counts_them():
    "A splitter of tuples gives two groups, and a fit's per-group lrs are checked against two (a slice failed mid-fit)"
    from conftest import mk_learner as _synth, RecordHypers
    learn = _synth(n_train=2, opt_func=AdamAnneal)
    learn.splitter = lambda m: ((m.a,), (m.b,))
    learn.fit_cos_anneal(1, [1e-3, 1e-2], cbs=(rec := RecordHypers()))
    assert len(learn.opt.param_lists) == 2 and max(r[1] for r in rec.lrs) == 1e-2
    learn.fit_cos_anneal(1, slice(1e-4, 1e-2))

def test_the_shape_memo_knows_which_params_stepped():
    "A resized param stepping after another of the same shapes stepped alone is checked: the memo holds which params, not only shapes"
    a,b = nn.Parameter(torch.randn(3, 2)),nn.Parameter(torch.randn(2, 3))
    opt = AdamAnneal([a, b], lr=1e-2)
    a.grad,b.grad = torch.randn(3, 2),torch.randn(2, 3); opt.step()
    b.grad = None; opt.step()  # a alone: the memo holds [(3, 2)]
    b.data = torch.randn(3, 2); b.grad,a.grad = torch.randn(3, 2),None  # b alone, now (3, 2), its moments (2, 3)
    with pytest.raises(ValueError, match=r"its optimizer state 'grad_avg' has shape \(2, 3\) and the param \(3, 2\)"): opt.step()

def test_a_refused_lookahead_load_changes_nothing():
    "`annealed(ranger)`: a state dict for other params raises before fastai's Lookahead takes its slow weights (or empties the dict)"
    ps = make_params(2)
    opt = annealed(ranger)(ps, lr=1e-2)
    for k in range(7): set_grads(ps, k); opt.step()
    sd = copy.deepcopy(opt.state_dict())
    other = annealed(ranger)([nn.Parameter(p.detach().clone()) for p in ps[::-1]], lr=1e-2)
    for k in range(3): set_grads(other.param_lists[0], k); other.step()
    count,slow,keys = other.count,[w.clone() for pg in other.slow_weights for w in pg],sorted(sd)
    with pytest.raises(ValueError, match="was saved for other params"): other.load_state_dict(sd)
    assert other.count == count and bitwise([w for pg in other.slow_weights for w in pg], slow) and sorted(sd) == keys
    set_grads(other.param_lists[0], 4); other.step()  # still steps
    twin = annealed(ranger)([nn.Parameter(p.detach().clone()) for p in ps], lr=1e-2)
    twin.load_state_dict(copy.deepcopy(sd))
    assert twin.count == 7

# ---------------------------------------------------------------- what a mutation audit of optimizer.py and _multi_tensor.py found
# unpinned (twenty-fourth session); `kills <id>`: the audit's mutant(s) the test fails on (each checked)
def hole(s, e, p): return math.nan if 0.4 < p < 0.6 else s + (e - s)*p  # a custom anneal that breaks mid-course only

# ---------------------------------------------------------------- the anneal and its checks
# kills O009
def test_a_shaped_anneal_never_raises_an_lr_below_lr_min():
    "as 'exp' does: a group whose lr is below `lr_min` (a warmup, a discriminative lr) keeps it, it is not annealed up to the floor"
    for t in (0, 50, 100, 150):
        assert anneal_lr(1e-4, t, anneal='cos', total_steps=100, lr_min=1e-3) == 1e-4
        assert anneal_lr(1e-4, t, anneal='lin', total_steps=100, lr_min=1e-3) == 1e-4

# kills O012 (AdamAnneal: only the ends of the course tried) and O051 (annealed: from_optimizer tries nothing); O013 and O049 fail
# it too, but test_bad_input's all-NaN annealer already kills them
@pytest.mark.parametrize('make', [AdamAnneal, annealed(RAdam, anneal=hole, total_steps=100)], ids=['AdamAnneal', 'annealed'])
def test_a_custom_anneal_bad_mid_course_is_refused_at_construction(make):
    kw = dict(anneal=hole, total_steps=100) if make is AdamAnneal else {}
    with pytest.raises(ValueError, match=r"gave the lr nan from the lr 0.1 \(param group 0 at 41% of total_steps\)"):
        make(make_params(), lr=0.1, **kw)

# kills O011
def test_an_anneal_that_fails_at_lr_0_is_left_to_the_first_step():
    "lr=0 is the placeholder a fit replaces (fastai's `SchedExp` cannot start from it): built, then checked at the lr it steps with"
    zero_nan = lambda s, e, p: math.nan if s == 0 else s*(1 - p)
    ps = make_params()
    opt = AdamAnneal(ps, lr=0., anneal=zero_nan, total_steps=10)
    set_grads(ps, 0)
    with pytest.raises(ValueError, match=r'gave the lr nan from the lr 0.0 \(param group 0 at anneal step 0\)'): opt.step()
    opt.set_hyper('lr', 1e-2); opt.step()
    assert opt.anneal_steps == [1]

# kills O060
def test_anneal_factors_are_1_at_lr_0():
    assert AdamAnneal(make_params(), lr=0.).anneal_factors == [1.]

# ---------------------------------------------------------------- hypers per group
# kills O020, O024
@pytest.mark.parametrize('wd', [slice(0.1), [0.1]], ids=['slice', 'list'])
def test_a_group_dict_takes_one_value_per_hyper(wd):
    "a torch-style group dict is one group: a slice or a list for its hyper is refused as the optimizer is built, not at step"
    ps = make_params()
    with pytest.raises(TypeError, match=r'wd must be a real number in \[0, inf\)'):
        AdamAnneal([{'params': ps[:2], 'wd': wd}, {'params': ps[2:]}])

# kills O025, O026
def test_per_group_lists_of_one_value_spread_and_short_lists_raise():
    "a list of one value is spread over the groups (fastai's `set_hyper`); a list shorter than the groups raises ValueError, not a bare assert"
    ps = make_params()
    assert [h['wd'] for h in AdamAnneal([ps[:2], ps[2:]], wd=[0.1]).hypers] == [0.1, 0.1]
    with pytest.raises(ValueError, match=r'wd has 2 values but the optimizer has 3 parameter group\(s\)'):
        AdamAnneal([ps[:1], ps[1:2], ps[2:]], wd=[0.1, 0.2])

# kills O036
def test_betas_must_be_a_pair():
    with pytest.raises(TypeError, match=r'param group 0: betas must be a pair \(mom, sqr_mom\), got \(0.9, 0.99, 0.5\)'):
        AdamAnneal([{'params': make_params(), 'betas': (0.9, 0.99, 0.5)}])

# kills O027
@pytest.mark.parametrize('make', [AdamAnneal, SGDAnneal, RMSPropAnneal])
def test_a_factory_names_itself_when_refusing_torch_s_betas(make):
    "the factory refuses `betas=` as the unknown argument it is (not the `AnnealOptimizer` it would build), with torch's names"
    with pytest.raises(TypeError, match=rf"{make.__name__} got unknown argument\(s\) \['betas'\].*betas=\(b1, b2\) is mom=b1"):
        make(make_params(), betas=(0.9, 0.99))

# kills O034
def test_an_empty_group_dict_is_refused():
    "a group dict whose 'params' is empty (a filter that matched nothing) would be a group with a clock and no param"
    with pytest.raises(ValueError, match='param group 0 holds no parameters'): AdamAnneal([{'params': []}, {'params': make_params()}])

# kills O046
def test_a_torch_name_a_stepper_takes_is_its_own_hyper():
    "a custom stepper whose parameter is named `momentum` takes momentum=: only names no stepper takes are refused as torch's"
    def heavy_ball(p, lr, momentum, buf=None, **kwargs):
        buf = p.grad.clone() if buf is None else buf.mul_(momentum).add_(p.grad)
        p.data.add_(buf, alpha=-lr)
        return {'buf': buf}
    p = nn.Parameter(torch.ones(2))
    opt = AnnealOptimizer([p], [heavy_ball], lr=0.1, momentum=0.5, anneal_rate=1)
    for _ in range(2): p.grad = torch.ones(2); opt.step()
    assert opt.hypers[0]['momentum'] == 0.5 and torch.allclose(p.detach(), torch.full((2,), 1 - 0.1 - 0.1*1.5))

# ---------------------------------------------------------------- frozen groups
def _norms_then_linear(make):
    "clocks of a group holding norms only (`force_train`, as a Learner's `train_bn` marks them) and a linear: 3 steps, `freeze_to(1)`, 2 steps"
    torch.manual_seed(0)
    bn,lin = nn.BatchNorm1d(3),nn.Linear(3, 2)
    opt = make([list(bn.parameters()), list(lin.parameters())])
    inner = getattr(opt, 'opt', opt)
    for p in bn.parameters(): inner.state[p]['force_train'] = True
    res = []
    for n,freeze in ((3, False), (2, True)):
        if freeze: opt.freeze_to(1)
        for _ in range(n):
            for p in [*bn.parameters(), *lin.parameters()]:
                if p.requires_grad: p.grad = torch.randn_like(p)
            opt.step(); opt.zero_grad()
        res.append(list(inner.anneal_steps))
    return res

# kills O054, O057 (AdamAnneal) and O053, O085 (annealed(ranger): the Lookahead's frozen_idx)
@pytest.mark.parametrize('make', [partial(AdamAnneal, lr=1e-2, anneal_rate=0.9), partial(annealed(ranger, anneal_rate=0.9), lr=1e-2)],
                         ids=['AdamAnneal', 'annealed(ranger)'])
def test_a_group_of_norms_only_counts_its_steps_until_frozen(make):
    "its norms still train when frozen (`train_bn`), no param carries the frozen mark: `frozen_idx` alone stops its clock"
    assert _norms_then_linear(make) == [[3, 3], [3, 5]]

# ---------------------------------------------------------------- state that does not fit, the clock
# kills O071
def test_a_state_dict_for_a_transposed_param_is_refused_at_load():
    a,b = nn.Parameter(torch.randn(6, 5)),nn.Parameter(torch.randn(5, 6))
    src,dst = AdamAnneal([a], lr=1e-2),AdamAnneal([b], lr=1e-2)
    a.grad = torch.randn(6, 5); src.step()
    with pytest.raises(ValueError, match=r"sd's state of param 0 has a moment of shape \(6, 5\), the param \(5, 6\)"):
        dst.load_state_dict(copy.deepcopy(src.state_dict()))
    assert dst.anneal_steps == [0] and not dst.state[b]

# kills O072, O073
def test_the_clock_takes_numpy_ints_and_refuses_bools():
    "a clock read back as a numpy int (a checkpoint written through numpy) steps on; True is no clock"
    p = nn.Parameter(torch.ones(2))
    opt = AdamAnneal([p], lr=0.1, anneal_rate=0.5)
    opt.hypers[0]['anneal_step'] = np.int64(2)
    p.grad = torch.ones(2); opt.step()
    assert opt.anneal_steps == [3]
    opt.set_hyper('anneal_step', True)
    with pytest.raises(ValueError, match=r'anneal_step \(its anneal clock\) must be an int >= 0, got True'): opt.step()

# kills O052
@pytest.mark.parametrize('make', [AdamAnneal, annealed(RAdam)], ids=['AdamAnneal', 'annealed'])
def test_the_clock_is_in_the_hypers_from_the_start(make):
    "a state dict saved before the first step holds the clock (0), whether the optimizer was built or taken over (`from_optimizer`)"
    assert make(make_params(), lr=0.1).state_dict()['hypers'][0]['anneal_step'] == 0

# kills O061
def test_zero_grad_detaches_a_grad_made_with_create_graph():
    "as fastai's `zero_grad`: a grad from `backward(create_graph=True)` is detached, not kept in the graph as a zeroed node"
    p = nn.Parameter(torch.ones(2))
    opt = AdamAnneal([p], lr=0.1)
    (p*p).sum().backward(create_graph=True)
    assert p.grad.requires_grad
    opt.zero_grad()
    assert p.grad.grad_fn is None and not p.grad.requires_grad and torch.equal(p.grad, torch.zeros(2))

# kills O070
def test_a_state_dict_without_state_is_refused_by_name():
    opt = AdamAnneal(make_params(), lr=0.1)
    with pytest.raises(TypeError, match=r"sd must be a fastai optimizer state dict, with 'hypers' and 'state', got keys \['hypers'\]"):
        opt.load_state_dict({'hypers': opt.state_dict()['hypers']})

# ---------------------------------------------------------------- sparse grads and L2 per group
def _sparse_l2(wd):
    "SGDAnneal with L2 (`decouple_wd=False`) over [linear, sparse embedding]: one step; returns (error or None, linear changed)"
    torch.manual_seed(0)
    lin,emb = nn.Linear(3, 1),nn.Embedding(10, 3, sparse=True)
    opt = SGDAnneal([list(lin.parameters()), list(emb.parameters())], lr=0.1, mom=0.9, wd=wd, decouple_wd=False)
    lin(emb(torch.tensor([1, 2]))).sum().backward()
    before = lin.weight.detach().clone()
    try: opt.step(); err = None
    except RuntimeError as e: err = str(e)
    return err,not torch.equal(before, lin.weight),opt.anneal_steps

# kills O075 (group 0's wd read for group 1), O076 (refused at wd=0)
def test_a_sparse_grad_is_refused_by_its_own_group_s_l2():
    "fastai's `l2_reg` skips wd=0: the sparse group steps when its own wd is 0, and is refused, before any group steps, when it is not"
    err,changed,clocks = _sparse_l2([0., 0.1])
    assert "got a sparse grad in param group 1: this optimizer's `l2_reg` stepper" in err and not changed and clocks == [0, 0]
    for wd in ([0.1, 0.], 0.): assert _sparse_l2(wd)[0] is None and _sparse_l2(wd)[2] == [1, 1]

# ---------------------------------------------------------------- annealed(...)
# kills O084
def test_annealed_checks_the_hypers_its_opt_func_sets():
    "an opt_func setting a bad hyper itself (no keyword `annealed` could read): refused as built, as a keyword is"
    def sgd_mom15(ps, lr): return SGD(ps, lr=lr, mom=1.5)
    with pytest.raises(ValueError, match=r'mom must be in \[0, 1\), got 1.5'): annealed(sgd_mom15)(make_params(), lr=0.1)

# kills O087
def test_a_ranger_state_dict_saved_before_any_step_loads():
    "fastai's Lookahead has no slow weights before its first step (`slow_weights` is None in its state dict)"
    sd = copy.deepcopy(annealed(ranger)(make_params(2), lr=1e-2).state_dict())
    assert sd['slow_weights'] is None
    ps = make_params(2)
    opt = annealed(ranger)(ps, lr=1e-2)
    opt.load_state_dict(sd)
    set_grads(ps, 0); opt.step()
    assert opt.opt.anneal_steps == [1]

# ---------------------------------------------------------------- the fast paths
# kills M037
def test_sgd_steppers_without_a_mom_hyper_take_the_fast_path():
    "`AnnealOptimizer([weight_decay, sgd_step])` has no `mom` hyper: the fast path steps as fastai's Optimizer with those steppers"
    ps = run(lambda ps: AnnealOptimizer(ps, [weight_decay, sgd_step], lr=0.1, wd=0.1, anneal_rate=1), n=10)[0]
    ref = run(lambda ps: Optimizer(ps, [weight_decay, sgd_step], lr=0.1, wd=0.1), n=10)[0]
    assert bitwise(ps, ref)

# kills M004 (a dampened average) and M002 (a partial of weight_decay)
@pytest.mark.parametrize('cbs', [[weight_decay, partial(average_grad, dampening=True), momentum_step],
                                 [partial(weight_decay, do_wd=False), sgd_step]], ids=['dampened_average', 'partial_wd'])
def test_steppers_the_fast_paths_do_not_implement_run_as_steppers(cbs):
    "only fastai's exact Adam/SGD steppers go fast: a dampened gradient average or a `partial` with its own arguments steps as written"
    assert fast_kind(cbs) is None
    ps = run(lambda ps: AnnealOptimizer(ps, cbs, lr=0.1, mom=0.9, wd=0.1, anneal_rate=1), n=10)[0]
    ref = run(lambda ps: Optimizer(ps, cbs, lr=0.1, mom=0.9, wd=0.1), n=10)[0]
    assert bitwise(ps, ref)

# kills M008
def test_forced_fused_needs_fused_kernels_on_the_params_device():
    "a torch with fused kernels, but not on this device (torch < 2.4 on the CPU): impl='fused' raises, impl='auto' takes foreach"
    ps = make_params(2)
    set_grads(ps, 0)
    kind,k = fast_kind(AdamAnneal(ps).cbs),Kernels(True, ['cpu'], ['cuda'])
    with pytest.raises(RuntimeError, match=r"impl='fused': this torch has no fused kernels on 'cpu'"): fast_path(kind, 'fused', ps, k)
    assert fast_path(kind, 'auto', ps, k) == 'foreach'
