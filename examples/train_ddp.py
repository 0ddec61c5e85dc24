"""MNIST-1D with `fit_cos_anneal` and the streaming metrics under fastai's distributed training (accelerate).

    accelerate launch --multi_gpu --num_processes 2 examples/train_ddp.py   # 2 CPU processes (gloo) on a machine without GPUs
    torchrun --nproc_per_node 2 examples/train_ddp.py                      # the same with torchrun
    accelerate launch --multi_gpu --num_processes 2 examples/train_ddp.py --device cuda   # 2 GPUs (nccl)

(`accelerate launch --cpu --num_processes 2` starts a single process: accelerate 1.x's `--cpu` excludes `--multi_gpu`,
and its multi-CPU mode wants an MPI launcher. `--multi_gpu` only picks accelerate's torchrun launcher; the script
itself passes `cpu=True` to the `Accelerator` unless `--device cuda`.)

Every rank writes `OUT/rank{r}.json` (`--out OUT`; by default a new folder under the system temp dir, printed) with the lr
it applied at every batch, its final metrics and checksums of its weights before/after `lr_find`; rank 0 also writes
`OUT/model.pth`. `tests/test_distributed.py` launches this script.
"""
import argparse, hashlib, json, os, sys, tempfile
from pathlib import Path
import torch
from fastai.basics import *
from fastai.distributed import DistributedDL, rank_distrib, num_distrib
from fastai_anneal.all import *
from fastai_anneal.data import mnist1d_dls, mnist1d_cnn

def _broadcast(self, t, rank):
    "fastai's `DistributedDL._broadcast` moves the indices to CUDA for nccl; gloo on CPU needs them on the CPU"
    t = torch.tensor(t, dtype=torch.int64)
    if torch.distributed.get_backend() == 'nccl': t = t.cuda()
    torch.distributed.broadcast(t, rank)
    return t.cpu().tolist()
DistributedDL._broadcast = _broadcast

def _shared_tmp() -> Path:
    "A new temporary folder, made by rank 0 and sent to every rank (inside `distrib_ctx`: a launcher's run id can be 'none')"
    name = [tempfile.mkdtemp(prefix='train_ddp_') if rank_distrib() == 0 else None]
    if torch.distributed.is_initialized(): torch.distributed.broadcast_object_list(name, src=0)
    if rank_distrib() == 0: print(f'Writing to {name[0]}')
    return Path(name[0])

def weights_digest(model) -> str:
    "SHA-256 of every parameter and buffer, in order"
    h = hashlib.sha256()
    for t in model.state_dict().values(): h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()

def in_sync(model) -> bool:
    "Whether every rank holds the same weights (all-gather of a checksum)"
    if num_distrib() <= 1: return True
    s = torch.tensor([float(sum(p.detach().double().sum() for p in model.state_dict().values()))], dtype=torch.float64)
    out = [torch.zeros_like(s) for _ in range(num_distrib())]
    torch.distributed.all_gather(out, s)
    return all(torch.equal(o, out[0]) for o in out)

class RecordLRs(Callback):
    "Every training batch's lr, as the optimizer applied it"
    order = 70
    def __init__(self): self.lrs = []
    def after_batch(self):
        if self.training: self.lrs.append(self.opt.hypers[-1]['lr'])

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--epochs', type=int, default=3)
    ap.add_argument('--lr', default='1e-2', help="peak lr of fit_cos_anneal, or 'auto': tuned by Learner.lr_tune, one decision for all ranks")
    ap.add_argument('--bs', type=int, default=100)
    ap.add_argument('--lr-find', action='store_true', help='run lr_find first and check it restores every rank')
    ap.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    ap.add_argument('--out', default=None, help='output folder (default: a new temporary folder, printed by rank 0)')
    args = ap.parse_args()
    if args.epochs < 1: ap.error(f'--epochs must be >= 1, got {args.epochs}')
    try: lr = args.lr if args.lr == 'auto' else float(args.lr)
    except ValueError: ap.error(f"--lr must be a number or 'auto', got {args.lr!r}")
    rank = rank_distrib()
    set_seed(42, reproducible=True)  # same initial weights and data order on every rank
    device = torch.device('cuda', rank % max(torch.cuda.device_count(), 1)) if args.device == 'cuda' else torch.device('cpu')
    learn = Learner(mnist1d_dls(bs=args.bs, device=device), mnist1d_cnn(), loss_func=CrossEntropyLossFlat(), opt_func=Adam,
                    metrics=[Accuracy(), BalancedAccuracy()])
    res,rec = dict(rank=rank, world=num_distrib()),RecordLRs()
    with learn.distrib_ctx(cpu=args.device == 'cpu', sync_bn=False):
        out = Path(args.out) if args.out else _shared_tmp()
        out.mkdir(parents=True, exist_ok=True)
        if args.lr_find:
            before = weights_digest(learn.model)
            with learn.no_bar(): sugg = learn.lr_find(show_plot=False)
            res.update(lr_find_valley=float(sugg.valley), restored=weights_digest(learn.model) == before, synced_after_lr_find=in_sync(learn.model))
        learn.fit_cos_anneal(args.epochs, lr, pct_warmup=0.1, cbs=rec)
        if lr == 'auto':
            t = learn.lr_tune_result
            res.update(lr_tuned=t.scale, trial_scores=[x['score'] for x in t.trials], trial_lrs=[x['lr'] for x in t.trials])
        res.update(lrs=[float(v) for v in rec.lrs], metrics=dict(zip(learn.recorder.metric_names[1:-1], map(float, learn.recorder.values[-1]))),
                   digest=weights_digest(learn.model), synced=in_sync(learn.model))
    (out/f'rank{rank}.json').write_text(json.dumps(res))
    if rank == 0: torch.save(learn.model.state_dict(), out/'model.pth')
    if torch.distributed.is_initialized():
        torch.distributed.barrier()  # no rank leaves while a peer still needs it
        torch.distributed.destroy_process_group()
        # torch keeps the process group of a `DistributedDataParallel`, and its gloo threads, alive past `destroy_process_group`;
        # torn down by the C++ static destructors at exit, they aborted a rank ("terminate called without an active exception")
        # in about 1 run in 20. Everything is written: end the process without that teardown.
        sys.stdout.flush(); sys.stderr.flush()
        os._exit(0)

if __name__ == '__main__': main()
