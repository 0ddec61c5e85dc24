("What the 2-process gloo workers share: join the group without a TCP port, fastai's CUDA-only broadcast on the CPU, a clean exit, "
 "and their stacks on SIGUSR1 (`launch_ranks` asks before it kills a hung rank)")
import faulthandler, os, signal, sys
from pathlib import Path
import torch, torch.distributed as dist

def init(out:Path):
    ("Join the gloo group through a file in `out`: no port to race for, no store served by a rank that may exit first; accelerate reuses "
     "it. SIGUSR1 writes every thread's stack to the log, in this process and in any it forks")
    if hasattr(signal, 'SIGUSR1'): faulthandler.register(signal.SIGUSR1, all_threads=True)
    dist.init_process_group('gloo', init_method=f"file://{Path(out).absolute()/'rendezvous'}",
                            rank=int(os.environ['RANK']), world_size=int(os.environ['WORLD_SIZE']))

def cpu_broadcast(self, t, rank):
    "`DistributedDL._broadcast` without its `.cuda()` (fastai assumes nccl): gloo broadcasts CPU tensors"
    t = torch.tensor(t, dtype=torch.int64)
    dist.broadcast(t, rank)
    return t.tolist()

def finish():
    "Leave the group together, then end the process without the interpreter's teardown"
    if dist.is_initialized():
        dist.barrier()  # no rank leaves while a peer still needs it
        dist.destroy_process_group()
    # Once a `DistributedDataParallel` has been built, something in torch keeps the gloo process group, and its three threads,
    # alive past `destroy_process_group` (even with the DDP object deleted and collected). They then die in the C++ static
    # destructors at exit, which aborted a rank ("terminate called without an active exception", SIGABRT) in about 1 run in
    # 15-20 on a loaded 2-core machine. Everything is written and flushed by now: exit without that teardown.
    sys.stdout.flush(); sys.stderr.flush()
    os._exit(0)
