"Distributed exactness: metrics under fastai's `distrib_ctx` (2 CPU processes, gloo) equal the single-process values."
import json, os, socket, subprocess, sys, time
from pathlib import Path
import pytest, torch
from sklearn.metrics import balanced_accuracy_score
from fastai_anneal.metrics import Accuracy
sys.path.insert(0, str(Path(__file__).parent))
from _ddp_metrics_worker import N_VALID, make_task

WORKER,WORLD,TIMEOUT = Path(__file__).parent/'_ddp_metrics_worker.py',2,120

def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]

def _launch(out:Path):
    "Run the worker on `WORLD` ranks; kill them all on the first failure or after `TIMEOUT` s; return (ok, logs)"
    port,procs = _free_port(),[]
    for r in range(WORLD):
        env = dict(os.environ, MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(r), LOCAL_RANK=str(r),
                   WORLD_SIZE=str(WORLD), OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
        log = open(out/f'log{r}.txt', 'w')
        procs.append((subprocess.Popen([sys.executable, str(WORKER), str(out)], env=env, stdout=log, stderr=subprocess.STDOUT), log))
    deadline = time.monotonic() + TIMEOUT
    try:
        while time.monotonic() < deadline:
            codes = [p.poll() for p,_ in procs]
            if all(c == 0 for c in codes) or any(c not in (None, 0) for c in codes): break
            time.sleep(0.2)
    finally:
        for p,log in procs:
            if p.poll() is None: p.kill()
            p.wait(); log.close()
    logs = '\n'.join(f'--- rank {r}\n' + (out/f'log{r}.txt').read_text()[-3000:] for r in range(WORLD))
    return all(p.returncode == 0 for p,_ in procs), logs

@pytest.fixture(scope='module')
def ranks(tmp_path_factory):
    "Results of each rank (values per task) and the directory holding rank 0's final weights"
    if not (torch.distributed.is_available() and torch.distributed.is_gloo_available()): pytest.skip('needs torch.distributed with gloo')
    for attempt in range(2):  # the free port can be taken between probing and binding: one retry
        out = tmp_path_factory.mktemp('ddp')
        ok,logs = _launch(out)
        if ok or 'address already in use' not in logs.lower(): break
    assert ok, logs
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

@pytest.mark.distributed
def test_padding_would_change_the_value(ranks):
    "The padded duplicate (`DistributedDL` repeats index 0 on the last rank) matters: counting it gives another value"
    res,out = ranks
    _,preds,targs = _single('multiclass', out)
    padded = Accuracy()(torch.cat([preds, preds[:1]]), torch.cat([targs, targs[:1]]))
    assert padded != res[0]['multiclass']['accuracy']
