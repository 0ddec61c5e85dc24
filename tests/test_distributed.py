"""`examples/train_ddp.py` on 2 CPU processes (gloo, torchrun): identical lrs on both ranks, metrics equal to a single-process
evaluation, lr_find restores every rank; and an exact resume under `DistributedDL`."""
import json, math, os, subprocess, sys
from pathlib import Path
import numpy as np, pytest, torch
from fastai.basics import *
from fastai_anneal.all import *
from fastai_anneal.data import mnist1d_dls, mnist1d_cnn
from conftest import launch_ranks, needs_gloo

TESTS = Path(__file__).parent
EXAMPLE = TESTS.parent/'examples'/'train_ddp.py'
EPOCHS,WORLD = 2,2

def _ranks(path) -> list:
    "What each rank's worker wrote to `path` (rank0.json, rank1.json...)"
    return [json.loads((path/f'rank{r}.json').read_text()) for r in range(WORLD)]

def _run_example(out, *args) -> list:
    ("The documented command, `examples/train_ddp.py *args` under torchrun, writing to `out`; what each rank wrote. torchrun's "
     "`--standalone` rendezvous binds a port of its own, so no probed port can be taken first")
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', str(WORLD), str(EXAMPLE), *args,
           '--out', str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert r.returncode == 0, f'exit {r.returncode}\n' + r.stderr[-5000:]
    return _ranks(out)

@pytest.fixture(scope='module')
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp('ddp')
    return _run_example(out, '--epochs', str(EPOCHS), '--lr-find'),out

@pytest.mark.distributed
@needs_gloo
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
@needs_gloo
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
@needs_gloo
def test_lr_find_restores_every_rank_in_sync(run):
    res,_ = run
    for r in res: assert r['restored'] and r['synced_after_lr_find']
    assert res[0]['lr_find_valley'] == res[1]['lr_find_valley'] > 0

@pytest.mark.distributed
@needs_gloo
def test_resume_under_distributed_dl(tmp_path):
    "issue 10.2: resumed with `start_epoch` under `distrib_ctx`, a run ends on the uninterrupted run's weights"
    launch_ranks(TESTS/'_ddp_resume_worker.py', tmp_path, WORLD)
    res = _ranks(tmp_path)
    assert res[0]['world'] == WORLD and res[0]['n_batches'] > 1  # each rank trained on its share of several shuffled batches
    for r in res:
        for full,resumed in zip(r['full'], r['resumed']): np.testing.assert_allclose(resumed, full, rtol=1e-6, atol=1e-7)
    test_eq(res[0]['full'], res[1]['full'])

@pytest.mark.distributed
@needs_gloo
def test_auto_lr_is_one_decision_for_every_rank(tmp_path):
    "`fit_cos_anneal(n, 'auto')` under `distrib_ctx`: the ranks average every trial's score, so they take the same decisions and lr"
    res = _run_example(tmp_path, '--epochs', '10', '--lr', 'auto')
    assert res[0]['lr_tuned'] == res[1]['lr_tuned'] and 1e-5 < res[0]['lr_tuned'] < 1
    test_eq(res[0]['trial_lrs'], res[1]['trial_lrs'])
    test_eq(res[0]['trial_scores'], res[1]['trial_scores'])  # each score is the mean over the ranks
    test_eq(res[0]['lrs'], res[1]['lrs'])
    fit_lrs = res[0]['lrs'][-10 * 4000 // 100 // WORLD:]  # the callbacks of the fit ran in its trials too
    assert max(fit_lrs) == pytest.approx(res[0]['lr_tuned'], rel=1e-6)  # the warmup reaches the tuned peak
    assert res[0]['digest'] == res[1]['digest'] and res[0]['synced']

@pytest.mark.distributed
@needs_gloo
def test_the_tuner_decides_once_when_the_ranks_see_different_things(tmp_path):
    ("Each rank scores its own batches: when rank 1 alone reads a range test's top twice as high, a trial as diverged or its first "
     "probe as unstable, or its watched fit as collapsed, both ranks still take one decision (the top's geometric mean, diverged, "
     "unstable or collapsed on any rank)")
    launch_ranks(TESTS/'_ddp_agree_worker.py', tmp_path, WORLD)
    res = _ranks(tmp_path)
    assert res[0]['world'] == WORLD
    for case in ('same', 'top', 'diverged', 'probe', 'collapse'): test_eq(res[0][case], res[1][case])  # lr, trials, probes, rule
    same,top,div,probe = (res[0][k] for k in ('same', 'top', 'diverged', 'probe'))
    assert top['top'] == pytest.approx(same['top'] * 2**0.5, rel=1e-9)
    assert top['trials'][0][0] == top['top']
    t = div['trials'][1]
    assert t[2] and t[3] == math.inf and not same['trials'][1][2]  # rank 0's trial did not diverge: it counts as diverged
    assert div['lr'] == pytest.approx(t[0] / 4) and 'its trial diverged' in div['rule']  # the margin below it, on every rank
    test_eq([p[1] for p in probe['probes']], [True, False])  # rank 0's first probe passed; the pick halved on both ranks
    assert probe['lr'] == pytest.approx(probe['probes'][0][0] / 2) and 'halved 1x' in probe['rule']
    col = res[0]['collapse']  # rank 0's fit went on well: it restarted with rank 1's, at half the lr, and ran the whole fit
    assert len(col['restarts']) == 1 and col['lr'] == pytest.approx(same['lr'] / 2) and 'restarted at half' in col['rule']
    assert len(col['fit_lrs']) == 6 * 512 // 16 // WORLD and max(col['fit_lrs']) == pytest.approx(col['lr'], rel=1e-6)

@pytest.mark.distributed
@needs_gloo
def test_plateau_is_one_decision_for_every_rank(tmp_path):
    "`AnnealPlateau` under `distrib_ctx`: fastai gathers the validation loss over the ranks, so each rank takes torch's decisions"
    from _ddp_plateau_worker import PLATEAU
    launch_ranks(TESTS/'_ddp_plateau_worker.py', tmp_path, WORLD)
    res = _ranks(tmp_path)
    assert res[0]['world'] == WORLD
    test_eq(res[0]['losses'], res[1]['losses'])
    test_eq(res[0]['lrs'], res[1]['lrs'])
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **PLATEAU)
    for v in res[0]['losses']: ref.step(v)
    assert res[0]['scale'] == res[1]['scale'] == opt.param_groups[0]['lr'] < 1

@pytest.mark.distributed
@needs_gloo
def test_what_a_fit_runs_is_sized_on_each_rank_s_share(tmp_path):
    ("fastai shards the loaders only as a fit starts: the range test runs all its batches, the tuner sizes its trials on the fit each "
     "rank runs, a cosine sweep's suggestions are one decision, and the schedules that count batches step once per batch a rank runs")
    from _ddp_sizes_worker import N_ITEMS, BS
    launch_ranks(TESTS/'_ddp_sizes_worker.py', tmp_path, WORLD, timeout=240)
    res = _ranks(tmp_path)
    nb = math.ceil(N_ITEMS/WORLD) // BS  # each rank's batches per epoch: its share of the items, in full batches
    assert res[0]['world'] == WORLD
    assert res[0]['find_cos'] == res[1]['find_cos']  # each rank's batch losses differ: suggestions from their mean
    assert res[0]['find_n'] == 40  # every batch asked for (60% of them before: epochs counted on the whole loader)
    for r in res:
        assert r['tune_steps'] == 10*nb
        n,losses = r['sweep_n'],r['sweep_losses']
        assert n == 30 or losses[-1] > 4*min(losses)  # the tuner's range test ran its 30 points, or up to its divergence
    assert res[0]['tune_lr'] == res[1]['tune_lr']
    # the schedules read fastai's position, whose epoch is `DistributedDL.__len__` = ceil(len/world) = 13 batches, one more than the
    # 12 a rank runs here: each epoch starts at step 13*e (as fastai's own schedulers do), every other step follows the reference
    for r in res:  # a share that fills no batch (12 items a rank, batches of 16): said so, before anything runs, on every rank
        assert len(r['empty_share']) == 3 and 'fills no batch of 16' in r['empty_share'][0], r.get('empty_share')
        assert "lr='auto' needs training batches" in r['empty_share'][1]
        assert "the fit needs batches" in r['empty_share'][2] and "ranks' share fills no batch of 16" in r['empty_share'][2]
    n_it = math.ceil((N_ITEMS//BS)/WORLD)
    for m,ref in (('fit_cyclic', lambda t: _cyclic(t, 1e-3, 1e-2, 5)), ('fit_time_decay', lambda t: 1e-2/(1 + t/4))):
        assert res[0][m] == res[1][m] and len(res[0][m]) == 2*nb
        np.testing.assert_allclose(res[0][m], [ref(e*n_it + i) for e in range(2) for i in range(nb)], rtol=1e-6)

def _cyclic(t:int, base:float, top:float, up:int) -> float:
    "torch `CyclicLR`'s triangle (step_size_down = step_size_up) at step `t`, its documented formula"
    cycle = math.floor(1 + t/(2*up)); x = abs(t/up - 2*cycle + 1)
    return base + (top - base)*max(0., 1 - x)

@pytest.mark.distributed
@needs_gloo
def test_a_search_leaves_the_model_as_distrib_ctx_left_it(tmp_path):
    ("Every fit under `distrib_ctx` replaces each BatchNorm by a new `SyncBatchNorm` and wraps `forward` in autocast once more "
     "(`mixed_precision`): `lr_find` and `lr_tune` left the BatchNorm in training mode (its modes went back to the modules they "
     "replaced) and a `forward` nested once per trial, to a RecursionError after about 19 tunings")
    launch_ranks(TESTS/'_ddp_search_worker.py', tmp_path, WORLD, timeout=240)
    for r in _ranks(tmp_path):
        assert r['converted'] and not any(r['after_fit']['modes'])
        for k in ('after_lr_find', 'after_lr_tune'): test_eq(r[k], r['after_fit'])
