"torch's private kernels are probed once; without them the fast path falls back (foreach, then the steppers) to the same result."
import sys
from functools import partial
import pytest, torch
from fastai_anneal import _multi_tensor
from fastai_anneal._multi_tensor import Kernels, probe, path, fast_kind
from fastai_anneal.optimizer import AdamAnneal, SGDAnneal

def _ps(): return [torch.randn(5, requires_grad=True) for _ in range(2)]

def test_probe_without_torch_helpers(monkeypatch):
    "An older torch without `torch.utils._foreach_utils`: no fused kernels, foreach on CUDA only"
    monkeypatch.setitem(sys.modules, 'torch.utils._foreach_utils', None)  # makes the import fail
    k = probe()
    assert k.foreach_devices == ['cuda'] and k.fused_devices == []

def test_probe_without_fused_ops(monkeypatch):
    monkeypatch.delattr(torch, '_fused_adamw_')
    assert probe().fused is False

@pytest.mark.parametrize('kernels,expect', [(Kernels(True, ['cpu'], ['cpu']), 'fused'), (Kernels(False, ['cpu'], ['cpu']), 'foreach'),
                                            (Kernels(True, ['cpu'], []), 'foreach'), (Kernels(False, [], []), 'stepper')])
def test_auto_falls_back(kernels, expect):
    ps = _ps()
    for p in ps: p.grad = torch.ones_like(p)
    kind = fast_kind(AdamAnneal(ps).cbs)
    assert path(kind, 'auto', ps, kernels) == expect
    if not kernels.fused:
        with pytest.raises(RuntimeError, match="impl='fused': this torch has no fused kernels"): path(kind, 'fused', ps, kernels)

@pytest.mark.parametrize('opt_func', [AdamAnneal, SGDAnneal])
@pytest.mark.parametrize('kernels', [Kernels(False, ['cpu'], []), Kernels(False, [], [])], ids=['foreach', 'stepper'])
def test_fallback_steps_like_the_steppers(opt_func, kernels, monkeypatch):
    "With the kernels a torch lacks taken away, impl='auto' gives the steppers' parameters bit for bit"
    def run(impl):
        torch.manual_seed(0)
        ps = _ps()
        opt = opt_func(ps, lr=1e-2, impl=impl, **({'mom': 0.9} if opt_func is SGDAnneal else {}))
        for _ in range(3):
            for p in ps: p.grad = torch.randn_like(p)
            opt.step()
        return ps
    monkeypatch.setattr(_multi_tensor, 'KERNELS', kernels)
    for a,b in zip(run('auto'), run('stepper')): assert torch.equal(a, b)

# ---------------------------------------------------------------- params the fused kernels cannot walk in lock-step
needs_cpu_fused = pytest.mark.skipif(not (_multi_tensor.KERNELS.fused and 'cpu' in _multi_tensor.KERNELS.fused_devices),
                                     reason="this torch has no fused Adam/SGD kernels on the CPU")

def test_fusable_needs_one_dense_layout_and_dtype():
    p = torch.randn(4, 3, 2, 2, requires_grad=True)
    p.grad = torch.randn_like(p)
    assert _multi_tensor.fusable(p, {'grad_avg': torch.zeros_like(p), 'step': 3})
    cl = p.grad.contiguous(memory_format=torch.channels_last)
    assert not _multi_tensor.fusable(p, {'grad_avg': cl})  # same values, other order in memory
    assert not _multi_tensor.fusable(p, {'grad_avg': torch.zeros_like(p, dtype=torch.float64)})
    q = torch.randn(5, 8)[:, ::2]  # a gap after every element: not dense even when grad and state share its strides
    q.grad = torch.randn(5, 8)[:, ::2]
    assert not _multi_tensor.fusable(q, {})
    t = torch.randn(3, 5).t()  # transposed: dense, fusable when grad and state are transposed alike
    t.grad = torch.randn(3, 5).t()
    assert _multi_tensor.fusable(t, {'grad_avg': torch.zeros_like(t)}) and not _multi_tensor.fusable(t, {'grad_avg': torch.zeros(5, 3)})

def _switch_midway(opt_func, impl, switch, n=6):
    "`n` steps of a conv; after 3, `switch` changes its params' layout or dtype (the optimizer state made before stays)"
    torch.manual_seed(0)
    m = torch.nn.Conv2d(3, 4, 3)
    opt = opt_func(list(m.parameters()), lr=1e-2, impl=impl)
    g = torch.Generator().manual_seed(1)
    for k in range(n):
        if k == 3: switch(m)
        for p in m.parameters(): p.grad = torch.empty_like(p).copy_(torch.randn(p.shape, generator=g))  # in the param's layout
        opt.step()
    return [p.detach().float() for p in m.parameters()],opt

@needs_cpu_fused
@pytest.mark.parametrize('opt_func', [AdamAnneal, partial(SGDAnneal, mom=0.9), SGDAnneal], ids=['Adam', 'SGD-mom', 'SGD'])
@pytest.mark.parametrize('switch', [lambda m: m.to(memory_format=torch.channels_last), lambda m: m.to(torch.bfloat16),
                                    lambda m: m.double()], ids=['channels_last', 'bf16', 'fp64'])
def test_fused_steps_like_the_steppers_after_a_layout_or_dtype_change(opt_func, switch):
    "`learn.to_channelslast()` or a cast model between fits: state made before is no longer walked as the param (foreach steps it)"
    ref,_ = _switch_midway(opt_func, 'stepper', switch)
    for impl in ('fused', 'auto'):
        ps,opt = _switch_midway(opt_func, impl, switch)
        tol = 2e-2 if opt.param_lists[0][0].dtype == torch.bfloat16 else 1e-5  # bf16: a few ulps (the fused kernel computes in fp32)
        assert all((a - b).abs().max() <= tol * b.abs().max() for a,b in zip(ps, ref)), impl
        if opt_func is AdamAnneal: assert [opt.state[p]['step'] for p in opt.param_lists[0]] == [6, 6]

@needs_cpu_fused
def test_fused_with_a_contiguous_grad_on_a_strided_param():
    "a param that is a view with gaps (its grad is contiguous): the fast path gives the steppers' update"
    def go(impl):
        p = torch.nn.Parameter(torch.randn(5, 8, generator=torch.Generator().manual_seed(0))[:, ::2])  # strided storage
        opt = AdamAnneal([p], lr=1e-1, impl=impl)
        for k in range(3): p.grad = torch.randn(5, 4, generator=torch.Generator().manual_seed(k)); opt.step()
        return p.detach()
    ref = go('stepper')
    for impl in ('fused', 'auto'): assert torch.allclose(go(impl), ref, rtol=1e-5, atol=1e-6), impl
