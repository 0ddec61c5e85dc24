"Argument validators shared by every entry point: each returns the checked value or raises naming the argument and the range."
from __future__ import annotations
import inspect, keyword, math, numbers, os, random
from pathlib import Path
import numpy as np, torch
from fastcore.basics import even_mults, tuplify
from fastcore.foundation import L
from fastai.callback.core import Callback

__all__ = []  # private: the public modules re-export nothing from here

# ---------------------------------------------------------------- numbers
def _is_real(v): return isinstance(v, numbers.Real) and not isinstance(v, bool)

INT_MAX = 2**53  # the largest count a float (fastai's `pct_train`, the schedules' positions) still holds exactly

def _short(v) -> str:
    "`repr(v)`, cut to 40 characters (an int of 400 digits in an error message)"
    r = repr(v)
    return r if len(r) <= 40 else r[:37] + '...'

def _number(v):
    "A 0-d tensor or array (what `x.max()` gives) as the Python number it holds (a bool or complex one is then refused as such)"
    return v.item() if isinstance(v, (np.ndarray, torch.Tensor)) and v.ndim == 0 else v

def finite_from(v, lo:float=0., strict:bool=False) -> bool:
    "Whether `v` is a finite number >= `lo` (> `lo` with `strict`; a NaN is neither); False for what does not compare (None, a string)"
    try: return bool(lo < v < math.inf) if strict else bool(lo <= v < math.inf)
    except (TypeError, ValueError, RuntimeError): return False

def check_int(name:str, v, lo:int=1, hi:int|None=INT_MAX) -> int:
    "`v` as an int in [`lo`, `hi`] (`hi` None: no bound), or raise naming `name` (whole floats such as 3.0 are accepted)"
    v = _number(v)
    try: whole = _is_real(v) and math.isfinite(v) and v == int(v)
    except OverflowError: whole = True  # an int beyond the float range: whole, and refused by `hi` below
    if not whole: raise TypeError(f"{name} must be a whole number >= {lo}, got {_short(v)}")
    if v < lo: raise ValueError(f"{name} must be >= {lo}, got {_short(v)}")
    if hi is not None and v > hi:
        why = ' (a count a float holds exactly)' if hi == INT_MAX else ''
        raise ValueError(f"{name} must be in [{lo}, {'2**53' if hi == INT_MAX else hi}]{why}, got {_short(v)}")
    return int(v)

def check_integral(name:str, v, lo:int=None, none_ok:bool=False, hi:int=None) -> int|None:
    "`v` as an int of an integer type (3.0 is refused: an axis or a class index), in [`lo`, `hi`] when given; None when `none_ok`"
    v = _number(v)
    if v is None and none_ok: return None
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        rng = '' if lo is None else f" >= {lo}" if hi is None else f" in [{lo}, {hi}]"
        raise TypeError(f"{name} must be {'None or ' if none_ok else ''}an int{rng}, got {v!r}")
    return int(v) if lo is None else check_int(name, v, lo, hi=hi)

def check_float(name:str, v, lo:float=0., hi:float=math.inf, lo_open:bool=True, hi_open:bool=True,
                inf_ok:bool=False) -> float:
    "`v` as a float in the interval (`lo`, `hi`) (open/closed as flagged), or raise naming `name` and the range"
    hi_open = hi_open and not (inf_ok and math.isinf(hi))  # inf_ok: inf itself is accepted (e.g. `div_final=inf` anneals to 0)
    rng = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    v = _number(v)
    if not _is_real(v): raise TypeError(f"{name} must be a real number in {rng}, got {_short(v)}")
    try: v = float(v)
    except OverflowError: raise ValueError(f"{name} must be a finite number in {rng}, got {_short(v)}") from None  # 10**400
    if math.isnan(v) or (math.isinf(v) and not (inf_ok and v > 0)):
        raise ValueError(f"{name} must be a finite number in {rng}, got {v!r}")
    if (v <= lo if lo_open else v < lo) or (v >= hi if hi_open else v > hi): raise ValueError(f"{name} must be in {rng}, got {v!r}")
    return v

def check_pct(name:str, v) -> float:
    "`v` as a fraction in [0, 1): a share of training, a momentum"
    return check_float(name, v, 0., 1., lo_open=False)

def check_bool(name:str, v) -> bool:
    "`v` as a bool: True/False (numpy's too) or the ints 0/1, as fastai's truthy flags are often passed"
    if isinstance(v, (bool, np.bool_)) or (isinstance(v, numbers.Integral) and v in (0, 1)): return bool(v)
    raise TypeError(f"{name} must be True or False, got {v!r}")

def check_choice(name:str, v, choices) -> object:
    "`v` if it is one of `choices`, else raise listing them"
    if isinstance(v, str) and v in choices: return v
    raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {v!r}")

NOISE_MIN_RATIO = 0.01  # the least `noise_pct/noise_std` of 'normal' noise: ~125 draws a step at most

def check_noise(noise_range_t, noise_pct, noise_std, noise_type, noise_seed, n_epoch:int, epochs_name:str='n_epoch') -> dict|None:
    ("timm's lr noise arguments checked (each named, with its range): None when `noise_range_t` is None (no noise), else "
     "`dict(lo, hi, pct, std, type, seed)` with the range in epochs, `hi=inf` for a single start epoch; `epochs_name` names `n_epoch`")
    pct = check_float('noise_pct', noise_pct, 0., 1., hi_open=False)  # above 1 a uniform draw could make the lr negative
    std = check_float('noise_std', noise_std)
    kind = check_choice('noise_type', noise_type, ('normal', 'uniform'))
    seed = check_integral('noise_seed', noise_seed, 0)
    if seed > 2**62:  # the noise of epoch or update t draws from `torch.Generator().manual_seed(seed + t)`: a signed 64-bit seed
        raise ValueError(f"noise_seed must be in [0, 2**62], got {seed!r}")
    if noise_range_t is None: return None
    if kind == 'normal' and pct < NOISE_MIN_RATIO*std:  # timm's draw: N(0, std) again until within pct, ~1.25*std/pct draws when small
        raise ValueError(f"noise_pct must be at least {NOISE_MIN_RATIO:g} x noise_std with noise_type='normal' (a draw repeats until "
                         f"|noise| < noise_pct: at noise_pct/noise_std = {pct/std:.3g} a step takes ~{1.25*std/pct:.3g} draws), got "
                         f"noise_pct={pct!r}, noise_std={std!r}")
    rng = f"None, an epoch in [0, {epochs_name}={n_epoch}] or a pair (lo, hi) of epochs with 0 <= lo < hi <= {n_epoch}"
    pair = isinstance(noise_range_t, (tuple, list))
    if pair and len(noise_range_t) != 2: raise TypeError(f"noise_range_t must be {rng}, got {noise_range_t!r}")
    ends = [_number(v) for v in (noise_range_t if pair else (noise_range_t,))]
    if not all(_is_real(v) for v in ends): raise TypeError(f"noise_range_t must be {rng}, got {noise_range_t!r}")
    if not all(math.isfinite(v) and 0 <= v <= n_epoch for v in ends) or (pair and not ends[0] < ends[1]):
        raise ValueError(f"noise_range_t must be {rng}, got {noise_range_t!r}")
    return dict(lo=float(ends[0]), hi=float(ends[1]) if pair else math.inf, pct=pct, std=std, type=kind, seed=seed)

# ---------------------------------------------------------------- learning rates
def check_lrs(name:str, lr, zero_ok:bool=False, slice_ok:bool=False) -> float|np.ndarray|slice:
    "`lr` as a float or a float64 array (one per param group), each finite and > 0 (>= 0 with `zero_ok`); a checked slice if `slice_ok`"
    chk = lambda n, v: check_float(n, v, 0., lo_open=not zero_ok)
    if slice_ok and isinstance(lr, slice):
        if lr.step is not None or lr.stop is None:  # the second phrase is the optimizer's own wording, kept for its users
            raise ValueError(f"{name} as a slice must be slice(stop) or slice(start, stop) "
                             f"(a {name} as a slice takes start and stop only), got {lr!r}")
        return slice(None if lr.start is None else chk(f"{name}.start", lr.start), chk(f"{name}.stop", lr.stop))
    lr = _number(lr)
    if isinstance(lr, (list, tuple, np.ndarray)) or (hasattr(lr, 'tolist') and not _is_real(lr)):
        arr = np.asarray(lr.tolist() if hasattr(lr, 'tolist') else lr, dtype=object)
        if arr.ndim > 1:  # fastai's `set_hyper` takes a flat list; a nested one would reach its optimizer's arithmetic
            raise ValueError(f"{name} must be a number or a flat list of one value per parameter group, got a nested "
                             f"{type(lr).__name__} of shape {arr.shape}")
        if arr.size == 0: raise ValueError(f"{name} must hold at least one value, got an empty {type(lr).__name__}")
        return np.array([chk(f"{name}[{i}]", v) for i,v in enumerate(arr)], dtype=np.float64)
    return chk(name, lr)

def group_lrs(name:str, v, n:int=None, zero_ok:bool=False):
    ("`v` as a float or one float per group (`n` of them), each > 0 (>= 0 with `zero_ok`); a slice expands as `set_hyper` does, or "
     "comes back checked while `n` is None")
    if isinstance(v, slice):
        v = check_lrs(name, v, zero_ok=zero_ok, slice_ok=True)
        if n is None: return v
        vals = [float(o) for o in L(even_mults(v.start, v.stop, n))] if v.start else [v.stop/10]*(n-1) + [v.stop]
    else:
        vals = check_lrs(name, v, zero_ok=zero_ok)
        if np.ndim(vals) == 0: return vals
        vals = vals.tolist()
    if len(vals) == 1: return vals[0]
    if n is not None and len(vals) != n:
        raise ValueError(f"{name} has {len(vals)} values but the optimizer has {n} parameter group(s): give one value, a slice, or {n} "
                         "values")
    return vals

def check_lr_range(start, end, n:int=None) -> tuple:
    "Checked `(start_lr, end_lr)`: floats or equal-length lists with `end_lr > start_lr` in every group"
    start,end = group_lrs('start_lr', start, n),group_lrs('end_lr', end, n)
    if isinstance(start, slice) or isinstance(end, slice): return start,end
    if isinstance(start, list) and isinstance(end, list) and len(start) != len(end):
        raise ValueError(f"start_lr has {len(start)} values but end_lr has {len(end)}: give one value per parameter group to both")
    if isinstance(start, list) or isinstance(end, list):
        k = len(start) if isinstance(start, list) else len(end)
        start,end = [start]*k if not isinstance(start, list) else start,[end]*k if not isinstance(end, list) else end
        for i,(s,e) in enumerate(zip(start, end)):
            if e <= s:
                raise ValueError(f"end_lr must be greater than start_lr in every group, got end_lr[{i}]={e!r} <= start_lr[{i}]={s!r}")
    elif end <= start: raise ValueError(f"end_lr must be greater than start_lr, got start_lr={start!r}, end_lr={end!r}")
    return start,end

def check_lr_or_name(name:str, v, names, what:str=None) -> float|str:
    "`v` as one of `names` (described by `what` in the error) or a learning rate > 0 (a number, or a string that parses as one)"
    if isinstance(v, str):
        if v in names: return v
        try: v = float(v)
        except ValueError: raise ValueError(f"{name} must be {what or ', '.join(map(repr, names))} or a number > 0, got {v!r}") from None
    return check_float(name, v)

def check_moms(name:str, moms) -> tuple:
    "`moms` as a `(hi, lo, hi)` triple of momentums in [0, 1)"
    if not isinstance(moms, (tuple, list)) or len(moms) != 3:
        raise TypeError(f"{name} must be a tuple of 3 momentums (start, peak-lr value, end) in [0, 1), got {moms!r}")
    return tuple(check_pct(f"{name}[{i}]", m) for i,m in enumerate(moms))

# ---------------------------------------------------------------- functions and callbacks
def check_annealer(name:str, f, names) -> callable:
    "`f` as an annealer `f(start, end, pos)`, or raise naming `name` and the accepted `names`"
    if not callable(f):
        raise TypeError(f"{name} must be a name in {list(names)} or a function f(start, end, pos), got {type(f).__name__}")
    try: inspect.signature(f).bind(1., 0., 0.5)
    except TypeError: raise TypeError(f"{name} must accept three arguments (start, end, pos); {f!r} does not") from None
    except ValueError: pass  # builtins without a signature: trust them
    return f

def check_cbs(cbs) -> L:
    ("`cbs` as a list of `Callback`s (instances or classes, as `Learner.add_cbs` takes them), or raise naming `cbs`. A class must "
     "take no required argument: fastai's `add_cb` creates it inside `fit`, where a failure leaves the callbacks added before it")
    cbs = L(cbs)
    bad = [c for c in cbs if not (isinstance(c, Callback) or (isinstance(c, type) and issubclass(c, Callback)))]
    if bad: raise TypeError(f"cbs must be fastai Callbacks (instances or classes), got {bad[0]!r}")
    for c in cbs:
        if not isinstance(c, type): continue
        try: inspect.signature(c).bind()
        except TypeError as e:
            raise TypeError(f"cbs: the callback class {c.__name__} cannot be created without arguments ({e}); pass an instance") from None
        except ValueError: pass  # no signature to read
    return cbs

def callback_instance(cb) -> Callback:
    ("`cb` if an instance, else the instance fastai's `add_cb` will create from the class (made here to run its own checks; the "
     "random number generators are left as they were)")
    if not isinstance(cb, type): return cb
    state = random.getstate(),np.random.get_state(),torch.get_rng_state()
    try: return cb()
    finally: random.setstate(state[0]); np.random.set_state(state[1]); torch.set_rng_state(state[2])

def check_suggest_funcs(suggest_funcs, name_of:callable) -> tuple|None:
    "None, or a tuple of suggestion functions whose names (`name_of(f)`) are distinct: they name the fields of `SuggestedLRs`"
    if suggest_funcs is None: return None
    funcs = tuplify(suggest_funcs)
    for f in funcs:
        if not callable(f):
            raise TypeError("suggest_funcs must be None or suggestion functions f(lrs, losses, num_it) such as SuggestionMethod.Valley, "
                            f"got {f!r}")
        try: inspect.signature(f).bind(None, None, None)  # fastai calls each after the sweep: a wrong one would waste it
        except TypeError: raise TypeError(f"suggest_funcs must take three arguments (lrs, losses, num_it); {f!r} does not") from None
        except ValueError: pass  # builtins without a signature: trust them
    nms = [name_of(f) for f in funcs]
    bad = [n for n in nms if not (isinstance(n, str) and n.isidentifier() and not keyword.iskeyword(n) and not n.startswith('_'))]
    if bad:  # checked before the sweep: `SuggestedLRs` is a namedtuple built after it
        raise ValueError(f"suggest_funcs must have names that can name the fields of SuggestedLRs (identifiers not starting with '_'), "
                         f"got {bad}: define the function with `def` and a public name")
    if len(set(nms)) != len(nms):
        raise ValueError(f"suggest_funcs must have distinct names (they name the fields of SuggestedLRs), got {nms}")
    return funcs

def check_named(name:str, d) -> dict:
    "`d` as a non-empty dict of schedule name -> values"
    if not isinstance(d, dict) or not d:
        raise TypeError(f"{name} must be a non-empty dict of schedule name -> values, got {type(d).__name__}")
    return d

# ---------------------------------------------------------------- devices and folders
def check_device(device, default:callable) -> torch.device:
    "The torch device: `default()` (a GPU when present) for 'auto'"
    if device not in ('auto', 'cpu', 'cuda'): raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    return default() if device == 'auto' else check_torch_device(device, instead="'auto' or 'cpu'")

def check_torch_device(device, instead:str="None or 'cpu'") -> torch.device|None:
    "`device` as a torch device (None stays None: the caller's default), one that exists here, or raise naming `device` and `instead`"
    if device is None: return None
    try: dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"device must be None, a torch.device, an index or a name such as 'cpu' or 'cuda:0', got {device!r}") from None
    if dev.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch finds no GPU (torch.cuda.is_available() is False); use {instead}")
    if dev.type == 'cuda' and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {device!r} asked for, but torch finds {torch.cuda.device_count()} GPU(s)")
    if dev.type == 'mps' and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r} asked for, but torch finds no MPS device; use {instead}")
    if dev.type == 'meta': raise ValueError(f"device must hold data: {device!r} holds shapes only; use {instead}")
    return dev

def check_out(out) -> Path:
    "`out` as a folder that exists or can be created, and can be written; creates nothing"
    if not isinstance(out, (str, Path)) or not str(out).strip(): raise TypeError(f"out must be a folder path, got {out!r}")
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir(): raise ValueError(f"out must be a folder, but {str(out)!r} is a file")
    parent = next(p for p in (out, *out.absolute().parents) if p.exists())
    if not parent.is_dir(): raise ValueError(f"out folder {str(out)!r} cannot be created: {str(parent)!r} is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"out folder {str(out)!r} cannot be written: no write permission on {str(parent)!r}")
    return out

LR_NAMES = ('lr', 'lr_max', 'base_lr', 'max_lr')  # the names fits give their learning rate

def bind_args(method:str, sig:inspect.Signature, lr_arg:str|None, *args, **kwargs) -> inspect.BoundArguments:
    "`sig.bind(*args, **kwargs)`, its `TypeError` naming `method`, and its lr argument when another fit's lr name was given"
    try: return sig.bind(*args, **kwargs)
    except TypeError as e:
        raise TypeError(f"{method}() {e}{lr_hint(lr_arg, [k for k in kwargs if k not in sig.parameters])}") from None

def lr_hint(lr_arg:str|None, unknown) -> str:
    "' (its learning rate is `lr_arg`)' when the `unknown` arguments of a call hold another fit's name for its lr"
    return f" (its learning rate is {lr_arg})" if lr_arg and any(k in LR_NAMES and k != lr_arg for k in unknown) else ''

