"torch's private kernels are probed once; without them the fast path falls back (foreach, then the steppers) to the same result."
import sys
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
