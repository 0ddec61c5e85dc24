"""Step time of `AdamAnneal`/`SGDAnneal` against torch's fused optimizers and fastai's, in one process.

All optimizers step the same synthetic resnet-like parameter set (53 tensors, ~10M parameters: a stem conv, 16 3x3 convs,
their batchnorm weights and biases, a linear head) with the same fixed random gradients. Each round times `--steps`
steps of every optimizer in turn (interleaved, in a fresh random order each round, so load from other processes hits all
of them alike); the figure is the
median over `--rounds` rounds of the per-step time, and ratios are medians over anchors timed in the same process.

    python benchmarks/bench_optimizer.py                  # CPU, 1 thread
    python benchmarks/bench_optimizer.py --device cuda    # on a GPU, when there is one
"""
import argparse, platform, random, statistics, sys, time, warnings
import torch
from fastai.optimizer import Adam, SGD
from fastai_anneal.optimizer import AdamAnneal, SGDAnneal

GOALS = {'AdamAnneal (fast) / AdamW(fused=True)': 1.15, 'AdamAnneal (stepper) / fastai Adam': 1.05}

def resnet_like_shapes(width_last:int=480, n_out:int=10) -> list:
    "53 shapes, ~10M parameters: stem conv + bn, 4 stages of 4 3x3 convs each followed by a bn, a linear head"
    shapes,c_in = [(64, 3, 7, 7), (64,), (64,)],64
    for c in [64]*4 + [128]*4 + [256]*4 + [width_last]*4:
        shapes += [(c, c_in, 3, 3), (c,), (c,)]
        c_in = c
    return shapes + [(n_out, c_in), (n_out,)]

def make_params(shapes, device, seed=0) -> list:
    "Leaf parameters with fixed random grads, as after a backward pass"
    g = torch.Generator(device='cpu').manual_seed(seed)
    ps = []
    for s in shapes:
        p = torch.nn.Parameter((torch.randn(s, generator=g) * 0.05).to(device))
        p.grad = (torch.randn(s, generator=g) * 1e-2).to(device)
        ps.append(p)
    return ps

def sync(device):
    if device.startswith('cuda'): torch.cuda.synchronize()

def time_steps(opt, n, device) -> float:
    "Seconds per step of `n` steps"
    sync(device)
    t0 = time.perf_counter()
    for _ in range(n): opt.step()
    sync(device)
    return (time.perf_counter() - t0) / n

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--device', default='cpu', help="'cpu' or 'cuda' (default: cpu)")
    ap.add_argument('--threads', type=int, default=1, help='torch intra-op threads on CPU (default 1: the machine is shared)')
    ap.add_argument('--steps', type=int, default=5, help='steps per optimizer per round (default 5)')
    ap.add_argument('--rounds', type=int, default=15, help='rounds; the median is reported (default 15)')
    args = ap.parse_args(argv)
    if args.device.startswith('cuda') and not torch.cuda.is_available(): sys.exit("--device cuda: no CUDA device on this machine")
    warnings.filterwarnings('ignore')
    torch.set_num_threads(args.threads)
    shapes = resnet_like_shapes()
    n_params = sum(torch.Size(s).numel() for s in shapes)
    lr,wd,betas,eps = 1e-3,1e-2,(0.9, 0.99),1e-5  # fastai's Adam defaults; torch's AdamW set to match
    # each optimizer owns its params (same values, same grads): identical memory layout, independent state
    opts = {
        'torch AdamW(fused=True)':  lambda ps: torch.optim.AdamW(ps, lr=lr, betas=betas, eps=eps, weight_decay=wd, fused=True),
        'torch AdamW(foreach=True)': lambda ps: torch.optim.AdamW(ps, lr=lr, betas=betas, eps=eps, weight_decay=wd, foreach=True),
        'fastai Adam':              lambda ps: Adam(ps, lr=lr),
        'AdamAnneal (fast)':        lambda ps: AdamAnneal(ps, lr=lr),
        'AdamAnneal (foreach)':     lambda ps: AdamAnneal(ps, lr=lr, impl='foreach'),
        'AdamAnneal (stepper)':     lambda ps: AdamAnneal(ps, lr=lr, impl='stepper'),
        'torch SGD(fused=True)':    lambda ps: torch.optim.SGD(ps, lr=lr, momentum=0.9, fused=True),
        'fastai SGD':               lambda ps: SGD(ps, lr=lr, mom=0.9),
        'SGDAnneal (fast)':         lambda ps: SGDAnneal(ps, lr=lr, mom=0.9),
        'SGDAnneal (stepper)':      lambda ps: SGDAnneal(ps, lr=lr, mom=0.9, impl='stepper'),
    }
    opts = {k: f(make_params(shapes, args.device)) for k,f in opts.items()}
    fast_path = opts['AdamAnneal (fast)']._path(opts['AdamAnneal (fast)'].param_lists[0])
    for o in opts.values(): time_steps(o, 2, args.device)  # warm-up: state allocation, first-call costs
    times = {k: [] for k in opts}
    order = list(opts)
    for r in range(args.rounds):
        random.Random(r).shuffle(order)  # a new order each round: no optimizer always runs right after the same one
        for k in order: times[k].append(time_steps(opts[k], args.steps, args.device))
    med = {k: statistics.median(v) for k,v in times.items()}
    ratios = {
        'AdamAnneal (fast) / AdamW(fused=True)':    (med['AdamAnneal (fast)'],    med['torch AdamW(fused=True)']),
        'AdamAnneal (foreach) / AdamW(foreach=True)': (med['AdamAnneal (foreach)'], med['torch AdamW(foreach=True)']),
        'AdamAnneal (stepper) / fastai Adam':       (med['AdamAnneal (stepper)'], med['fastai Adam']),
        'fastai Adam / AdamW(fused=True)':          (med['fastai Adam'],          med['torch AdamW(fused=True)']),
        'SGDAnneal (fast) / SGD(fused=True)':       (med['SGDAnneal (fast)'],     med['torch SGD(fused=True)']),
        'SGDAnneal (stepper) / fastai SGD':         (med['SGDAnneal (stepper)'],  med['fastai SGD']),
    }
    dev = torch.cuda.get_device_name() if args.device.startswith('cuda') else f"{platform.processor() or platform.machine()} CPU, {args.threads} thread(s)"
    print(f"device: {args.device} ({dev}); torch {torch.__version__}; {len(shapes)} tensors, {n_params/1e6:.2f}M params; "
          f"median of {args.rounds} rounds x {args.steps} steps; AdamAnneal fast path: {fast_path}")
    print(f"\n{'optimizer':<28}{'ms/step':>10}")
    for k,v in med.items(): print(f"{k:<28}{v*1e3:>10.2f}")
    print(f"\n{'ratio':<44}{'value':>8}{'goal':>8}")
    for k,(a,b) in ratios.items():
        goal = GOALS.get(k)
        print(f"{k:<44}{a/b:>8.3f}{'' if goal is None else f'<={goal}':>8}" + ('' if goal is None else '  ok' if a/b <= goal else '  MISSED'))
    return {k: a/b for k,(a,b) in ratios.items()}

if __name__ == '__main__': main()
