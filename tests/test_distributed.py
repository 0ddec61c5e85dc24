"`examples/train_ddp.py` on 2 CPU processes (gloo, torchrun): identical lrs on both ranks, metrics equal to a single-process evaluation, lr_find restores every rank."
import json, socket, subprocess, sys, warnings
from pathlib import Path
import numpy as np, pytest, torch
from fastai.basics import *
from fastai_anneal.all import *
from fastai_anneal.data import mnist1d_dls, mnist1d_cnn

EXAMPLE = Path(__file__).parents[1]/'examples'/'train_ddp.py'
EPOCHS,WORLD = 2,2

def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]

@pytest.fixture(scope='module')
def run(tmp_path_factory):
    if not (torch.distributed.is_available() and torch.distributed.is_gloo_available()): pytest.skip('needs torch.distributed with gloo')
    failures = []
    for attempt in range(3):
        # A launch can fail for reasons outside the code under test: the probed port taken before torchrun binds it, or
        # (seen about once in three full-suite runs on this 2-core box, never alone) a rank aborting at gloo teardown.
        # Retry, but say so: the failure's log goes into a warning, and three failures fail the test with all logs.
        out = tmp_path_factory.mktemp('ddp')
        cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', str(WORLD), '--master_addr', '127.0.0.1',
               '--master_port', str(_free_port()), str(EXAMPLE), '--epochs', str(EPOCHS), '--lr-find', '--out', str(out)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS='1'))
        if r.returncode == 0: break
        failures.append(f'attempt {attempt}: exit {r.returncode}\n' + r.stderr[-3000:])
        warnings.warn(f'train_ddp launch failed, retrying:\n{failures[-1]}')
    assert r.returncode == 0, '\n\n'.join(failures)
    return [json.loads((out/f'rank{i}.json').read_text()) for i in range(WORLD)],out

@pytest.mark.distributed
def test_ranks_apply_the_identical_lr_sequence(run):
    res,_ = run
    assert res[0]['world'] == WORLD
    test_eq(res[0]['lrs'], res[1]['lrs'])
    n = len(res[0]['lrs'])
    test_eq(n, EPOCHS * 4000 // 100 // WORLD)  # each rank sees its half of every epoch
    s = cos_anneal_scheds(1e-2, pct_warmup=0.1)['lr']
    np.testing.assert_allclose(res[0]['lrs'], [s(t/n) for t in range(n)], rtol=1e-9)
    assert res[0]['digest'] == res[1]['digest'] and res[0]['synced']

@pytest.mark.distributed
def test_metrics_equal_single_process_evaluation(run):
    res,out = run
    learn = Learner(mnist1d_dls(bs=100), mnist1d_cnn(), loss_func=CrossEntropyLossFlat(), metrics=[Accuracy(), BalancedAccuracy()])
    learn.model.load_state_dict(torch.load(out/'model.pth'))
    with learn.no_bar(), learn.no_logging(): vals = learn.validate()
    single = dict(zip(['valid_loss', 'accuracy', 'balanced_accuracy_score'], map(float, vals)))
    for r in res:
        assert r['metrics']['accuracy'] == single['accuracy']  # counts: exact, padding left out
        assert abs(r['metrics']['balanced_accuracy_score'] - single['balanced_accuracy_score']) < 1e-12
    assert res[0]['metrics'] == res[1]['metrics']

@pytest.mark.distributed
def test_lr_find_restores_every_rank_in_sync(run):
    res,_ = run
    for r in res: assert r['restored'] and r['synced_after_lr_find']
    assert res[0]['lr_find_valley'] == res[1]['lr_find_valley'] > 0
