"The pure builders against the reference implementations they mirror (torch, timm, transformers), properties, bad input."
import math
import numpy as np, pytest, torch
from hypothesis import example, given, settings, strategies as st
from fastai.callback.schedule import sched_cos, sched_lin, combined_cos
from fastai_anneal.schedules import *
from fastai_anneal._checks import check_int, check_float, check_lrs, check_moms

RTOL = 1e-6  # the bar: 1e-6 relative at every step

def _opt(lr):
    return torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)

def _torch_lrs(sched_cls, lr, n, **kw):
    "lr of a torch scheduler at steps 0..n-1, stepped once per iteration"
    opt = _opt(lr)
    sched,out = sched_cls(opt, **kw),[]
    for _ in range(n):
        out.append(opt.param_groups[0]['lr'])
        opt.step(); sched.step()
    return np.array(out)

def _ours(f, n): return np.array([float(f(t/n)) for t in range(n)])

# ------------------------------------------------------------------ fit_cos_anneal
@pytest.mark.parametrize('n', [10, 137, 1000])
@pytest.mark.parametrize('div_final', [1e5, 25., math.inf])
def test_cos_matches_torch_cosine_annealing(n, div_final):
    lr = 3e-3
    eta_min = 0. if math.isinf(div_final) else lr/div_final
    ref = _torch_lrs(torch.optim.lr_scheduler.CosineAnnealingLR, lr, n, T_max=n, eta_min=eta_min)
    np.testing.assert_allclose(_ours(cos_anneal_scheds(lr, div_final)['lr'], n), ref, rtol=RTOL, atol=0)

@pytest.mark.parametrize('n,w', [(100, 10), (137, 7), (50, 1)])
@pytest.mark.parametrize('div_final', [1e5, math.inf])
def test_cos_warmup_matches_transformers(n, w, div_final):
    from transformers import get_cosine_with_min_lr_schedule_with_warmup, get_cosine_schedule_with_warmup
    lr = 1e-3
    if math.isinf(div_final): kw,mk = {},get_cosine_schedule_with_warmup
    else: kw,mk = dict(min_lr_rate=1/div_final),get_cosine_with_min_lr_schedule_with_warmup
    ref = _torch_lrs(lambda opt, **k: mk(opt, **k), lr, n, num_warmup_steps=w, num_training_steps=n, **kw)
    # transformers warms up from 0: that is `div_warmup=inf`
    ours = _ours(cos_anneal_scheds(lr, div_final, pct_warmup=w/n, div_warmup=math.inf)['lr'], n)
    np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=0)

def test_cos_moms_mirror_lr():
    s = cos_anneal_scheds(1e-2, pct_warmup=0.25, moms=(0.95, 0.85, 0.95))
    assert s['mom'](0.) == 0.95 and s['mom'](0.25) == 0.85 and s['mom'](1.) == 0.95
    ps = np.linspace(0, 1, 201)
    lr,mom = np.array([s['lr'](p) for p in ps]),np.array([s['mom'](p) for p in ps])
    assert ps[lr.argmax()] == ps[mom.argmin()] == 0.25  # lowest momentum exactly at the peak lr
    assert 'mom' not in cos_anneal_scheds(1e-2)  # moms=None leaves momentum alone

def test_cos_equals_fastai_one_cycle_shape():
    "With a cosine warmup from lr/25, fit_cos_anneal's schedule *is* fastai's 1cycle lr schedule"
    ours = cos_anneal_scheds(1e-2, 1e5, pct_warmup=0.25, div_warmup=25., warmup='cos')['lr']
    ref = combined_cos(0.25, 1e-2/25, 1e-2, 1e-7)
    # an absolute floor of 1e-7*lr_max: fastai's combine_scheds computes the in-phase position in float32 (its bounds
    # are a float32 tensor), which costs up to 2e-5 relative near the end, where the lr is tiny
    for p in np.linspace(0, 0.999, 97): assert math.isclose(ours(p), ref(p), rel_tol=1e-6, abs_tol=1e-7*1e-2)
    exact = lambda p: 1e-7 + (1e-2-1e-7)*(1+math.cos(math.pi*(p-0.25)/0.75))/2  # ours is the float64 formula
    for p in np.linspace(0.25, 0.999, 97): assert math.isclose(ours(p), exact(p), rel_tol=1e-9)

# ------------------------------------------------------------------ fit_sgdr_anneal
def _timm_lrs(lr, n, **kw):
    from timm.scheduler import CosineLRScheduler
    opt = _opt(lr)
    sched = CosineLRScheduler(opt, t_in_epochs=False, **kw)
    out = []
    for t in range(n):
        sched.step_update(t)
        out.append(opt.param_groups[0]['lr'])
    return np.array(out)

@pytest.mark.parametrize('n_cycles,cycle_len,cycle_mult,cycle_decay', [
    (3, 1, 2, 1.), (4, 1, 1, 0.7), (3, 2, 2, 0.5), (2, 2, 1.5, 0.8), (5, 1, 1, 1.)])
def test_sgdr_matches_timm(n_cycles, cycle_len, cycle_mult, cycle_decay):
    n_iter,lr,div_final = 8, 1e-2, 1e4
    n_epoch = sgdr_n_epoch(n_cycles, cycle_len, cycle_mult)
    n = n_epoch*n_iter
    ref = _timm_lrs(lr, n, t_initial=cycle_len*n_iter, lr_min=lr/div_final, cycle_mul=cycle_mult,
                    cycle_decay=cycle_decay, cycle_limit=n_cycles)
    ours = _ours(sgdr_anneal_scheds(n_cycles, cycle_len, lr, cycle_mult, cycle_decay, div_final)['lr'], n)
    np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=0)

@pytest.mark.parametrize('n_cycles,cycle_len,cycle_mult', [(3, 1, 2), (4, 2, 1), (3, 1, 3)])
def test_sgdr_matches_torch_warm_restarts(n_cycles, cycle_len, cycle_mult):
    n_iter,lr = 10, 1e-3
    n = sgdr_n_epoch(n_cycles, cycle_len, cycle_mult)*n_iter
    ref = _torch_lrs(torch.optim.lr_scheduler.CosineAnnealingWarmRestarts, lr, n, T_0=cycle_len*n_iter,
                     T_mult=cycle_mult, eta_min=lr/1e5)
    ours = _ours(sgdr_anneal_scheds(n_cycles, cycle_len, lr, cycle_mult)['lr'], n)
    np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=0)

def test_sgdr_warmup_documented_difference_with_timm():
    "timm's warmup overwrites the start of the cosine (a jump at its end, peak never reached); ours is a prefix of cycle 0, then the cosine starts at the peak"
    n_iter,lr,w,div_warmup = 10, 1e-2, 5, 25.
    n = sgdr_n_epoch(3, 1, 2)*n_iter
    ref = _timm_lrs(lr, n, t_initial=n_iter, lr_min=lr/1e5, cycle_mul=2, cycle_limit=3, warmup_t=w, warmup_lr_init=lr/div_warmup)
    ours = _ours(sgdr_anneal_scheds(3, 1, lr, 2, pct_warmup=w/n, div_warmup=div_warmup)['lr'], n)
    np.testing.assert_allclose(ours[:w], ref[:w], rtol=RTOL)            # same linear warmup
    np.testing.assert_allclose(ours[n_iter:], ref[n_iter:], rtol=RTOL)  # identical from the first restart on
    assert ours[w] == lr and ref[w] < lr                                  # we reach the peak, timm does not
    # in between, ours is the cosine compressed into what is left of cycle 0
    np.testing.assert_allclose(ours[w:n_iter], [lr/1e5 + (lr-lr/1e5)*(1+math.cos(math.pi*k/(n_iter-w)))/2 for k in range(n_iter-w)], rtol=RTOL)

def test_sgdr_cycle_mult_one_and_restarts():
    f = sgdr_anneal_scheds(4, 1, 1., cycle_mult=1, cycle_decay=0.5)['lr']
    assert [f(i/4) for i in range(4)] == [1., 0.5, 0.25, 0.125]  # each restart is exact
    assert sgdr_n_epoch(4, 1, 1) == 4 and sgdr_n_epoch(3, 1, 2) == 7 and sgdr_n_epoch(2, 2, 1.5) == 5

# ------------------------------------------------------------------ fit_flat_anneal
@pytest.mark.parametrize('decay', [('cos', 'cosine'), ('lin', 'linear'), ('sqrt', '1-sqrt')])
@pytest.mark.parametrize('warmup', [('lin', 'linear'), ('cos', 'cosine')])
@pytest.mark.parametrize('n,w,d', [(100, 10, 20), (120, 0, 30), (77, 5, 19)])
def test_flat_matches_transformers_wsd(decay, warmup, n, w, d):
    from transformers import get_wsd_schedule
    lr,div_final = 2e-3, 1e3
    ref = _torch_lrs(lambda opt, **k: get_wsd_schedule(opt, **k), lr, n, num_warmup_steps=w, num_decay_steps=d,
                     num_training_steps=n, warmup_type=warmup[1], decay_type=decay[1], min_lr_ratio=1/div_final)
    ours = _ours(flat_anneal_scheds(lr, div_final, pct_start=(n-d)/n, pct_warmup=w/n, anneal=decay[0], warmup=warmup[0])['lr'], n)
    np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=0)

def test_flat_without_warmup_is_fastai_flat_cos():
    ours = flat_anneal_scheds(1e-3)['lr']
    ref = combined_cos(0.75, 1e-3, 1e-3, 1e-8)
    for p in np.linspace(0, 0.999, 101): assert math.isclose(ours(p), ref(p), rel_tol=1e-6, abs_tol=1e-7*1e-3)  # float32 inside fastai, as above

# ------------------------------------------------------------------ per-group lrs, shapes, vocabulary
def test_per_group_arrays():
    lrs = np.array([1e-4, 1e-3, 1e-2])
    for s in (cos_anneal_scheds(lrs, pct_warmup=0.1), sgdr_anneal_scheds(2, 1, lrs, 1), flat_anneal_scheds(lrs)):
        for p in (0., 0.3, 0.9):
            v = s['lr'](p)
            assert v.shape == (3,)
            np.testing.assert_allclose(v/lrs, v[0]/lrs[0], rtol=1e-12)  # every group follows the same shape

def test_shapes():
    test = lambda f, vals: [math.isclose(f(2., 1., p), v, rel_tol=1e-12) for p,v in zip((0., .25, 1.), vals)]
    assert all(test(sched_sqrt, (2., 1.5, 1.)))
    assert all(test(sched_poly, (2., 1.5625, 1.)))
    assert get_anneal('cos') is sched_cos and get_anneal('sqrt') is sched_sqrt
    mine = lambda start, end, pos: start
    assert get_anneal(mine) is mine

@pytest.mark.parametrize('anneal', ANNEALS)
def test_every_anneal_is_monotone(anneal):
    f = cos_anneal_scheds(1., 1e3, anneal=anneal)['lr']
    v = [f(p) for p in np.linspace(0, 1, 501)]
    assert all(a >= b for a,b in zip(v, v[1:]))

def test_custom_annealer_used():
    step = lambda start, end, pos: start if pos < 0.5 else end
    f = cos_anneal_scheds(1., 10., anneal=step)['lr']
    assert f(0.25) == 1. and f(0.75) == 0.1

def test_phases_exact_joins_and_clamps():
    f = Phases.from_pcts([0.3, 0.2, 0.5], [sched_lin, sched_lin, sched_cos], [0., 1., 1.], [1., 1., 0.])
    assert f(0.) == 0. and f(0.3) == 1. and f(0.5) == 1. and f(1.) == 0.
    assert f(-0.1) == 0. and f(1.5) == 0.
    # the values of fastai's combine_scheds docs test
    np.testing.assert_allclose([f(0.), f(0.15), f(0.3), f(0.4), f(0.5), f(0.7), f(1.)], [0., 0.5, 1., 1., 1., 0.65451, 0.], atol=1e-5)
    assert isinstance(f(0.42), float)  # python floats in, python floats out: no tensors built per call
    g = Phases.from_pcts([0.7, 0.2, 0.1], [sched_lin]*3, [0., 1., 2.], [1., 2., 3.])  # a plain sum gives 0.9999999999999999
    assert g(1.) == 3.

def test_zero_length_phases_are_dropped():
    f = Phases([0., 0., 1.], [sched_lin, sched_cos], [5., 1.], [5., 0.])
    assert f(0.) == 1.  # the empty warmup never shows

# ------------------------------------------------------------------ properties
anneals = st.sampled_from(list(ANNEALS))
lr_st = st.floats(1e-6, 10.)
div_st = st.floats(1.5, 1e6)
pos_st = st.floats(0., 1.)

def _between(v, a, b, ulps=4):
    "`v` in [a, b] up to the rounding of `a + w*(b-a)`: a few ulps of the larger endpoint, not of the nearer one"
    lo,hi = min(a, b),max(a, b)
    slack = ulps * np.spacing(max(abs(a), abs(b)))
    return lo - slack <= v <= hi + slack

@settings(max_examples=150, deadline=None)
@given(lr_st, div_st, st.floats(0., 0.9), div_st, anneals, st.sampled_from(['lin', 'cos']), pos_st)
def test_prop_cos_anneal(lr, div_final, pct_warmup, div_warmup, anneal, warmup, pos):
    f = cos_anneal_scheds(lr, div_final, pct_warmup, div_warmup, warmup, anneal)['lr']
    lo,end = lr/div_warmup,lr/div_final
    assert f(0.) == (lo if pct_warmup > 0 else lr)  # endpoints are exact
    assert f(1.) == end
    if pct_warmup > 0: assert f(pct_warmup) == lr   # the join at the peak is exact...
    if pct_warmup > 1e-6: assert math.isclose(f(pct_warmup*(1-1e-12)), lr, rel_tol=1e-6)  # ...and continuous from the left
    v = f(pos)
    assert _between(v, lo, lr) if pos < pct_warmup else _between(v, lr, end)

@settings(max_examples=100, deadline=None)
@given(st.integers(1, 5), st.integers(1, 3), st.sampled_from([1, 2, 3]), st.floats(0.1, 1.), lr_st, div_st, anneals, pos_st)
def test_prop_sgdr(n_cycles, cycle_len, cycle_mult, cycle_decay, lr, div_final, anneal, pos):
    f = sgdr_anneal_scheds(n_cycles, cycle_len, lr, cycle_mult, cycle_decay, div_final, anneal=anneal)['lr']
    n_epoch,end = sgdr_n_epoch(n_cycles, cycle_len, cycle_mult),lr/div_final
    starts = np.cumsum([0] + [cycle_len*cycle_mult**i for i in range(n_cycles)])/n_epoch
    for i,b in enumerate(starts[:-1]):
        assert f(b) == lr*cycle_decay**i                                                # every restart is exact
        if i: assert math.isclose(f(b*(1-1e-13)), end, rel_tol=1e-6, abs_tol=end*1e-6)  # and preceded by the floor
    i = min(np.searchsorted(starts, pos, side='right') - 1, n_cycles-1)
    assert _between(f(pos), lr*cycle_decay**i, end)
    assert f(1.) == end

@settings(max_examples=100, deadline=None)
@given(lr_st, div_st, st.floats(0., 0.95), st.floats(0., 1.), anneals, pos_st)
@example(lr=1.75, div_final=316., pct_start=0., frac_warm=0., anneal='cos', pos=0.9999999999999999)  # 1 ulp of lr below the floor
def test_prop_flat(lr, div_final, pct_start, frac_warm, anneal, pos):
    pct_warmup = pct_start*frac_warm
    f = flat_anneal_scheds(lr, div_final, pct_start, pct_warmup, anneal)['lr']
    end = lr/div_final
    assert f(1.) == end and f(pct_start) == lr
    if pct_warmup < pos < pct_start: assert f(pos) == lr  # the stable phase is exactly flat
    assert _between(f(pos), end, lr)

# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize('call,match', [
    (lambda: cos_anneal_scheds(0.), r'lr_max must be in \(0, inf\), got 0.0'),
    (lambda: cos_anneal_scheds(-1e-3), 'lr_max must be in'),
    (lambda: cos_anneal_scheds(math.nan), 'lr_max must be a finite number'),
    (lambda: cos_anneal_scheds(math.inf), 'lr_max must be a finite number'),
    (lambda: cos_anneal_scheds([1e-3, 0.]), r'lr_max\[1\] must be in'),
    (lambda: flat_anneal_scheds(lr=0.), r'^lr must be in \(0, inf\), got 0.0'),  # the builder's own name, not cos_anneal's lr_max
    (lambda: flat_anneal_scheds(lr=[1e-3, -1.]), r'^lr\[1\] must be in'),
    (lambda: cooldown_scheds(math.inf), r'^lr must be a finite number'),
    (lambda: cos_anneal_scheds(1e-3, div_final=0), 'div_final must be in'),
    (lambda: cos_anneal_scheds(1e-3, div_final=-2), 'div_final must be in'),
    (lambda: cos_anneal_scheds(1e-3, pct_warmup=1.), r'pct_warmup must be in \[0, 1\), got 1.0'),
    (lambda: cos_anneal_scheds(1e-3, pct_warmup=-0.1), r'pct_warmup must be in \[0, 1\)'),
    (lambda: cos_anneal_scheds(1e-3, div_warmup=0.), 'div_warmup must be in'),
    (lambda: cos_anneal_scheds(1e-3, anneal='cosine'), "anneal must be one of 'cos', 'lin', 'exp', 'sqrt', 'poly'"),
    (lambda: cos_anneal_scheds(1e-3, warmup='exp'), "warmup must be one of 'lin', 'cos'"),
    (lambda: cos_anneal_scheds(1e-3, moms=(0.95, 0.85)), 'moms must be a tuple of 3'),
    (lambda: cos_anneal_scheds(1e-3, moms=(0.95, 1.2, 0.95)), r'moms\[1\] must be in \[0, 1\)'),
    (lambda: sgdr_anneal_scheds(0, 1, 1e-3), 'n_cycles must be >= 1, got 0'),
    (lambda: sgdr_anneal_scheds(2.5, 1, 1e-3), 'n_cycles must be a whole number'),
    (lambda: sgdr_anneal_scheds(2, 0, 1e-3), 'cycle_len must be >= 1'),
    (lambda: sgdr_anneal_scheds(2, 1, 1e-3, cycle_mult=0.5), r'cycle_mult must be in \[1, inf\)'),
    (lambda: sgdr_anneal_scheds(2, 1, 1e-3, cycle_mult=1.5), 'must be a whole number of epochs, got 2.5'),
    (lambda: sgdr_anneal_scheds(2, 1, 1e-3, cycle_decay=0.), r'cycle_decay must be in \(0, inf\)'),
    (lambda: sgdr_anneal_scheds(3, 1, 1e-3, pct_warmup=0.2), "pct_warmup must be smaller than the first cycle's share"),
    (lambda: flat_anneal_scheds(1e-3, pct_start=1.01), r'pct_start must be in \[0, 1\]'),  # 1: a stable run, no decay
    (lambda: flat_anneal_scheds(1e-3, pct_start=0.5, pct_warmup=0.6), r'pct_warmup must be <= pct_start'),
    (lambda: flat_anneal_scheds(1e-3, anneal=lambda a, b: a), 'anneal must accept three arguments'),
    (lambda: flat_anneal_scheds(1e-3, anneal=3), 'anneal must be a name'),
    (lambda: Phases.from_pcts([0.5, 0.6], [sched_lin]*2, [0, 0], [1, 1]), 'pcts must sum to 1'),
    (lambda: Phases([0., 0.6, 0.5, 1.], [sched_lin]*3, [0]*3, [1]*3), 'bounds must rise from 0 to 1'),
    (lambda: Phases([0., 1.], [sched_lin]*2, [0]*2, [1]*2), 'bounds must rise from 0 to 1'),
    (lambda: Phases([0., .5, 1.], [sched_lin]*2, [0], [1]*2), r'fs, starts and ends must hold one entry per phase, got 2, 1 and 2'),
    (lambda: Phases([0., 1.], ['cosine'], [0], [1]), r"fs\[0\] must be one of 'cos'"),  # an IndexError, or a failure once called
    (lambda: Phases([0., 1.], [3], [0], [1]), r'fs\[0\] must be a name'),
    (lambda: Phases.from_pcts([0.5, 0.25, 0.25], [sched_lin]*2, [0]*2, [1]*2), r'pcts must hold one share per phase \(2, as fs\), got 3'),
    (lambda: Phases.from_pcts([1.5, -0.5], [sched_lin]*2, [0]*2, [1]*2), r'pcts\[0\] must be in \[0, 1\]'),  # it named `bounds`
    (lambda: check_int('n_epoch', True), 'n_epoch must be a whole number'),
    (lambda: check_lrs('lr', []), 'lr must hold at least one value'),
    (lambda: check_lrs('lr', [[1e-3], [1e-2]]), r'lr must be a number or a flat list .* shape \(2, 1\)'),
    (lambda: check_moms('moms', 0.9), 'moms must be a tuple of 3'),
])
def test_bad_input(call, match):
    with pytest.raises((ValueError, TypeError), match=match): call()

def test_phases_take_anneal_names():
    "A phase's annealer by name, as `anneal=` takes it everywhere: `Phases` resolves it once, when it is built"
    f,g = Phases([0., 1.], ['cos'], [1.], [0.]),Phases([0., 1.], [sched_cos], [1.], [0.])
    assert [f(p/7) for p in range(8)] == [g(p/7) for p in range(8)]

def test_sgdr_cycle_ends_are_the_fsum_of_each_prefix_in_linear_time():
    "The cycles' ends, one pass of exact partials, are the floats a `fsum` per prefix gives (fractional `cycle_mult` too); equal cycles cost O(1)"
    from fastai_anneal.schedules import _cycle_ends
    for n,cl,m in [(7, 1, 2), (30, 3, 1.5), (59, 5, 3), (40, 2, 1.1), (12, 1, 1.7), (5, 4, 1)]:
        assert _cycle_ends(n, cl, m) == [math.fsum(cl*m**j for j in range(i+1)) for i in range(n)]
    assert sgdr_n_epoch(10**9, 1, 1) == 10**9  # the preview's size check then refuses it at once (it summed 10**9 terms)
    assert sgdr_anneal_scheds(20_000, 1, 1e-3, cycle_mult=1)['lr'].n == 20_000  # a phase per cycle (the warmup of length 0 never runs)


# ---------------------------------------------------------------- behaviour no test pinned (a mutation audit, twenty-first session)
def test_phases_refuse_bounds_not_from_0_to_1():
    with pytest.raises(ValueError, match='bounds must rise from 0 to 1'): Phases([0.2, 1.], [sched_lin], [0.], [1.])
    with pytest.raises(ValueError, match='bounds must rise from 0 to 1'): Phases([0., 0.5], [sched_lin], [0.], [1.])

def test_phases_refuse_missing_end():
    with pytest.raises(ValueError, match=r'fs, starts and ends must hold one entry per phase, got 2, 2 and 1'):
        Phases([0., .5, 1.], [sched_lin]*2, [0.]*2, [1.])

def test_from_pcts_tolerance_is_1e_9():
    with pytest.raises(ValueError, match='pcts must sum to 1'): Phases.from_pcts([0.5, 0.5 + 1e-8], [sched_lin]*2, [0.]*2, [1.]*2)
    # within 1e-9 above 1: a join past 1 is clamped to 1, not refused as a bound
    f = Phases.from_pcts([0.6, 0.4 + 5e-10, 0.], [sched_lin]*3, [0., 1., 2.], [1., 2., 3.])
    assert f(1.) == 2.

def test_per_group_floor_of_zero_keeps_its_shape():
    lrs = np.array([1e-3, 1e-2])
    v = cos_anneal_scheds(lrs, div_final=math.inf)['lr'](1.)
    assert isinstance(v, np.ndarray) and v.shape == (2,) and np.all(v == 0)

def test_cos_moms_shape_and_end():
    "The momentum follows the warmup's shape up to its low, then the anneal's shape to moms[2] (not moms[0])"
    s = cos_anneal_scheds(1e-2, pct_warmup=0.5, warmup='lin', anneal='cos', moms=(0.95, 0.85, 0.9))['mom']
    assert math.isclose(s(0.125), 0.925, rel_tol=1e-12)                                    # linear warmup, a quarter in
    assert math.isclose(s(0.625), 0.85 + (0.9-0.85)*(1-math.cos(math.pi*0.25))/2, rel_tol=1e-12)  # cosine, a quarter in
    assert s(1.) == 0.9

def test_sgdr_n_epoch_exact_sum_and_whole_check():
    assert sgdr_n_epoch(6, 10**6, 1.2) == 9_929_920   # the geometric formula gives 9929919.999999998: only the exact sum is whole
    assert sgdr_n_epoch(1, 2**53, 1) == 2**53         # 'at most 2**53 epochs': 2**53 itself is allowed
    with pytest.raises(ValueError, match='must be a whole number of epochs, got 2.25'): sgdr_n_epoch(2, 1, 1.25)

def test_sgdr_warmup_must_end_before_the_first_restart():
    with pytest.raises(ValueError, match="pct_warmup must be smaller than the first cycle's share"):
        sgdr_anneal_scheds(3, 1, 1e-3, pct_warmup=1/7)   # the warmup would take the whole first cycle: it never anneals

def test_cooldown_default_is_1_sqrt():
    f = cooldown_scheds(1.)['lr']
    assert math.isclose(f(0.25), 1e-5 + (1-1e-5)*0.5, rel_tol=1e-12)  # 1-sqrt(0.25) = 0.5

def test_cyclic_defaults_are_torchs():
    "step_size_up=2000 and gamma=1 as torch's CyclicLR: the peak at step 2000, and exp_range without gamma is triangular"
    s = cyclic_scheds(1, 4000, 1e-2)['lr']
    assert s(0.) == 2.5e-3 and s(0.5) == 1e-2 and s(1.) == 2.5e-3
    e,t = cyclic_scheds(2, 4000, 1e-2, mode='exp_range')['lr'],cyclic_scheds(2, 4000, 1e-2)['lr']
    assert [e(p/8) for p in range(9)] == [t(p/8) for p in range(9)]
