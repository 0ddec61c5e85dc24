"""fastai keeps working with `fastai_anneal.all` imported: the docs tests of fastai's nbs/14_callback.schedule.ipynb,
re-run verbatim (plots dropped), plus an assertion where fastai's cell only runs. Source: fastai/fastai,
nbs/14_callback.schedule.ipynb (Apache-2.0)."""
import tempfile
from fastai.basics import *
from fastai.callback.schedule import *
from fastai.callback.tracker import SaveModelCallback
from fastai.test_utils import *
from fastai_anneal.all import *  # must not change any of the results below

def test_annealers():
    test_eq(L(map(SchedLin(0, 2), [0., 0.25, 0.5, 0.75, 1.])), [0., 0.5, 1., 1.5, 2.])
    test_close(L(map(SchedCos(0, 2), [0., 0.25, 0.5, 0.75, 1.])), [0., 0.29289, 1., 1.70711, 2.])
    test_close(L(map(SchedNo(0, 2), [0., 0.25, 0.5, 0.75, 1.])), [0., 0., 0., 0., 0.])
    test_close(L(map(SchedExp(1, 2), [0., 0.25, 0.5, 0.75, 1.])), [1., 1.18921, 1.41421, 1.68179, 2.])
    test_close(L(map(SchedPoly(0, 2, 2), [0., 0.25, 0.5, 0.75, 1.])), [0., 0.125, 0.5, 1.125, 2.])

def test_combine_scheds():
    f = combine_scheds([0.3,0.2,0.5], [SchedLin(0.,1.), SchedNo(1.,1.), SchedCos(1., 0.)])
    test_close([f(0.), f(0.15), f(0.3), f(0.4), f(0.5), f(0.7), f(1.)], [0., 0.5, 1., 1., 1., 0.65451, 0.])
    f = combined_cos(0.25,0.5,1.,0.)
    test_close([f(0.), f(0.1), f(0.25), f(0.5), f(1.)], [0.5, 0.67275, 1., 0.75, 0.])
    f = combined_cos(0.25, np.array([0.25,0.5]), np.array([0.5,1.]), np.array([0.,0.]))
    for a,b in zip([f(0.), f(0.1), f(0.25), f(0.5), f(1.)], [[0.25,0.5], [0.33638,0.67275], [0.5,1.], [0.375,0.75], [0.,0.]]):
        test_close(a,b)

def test_param_scheduler():
    learn = synth_learner()
    sched = {'lr': SchedLin(1e-3, 1e-2)}
    learn.fit(1, cbs=ParamScheduler(sched))
    n = len(learn.dls.train)
    test_close(learn.recorder.hps['lr'], [1e-3 + (1e-2-1e-3) * i/n for i in range(n)])
    def _splitter(m): return [[m.a], [m.b]]
    learn = synth_learner(splitter=_splitter)
    sched = {'lr': combined_cos(0.5, np.array([1e-4,1e-3]), np.array([1e-3,1e-2]), np.array([1e-5,1e-4]))}
    learn.fit(1, cbs=ParamScheduler(sched))

def test_fit_one_cycle():
    learn = synth_learner(lr=1e-2)
    xb,yb = learn.dls.one_batch()
    init_loss = learn.loss_func(learn.model(xb), yb)
    learn.fit_one_cycle(2)
    xb,yb = learn.dls.one_batch()
    final_loss = learn.loss_func(learn.model(xb), yb)
    assert final_loss < init_loss
    lrs,moms = learn.recorder.hps['lr'],learn.recorder.hps['mom']
    test_close(lrs,  [combined_cos(0.25,1e-2/25,1e-2,1e-7)(i/20) for i in range(20)])
    test_close(moms, [combined_cos(0.25,0.95,0.85,0.95)(i/20) for i in range(20)])
    def _splitter(m): return [[m.a], [m.b]]
    learn = synth_learner(splitter=_splitter)
    learn.fit_one_cycle(1, lr_max=slice(1e-3,1e-2))
    learn = synth_learner()
    learn.fit_one_cycle(2)
    learn.recorder.plot_sched()

def test_fit_flat_cos():
    learn = synth_learner()
    learn.fit_flat_cos(2)
    learn.recorder.plot_sched()
    test_close(learn.recorder.hps['lr'], [combined_cos(0.75, 1e-3, 1e-3, 1e-8)(i/20) for i in range(20)])  # added

def test_fit_sgdr():
    learn = synth_learner()
    with learn.no_logging(): learn.fit_sgdr(3, 1)
    test_eq(learn.n_epoch, 7)
    iters = [k * len(learn.dls.train) for k in [0,1,3,7]]
    for i in range(3):
        n = iters[i+1]-iters[i]
        test_close(learn.recorder.lrs[iters[i]+1:iters[i+1]], [SchedCos(learn.lr, 0)(k/n) for k in range(1,n)])

def test_fine_tune():
    learn = synth_learner()
    learn.fine_tune(1)
    test_close(learn.recorder.hps['lr'], [combined_cos(0.3, 1e-3/5, 1e-3, 1e-8)(i/10) for i in range(10)])  # added: the unfrozen phase
    assert not learn.opt.frozen_idx

class InterruptCallback(Callback):
    def __init__(self, epoch): self._interupt_before = epoch
    def before_epoch(self):
        if self.epoch == self._interupt_before: raise CancelFitException

def test_resume_fit_one_cycle():
    with tempfile.TemporaryDirectory() as d:
        learn1 = synth_learner(path=d, cbs=SaveModelCallback(with_opt=True, fname="ckpt"))
        learn1.fit_one_cycle(5, cbs=InterruptCallback(2))
        learn2 = synth_learner(path=d)
        learn2 = learn2.load("ckpt")
        learn2.fit_one_cycle(5, start_epoch=2)
    test_close(learn2.recorder.hps['lr'], [combined_cos(0.25, 1e-3/25, 1e-3, 1e-8)(i/50) for i in range(20, 50)])  # added

def test_lr_finder_callback():
    with tempfile.TemporaryDirectory() as d:
        learn = synth_learner(path=Path(d))
        init_a,init_b = learn.model.a,learn.model.b
        with learn.no_logging(): learn.fit(20, cbs=LRFinder(num_it=100))
        assert len(learn.recorder.lrs) <= 100
        test_eq(len(learn.recorder.lrs), len(learn.recorder.losses))
        if len(learn.recorder.lrs) < 100: assert learn.recorder.losses[-1] > 4 * min(learn.recorder.losses)
        test_eq(learn.recorder.lrs, [SchedExp(1e-7, 10)(i/100) for i in range_of(learn.recorder.lrs)])
        test_eq([len(v) for v in learn.recorder.values], [1 for _ in range_of(learn.recorder.values)])
        test_eq(learn.model.a, init_a)
        test_eq(learn.model.b, init_b)
        test_eq(learn.opt.state_dict()['state'], [{}, {}])

def test_suggestion_functions():
    learn = synth_learner()
    with learn.no_logging(): learn.fit(20, cbs=LRFinder(num_it=100))
    lrs,losses = tensor(learn.recorder.lrs[100//10:-5]),tensor(learn.recorder.losses[100//10:-5])
    for f in (valley, slide, minimum, steep):
        lr,(x,y) = f(lrs, losses, 100)
        assert lr > 0

def test_lr_find():
    with tempfile.TemporaryDirectory() as d:
        learn = synth_learner(path=Path(d))
        weights_pre_lr_find = L(p.detach().clone() for p in learn.model.parameters())  # fastai's cell keeps references, which always compare equal
        lr_min, lr_steep, lr_valley, lr_slide = learn.lr_find(suggest_funcs=(minimum, steep, valley, slide))
        weights_post_lr_find = L(learn.model.parameters())
    test_eq(weights_pre_lr_find, weights_post_lr_find)
    assert all(v > 0 for v in (lr_min, lr_steep, lr_valley, lr_slide))
