"Distributed exactness: metrics under fastai's `distrib_ctx` (2 CPU processes, gloo) equal the single-process values."
import json, sys
from pathlib import Path
import pytest, torch
from sklearn.metrics import balanced_accuracy_score
from fastai.callback.progress import ProgressCallback  # noqa: F401  `Learner.no_bar`: this file alone imports no module that brings it
from fastai_anneal.metrics import Accuracy
from conftest import launch_ranks, needs_gloo
sys.path.insert(0, str(Path(__file__).parent))
from _ddp_metrics_worker import N_VALID, make_task

WORKER,WORLD = Path(__file__).parent/'_ddp_metrics_worker.py',2

@pytest.fixture(scope='module')
def ranks(tmp_path_factory):
    "Results of each rank (values per task) and the directory holding rank 0's final weights"
    out = tmp_path_factory.mktemp('ddp')
    launch_ranks(WORKER, out, WORLD)
    return [json.loads((out/f'rank{r}.json').read_text()) for r in range(WORLD)],out

def _single(name, out):
    "The task's metric values from a plain `validate` with rank 0's final weights, and its full predictions"
    learn = make_task(name)
    learn.model.load_state_dict(torch.load(out/f'{name}.pth'))
    with learn.no_bar(), learn.no_logging():
        vals = learn.validate()[1:]
        preds,targs = learn.get_preds()
    return dict(zip(learn.metrics.attrgot('name'), map(float, vals))),preds,targs

@pytest.mark.distributed
@needs_gloo
@pytest.mark.parametrize('name', list(N_VALID))
def test_distributed_equals_single_process(ranks, name):
    res,out = ranks
    assert N_VALID[name] % WORLD != 0  # otherwise there would be no padding to leave out
    single,preds,targs = _single(name, out)
    got = res[0][name]
    assert list(got) == list(single) and len(got) >= 2
    for r in range(WORLD): assert res[r][name] == got  # every rank reads the same reduced value
    for k,v in single.items():
        # counts are integers: bit-for-bit equal; weights are float sums, added in another order across ranks
        if k.startswith('weighted'): assert abs(got[k] - v) <= 1e-12, (k, got[k], v)
        else: assert got[k] == v, (k, got[k], v)
    if name == 'multiclass':
        assert got['accuracy'] == (preds.argmax(1) == targs).double().mean().item()
        assert got['balanced_accuracy_score'] == balanced_accuracy_score(targs, preds.argmax(1))
    if name == 'labels':  # class-index predictions, the largest label on one rank only: the ranks agree on 5 classes
        assert got['balanced_accuracy_score'] == balanced_accuracy_score(targs, preds)
        assert got['adjusted_balanced_accuracy'] == balanced_accuracy_score(targs, preds, adjusted=True)

@pytest.mark.distributed
@needs_gloo
def test_padding_would_change_the_value(ranks):
    "The padded duplicate (`DistributedDL` repeats index 0 on the last rank) matters: counting it gives another value"
    res,out = ranks
    _,preds,targs = _single('multiclass', out)
    padded = Accuracy()(torch.cat([preds, preds[:1]]), torch.cat([targs, targs[:1]]))
    assert padded != res[0]['multiclass']['accuracy']
