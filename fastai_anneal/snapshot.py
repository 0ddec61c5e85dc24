"`LearnerSnapshot`: run anything on a `Learner`, then give it back bit for bit (the LR finder and the lr tuner share it)."
from __future__ import annotations
import copy, math, random, signal, threading, warnings
import numpy as np, torch
from torch import nn
from fastai.optimizer import _BaseOptimizer
from fastai.callback.core import Callback
from fastcore.foundation import L
from fastcore.xtras import ReindexCollection
from fastai.learner import Learner
from fastai.callback.progress import CSVLogger

__all__ = ['LearnerSnapshot']

def _optimizers(learn) -> list:
    ("Every optimizer object a fit may change: `learn.opt`, a built `OptimWrapper` given as `opt_func` (`create_opt` reuses it), and what"
     " they wrap (`Lookahead.opt`, `OptimWrapper.opt`)")
    res,todo = [],[learn.opt, learn.opt_func]
    while todo:
        o = todo.pop()
        if isinstance(o, (_BaseOptimizer, torch.optim.Optimizer)) and not any(o is r for r in res):
            res.append(o)
            if isinstance(o, _BaseOptimizer): todo += list(vars(o).values())
    return res

def _snap_opt(opt, memo):
    ("A torch optimizer through its own `state_dict`; a fastai one as a deep copy of its attributes, params and optimizers kept by "
     "identity through `memo`")
    if isinstance(opt, torch.optim.Optimizer): return copy.deepcopy(opt.state_dict())
    attrs,skipped = {},[]
    # the state's keys by identity, as the params are: fastai keys a bias's state by `m.bias`, which a pruned or parametrised bias
    # makes a computed tensor (one torch cannot deep-copy: the whole state was skipped, and the sweep's moments stayed)
    if isinstance(st := vars(opt).get('state'), dict): memo.update({id(k): k for k in st})
    for k,v in vars(opt).items():
        if k == 'param_lists':  # the params themselves, not copies: a callback may swap them for a fit (fastai's fp32 masters)
            attrs[k] = L(L(list(g)) for g in v); continue
        try: attrs[k] = copy.deepcopy(v, memo)  # one memo: references shared between attributes stay shared
        except Exception: attrs[k] = v; skipped.append(k)
    if skipped: warnings.warn(f"LearnerSnapshot: optimizer attribute(s) {skipped} of {type(opt).__name__} cannot be deep-copied "
                              "and will not be restored")
    return attrs

def _restore_opt(opt, saved):
    if isinstance(opt, torch.optim.Optimizer): return opt.load_state_dict(saved)
    for k in set(vars(opt)) - set(saved): delattr(opt, k)  # attributes the fit added
    for k,v in saved.items(): setattr(opt, k, v)

def _dataloaders(dls) -> list:
    "The loaders of `dls` and those they wrap: a `DistributedDL` shuffles with its inner `dl`'s `rng`"
    res,todo = [],list(getattr(dls, 'loaders', []))
    while todo:
        dl = todo.pop()
        if dl is not None and not any(dl is r for r in res): res.append(dl); todo.append(vars(dl).get('dl'))
    return res

_RNGS = (random.Random, np.random.Generator, np.random.RandomState, torch.Generator)

def _generators(dls:list) -> list:
    ("The random generators that shuffle `dls`, under any attribute name: a loader's own (but fastai's `rng`, which a loader replaces "
     "every epoch), its sampler's and batch sampler's (a torch `RandomSampler(ds, generator=g)`, a batch sampler with its own numpy "
     "`Generator`)")
    res = []
    for dl in dls:
        d = vars(dl)
        for o in (dl, d.get('sampler'), d.get('batch_sampler'), getattr(d.get('batch_sampler'), 'sampler', None)):
            if o is None or not hasattr(o, '__dict__'): continue
            for k,g in vars(o).items():
                if isinstance(g, _RNGS) and not isinstance(g, random.SystemRandom) and not (o is dl and k == 'rng') \
                   and not any(g is r for r in res): res.append(g)  # the OS's randomness has no state to put back
    return res

def _orders(dls:list) -> list:
    ("The orders loaders keep between epochs, `(loader, indices)`: fastai's `LMDataLoader` shuffles by permuting its documents' "
     "`ReindexCollection` in place, so its next epoch depends on the last one's order as well as on the RNG")
    return [(dl, list(vars(dl)['items'].idxs)) for dl in dls if isinstance(vars(dl).get('items'), ReindexCollection)]

def _set_order(dl, order:list):
    "Put `order` back in place (the loader's `lens` shares the list) and rebuild what the loader derives from it (an LM's chunks)"
    idxs = dl.items.idxs
    if isinstance(idxs, L): idxs.items[:] = order
    else: idxs[:] = order
    if callable(getattr(dl, 'make_chunks', None)): dl.make_chunks()

def _rng_state(g):
    if isinstance(g, torch.Generator): return g.get_state()
    if isinstance(g, np.random.Generator): return copy.deepcopy(g.bit_generator.state)
    return g.get_state() if isinstance(g, np.random.RandomState) else g.getstate()

def _set_rng_state(g, st):
    if isinstance(g, torch.Generator): g.set_state(st)
    elif isinstance(g, np.random.Generator): g.bit_generator.state = st
    elif isinstance(g, np.random.RandomState): g.set_state(st)
    else: g.setstate(st)

def _opt_params(opts:list) -> list:
    "The parameters `opts` train: a fastai optimizer's `param_lists`, a torch one's `param_groups` (a loss's own parameters too)"
    res = []
    for o in opts:
        groups = [g['params'] for g in o.param_groups] if isinstance(o, torch.optim.Optimizer) else getattr(o, 'param_lists', [])
        res += [p for g in groups for p in g if isinstance(p, torch.Tensor)]
    return res

def _each(f, items):
    ("`f(*item)` for every item, whatever an earlier one raised, then raise the first error with a note counting the others: a "
     "restore is never left half done")
    first,more = None,[]
    for it in items:
        try: f(*it)
        except BaseException as e:
            if first is None: first = e
            else: more.append(repr(e))  # not the error: its traceback would keep the copy it restored alive
    items = it = None  # the error's traceback holds this frame: not the copies, which `restore` frees
    if first is None: return
    if more: first.add_note(f"and {len(more)} more error(s) while restoring: {'; '.join(more[:3])}")
    raise first

class sigint_held:
    ("Hold Ctrl-C while the block runs and deliver it after, as the handler in place would have: a restore a second Ctrl-C "
     "would stop halfway (weights back, grads and optimizer not) runs to its end. Main thread only, where Python takes signals")
    def __enter__(self):
        self.old,self.hit = None,False
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) is not None:
            self.old = signal.signal(signal.SIGINT, self._hold)
        return self
    def _hold(self, signum, frame): self.hit = True
    def __exit__(self, *exc):
        if self.old is None: return
        signal.signal(signal.SIGINT, self.old)
        if not self.hit: return
        # delivered even when the block raised (the error is then the KeyboardInterrupt's context): the user asked to stop
        if callable(self.old): self.old(signal.SIGINT, None)  # Python's default raises KeyboardInterrupt here
        elif self.old == signal.SIG_DFL: signal.raise_signal(signal.SIGINT)

def run_all(*fs):
    "Call each of `fs` with Ctrl-C held (`sigint_held`, `_each`): every part of a restore runs whatever an earlier one raised"
    with sigint_held(): _each(lambda g: g(), ((g,) for g in fs))

def _modules(learn) -> list:
    "The modules of the model and of a loss that is a module (a learnable temperature or log-variance), each once"
    return list({id(m): m for o in (learn.model, learn.loss_func) if isinstance(o, nn.Module) for m in o.modules()}.values())

_COUNTERS = ('epoch', 'n_epoch', 'iter', 'n_iter', 'train_iter', 'pct_train')  # where the last fit stood: a `start_epoch` reads it

def _put_back(pairs):
    "Each container of `pairs` (a dict or set) given back the contents of its copy, in place"
    for d,saved in pairs: d.clear(); d.update(saved)

class LearnerSnapshot:
    ("In-memory copy of all a fit changes on `learn`: weights, buffers, grads, `requires_grad`, train/eval modes, the modules' children "
     "and plain attributes (a wrapped `forward`, a counter), the optimizer (state, hypers, frozen groups), `lr`, the RNGs and the "
     "loaders' orders. After an exception (`restore(swapped=True)`, a `with` block left by one) also what callbacks swap for a fit "
     "and put back only when it ends well: the `loss_func` (fastai's `MixUp`), `model` and `dls.loaders` objects (its "
     "`DistributedTrainer`) and the modules' hooks (`ActivationStats`). A fit that ends well keeps those as its callbacks left them "
     "(a model a callback wrapped on purpose stays wrapped), but for the hooks of a module whose structure comes back")
    def __init__(self, learn:Learner):  # The learner to copy; `restore()` puts it back
        self.learn = learn
        mods = _modules(learn)  # and below, any other parameter the optimizers train
        lazy = next((f"{type(m).__name__}.{n}" for m in mods for kind in ('_parameters', '_buffers') for n,t in getattr(m, kind).items()
                     if isinstance(t, nn.parameter.UninitializedTensorMixin)), None)
        if lazy is not None:  # torch cannot copy it, and the search's first batch would size it
            raise ValueError(f"the model has a lazy module whose parameters are not sized yet ({lazy}): run one batch through it first, "
                             f"e.g. `learn.model(learn.dls.one_batch()[0])`, before lr_find or lr='auto'")
        # each module's own lists of parameters, buffers and children: a buffer a search registers, or fills where it was None, is
        # taken back, and so is a child a fit replaced and nothing put back (fastai's `DistributedTrainer` converts every BatchNorm
        # to a new `SyncBatchNorm` sharing its tensors, at every fit: the modes and hooks of the model's own modules were lost);
        # its plain attributes, by reference (a search replaces them: a step counter, a `Dropout.p` a callback anneals, the `weight`
        # a hook computes for torch's old `weight_norm`/`spectral_norm` and `prune`, the `forward` accelerate wraps in autocast at
        # every fit, nested to a RecursionError by the searches' dozens of fits); the contents of its hook lists (`_forward_hooks`
        # and its `_with_kwargs`, `_always_called` marks) and of its set of non-persistent buffers, which are changed in place; and
        # its class (torch's `register_parametrization` swaps it for a `Parametrized...` one of its own)
        self.mods = [(m, [(d, dict(d)) for d in (m._parameters, m._buffers, m._modules)], dict(vars(m)),
                      [(d, d.copy()) for k,d in vars(m).items() if ('hooks' in k and isinstance(d, dict))
                       or (k == '_non_persistent_buffers_set' and isinstance(d, set))], type(m)) for m in mods]
        self.hooks = [h for m,slots,plain,kept,cls in self.mods for h in kept]  # kept after a first restore, for `restore(swapped=True)`
        clones = {}  # a tensor shared by two modules is copied once
        self.tensors = [(m, kind, n, t, clones.setdefault(id(t), t.detach().clone()))
                        for m in mods for kind in ('_parameters', '_buffers') for n,t in getattr(m, kind).items() if t is not None]
        self.opts = _optimizers(learn)
        params = {id(p): p for p in [*(t for m,kind,n,t,c in self.tensors if kind == '_parameters'), *_opt_params(self.opts)]}
        self.tensors += [(None, None, None, p, p.detach().clone()) for i,p in params.items() if i not in clones]
        # a param's own attributes too: the mark `freeze_to` leaves (`optimizer.FROZEN`), what other libraries set on it
        self.params = [(p, p.requires_grad, None if p.grad is None else p.grad.detach().clone(), dict(vars(p))) for p in params.values()]
        self.modes = [(m, m.training) for m in mods]  # read, not taken from `plain`: a scripted module keeps its mode in C++
        self.attrs = {k: getattr(learn, k) for k in ('opt', 'lr', 'training') if hasattr(learn, k)}
        self.attrs.update({k: vars(learn)[k] for k in _COUNTERS if k in vars(learn)})
        self.absent = [k for k in _COUNTERS if k not in vars(learn)]  # a learner that never fitted has none: it gets none back
        self.swapped = {k: getattr(learn, k) for k in ('loss_func', 'model') if hasattr(learn, k)}
        self.loaders = (learn.dls, learn.dls.loaders) if isinstance(getattr(learn.dls, 'loaders', None), list) else None
        memo = {id(o): o for o in self.opts + [p[0] for p in self.params]}
        self.opt_states = [_snap_opt(o, memo) for o in self.opts]
        self.rng = dict(python=random.getstate(), numpy=np.random.get_state(), torch=torch.get_rng_state(),
                        cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)
        dls = _dataloaders(learn.dls)
        self.dl_rngs = [(dl, 'rng', copy.deepcopy(vars(dl)['rng'])) for dl in dls if isinstance(vars(dl).get('rng'), random.Random)]
        self.dl_rngs += [(g, 'state', _rng_state(g)) for g in _generators(dls)]
        self.orders,self._size = _orders(dls),None  # `_size`: the copies' norm, once `moved()` needs it
        self.restored,self.swaps_restored = False,False

    def restore(self, swapped:bool=False):
        ("Put everything back, bit for bit, once; with `swapped` (after an exception: callbacks' `after_fit` may not have run) also "
         "the objects and hooks callbacks swap for a fit, even after a first `restore()`")
        with sigint_held():  # from the flags on: a Ctrl-C between them and the parts would skip the restore for good
            fs = []
            if swapped and not self.swaps_restored: self.swaps_restored = True; fs.append(self._restore_swaps)
            if not self.restored: self.restored = True; fs += [self._restore_tensors, self._restore_params, self._restore_rest]
            try: run_all(*fs)
            finally:
                if self.restored: self.tensors = self.params = self.opt_states = self.mods = self.modes = None  # free the copies

    def _restore_swaps(self):
        for k,v in self.swapped.items(): setattr(self.learn, k, v)
        if self.loaders is not None: self.loaders[0].loaders = self.loaders[1]
        _put_back(self.hooks)  # hooks put on for the fit (`ActivationStats`'), which `after_fit` takes off

    def _restore_tensors(self):
        for m,slots,plain,kept,cls in self.mods:
            if type(m) is not cls: m.__class__ = cls
            # a fit that swapped a tensor or child out gets the original object back; one it added is dropped (compared as sets: a
            # scripted module's lists are views that give their keys as a list, and its structure cannot change)
            changed = [(d, saved) for d,saved in slots if set(d.keys()) != saved.keys() or any(d[k] is not v for k,v in saved.items())]
            _put_back(changed)
            # the plain attributes as they were: one the fit added goes (`prune`'s computed `weight` would hide the parameter)
            for k in set(vars(m)) - plain.keys(): del vars(m)[k]
            vars(m).update(plain)
            # a module whose structure comes back gets its hooks back too: a callback that pruned it in `before_fit`, for good, left
            # a hook that needs the tensors just taken back (one that changes no structure keeps its hooks, as after its own fit)
            if changed: _put_back(kept)
        with torch.no_grad():
            _each(self._restore_tensor, self.tensors)

    @staticmethod
    def _restore_tensor(m, kind, n, t, c):
        # a callback that converts the model for the fit (fastai's `ModelToHalf`) and never ran its undo (an interrupt): the
        # storage itself comes back (copying into fp16 rounded the weights, then the fp32 grads were refused). On the device
        # the fit put it on, as fastai's: its `TrainEvalCallback` moves the model to the loaders' device for every fit
        if (t.dtype, t.shape) != (c.dtype, c.shape): t.data = c.to(t.device)
        else: t.copy_(c)

    def _restore_params(self):
        _each(self._restore_param, self.params)

    @staticmethod
    def _restore_param(p, rg, g, d):
        p.requires_grad_(rg); p.grad = None if g is None else g.to(p.device); vars(p).clear(); vars(p).update(d)

    def _restore_rest(self):
        for m,training in self.modes: m.training = training
        for o,saved in zip(self.opts, self.opt_states): _restore_opt(o, saved)
        for k,v in self.attrs.items(): setattr(self.learn, k, v)
        for k in self.absent: vars(self.learn).pop(k, None)
        random.setstate(self.rng['python']); np.random.set_state(self.rng['numpy']); torch.set_rng_state(self.rng['torch'])
        if self.rng['cuda'] is not None: torch.cuda.set_rng_state_all(self.rng['cuda'])
        for dl,attr,st in self.dl_rngs:
            if attr == 'rng': dl.rng = st  # fastai's `DataLoader.randomize` replaces `rng` at every epoch
            else: _set_rng_state(dl, st)  # a sampler's generator
        for dl,order in self.orders: _set_order(dl, order)

    def moved(self) -> float:
        "How far the trained parameters moved since the copy, relative to their size (L2 over all of them); 0 once restored"
        if self.tensors is None: return 0.
        # a copy taken before the fit moved its tensor to the loaders' device (fastai's `TrainEvalCallback`) is compared there
        ps = [(t, c) for m,kind,n,t,c in self.tensors if kind in ('_parameters', None) and t.is_floating_point() and t.shape == c.shape]
        def total(f):  # one sum per device, one host sync each; a copy moved one tensor at a time
            per = {}
            for t,c in ps: per[t.device] = per.get(t.device, 0.) + f(t, c if c.device == t.device else c.to(t.device))
            return sum(float(v) for v in per.values())
        with torch.no_grad():
            d = total(lambda t,c: (t.detach().float() - c.float()).pow(2).sum())
            if self._size is None: self._size = total(lambda t,c: c.float().pow(2).sum())  # the copies stay as they are
        return math.sqrt(d/self._size) if self._size > 0 else (math.inf if d > 0 else 0.)

    def __enter__(self): return self
    def __exit__(self, exc_type, *exc): self.restore(swapped=exc_type is not None)

# ---------------------------------------------------------------- callbacks' state
def _plain_copy(v, memo:dict):
    ("A copy of `v`'s plain state: tensors, numpy arrays and the lists, tuples, sets and dicts (`L`, `defaultdict`... too) that hold "
     "them, copied through; numbers and strings as they are; and every other object shared, by identity, as `memo`'s are (a module, "
     "a loader or dataset, fastai's `Hooks` still on the model, a file)")
    if id(v) in memo: return memo[id(v)]
    if isinstance(v, torch.Tensor): res = copy.deepcopy(v) if v.is_leaf else v.detach().clone()
    elif isinstance(v, np.ndarray): res = v.copy()
    elif isinstance(v, (list, dict, L)):
        res = memo[id(v)] = copy.copy(v)  # the same type (a `defaultdict` keeps its factory); filled below, cycles included
        if isinstance(v, dict): res.clear(); res.update({k: _plain_copy(x, memo) for k,x in v.items()})
        elif isinstance(v, L): res.items = [_plain_copy(x, memo) for x in v.items]
        else: res[:] = [_plain_copy(x, memo) for x in v]
    elif isinstance(v, (tuple, set, frozenset)) and type(v) in (tuple, set, frozenset): res = type(v)(_plain_copy(x, memo) for x in v)
    elif isinstance(v, tuple) and hasattr(v, '_fields'): res = type(v)(*(_plain_copy(x, memo) for x in v))  # a namedtuple
    else: res = v
    memo[id(v)] = res
    return res

def _holds_tensor(v, shared:dict) -> bool:
    "Whether `v` (a `_plain_copy`) is or holds, in its lists, tuples, sets and dicts, a tensor or array of its own (not one of `shared`)"
    if isinstance(v, (torch.Tensor, np.ndarray)): return id(v) not in shared
    if isinstance(v, dict): v = v.values()
    elif isinstance(v, L): v = v.items
    elif not isinstance(v, (list, tuple, set, frozenset)): return False
    return any(_holds_tensor(x, shared) for x in v)

def _held_modules(objs, skip:set) -> list:
    ("The modules `objs` hold (callbacks' attribute values, and the lists, tuples, sets and dicts that keep them), each once; `skip`: ids "
     "left out (the learner's own)")
    res,seen,todo = {},set(),list(objs)
    while todo:
        v = todo.pop()
        if id(v) in seen: continue
        seen.add(id(v))
        if isinstance(v, nn.Module):
            if id(v) not in skip: res[id(v)] = v
        elif isinstance(v, dict): todo += list(v.values())
        elif isinstance(v, L): todo += list(v.items)
        elif isinstance(v, (list, tuple, set, frozenset)): todo += list(v)
    return list(res.values())

class _CallbacksKept:
    ("The plain state of the learner's callbacks and of `cbs` (a fit's own), copied (`_plain_copy`): a tracker's `best` and `run` "
     "flag, a weight EMA kept in tensors, `ActivationStats`' history; and the weights, buffers and modes of every module a callback "
     "holds (an EMA model, a distillation teacher: a copy each, in host memory). `restore()` (also on leaving the block) puts it "
     "back, as fresh copies each time; `restore_held()` only the modules and tensors they hold. The learner's own tensors and "
     "every other object a callback holds stay shared: a dataset, live hooks, a file. `skip`: callback classes left alone (the "
     "`Recorder`, whose history `_RecorderKept` handles)")
    def __init__(self, learn:Learner, cbs=None, skip:tuple=()):
        self.cbs = list({id(c): c for c in [*learn.cbs, *L(cbs)] if isinstance(c, Callback) and not isinstance(c, skip)}.values())
        mods = _modules(learn)
        tensors = [t for m in mods for t in [*m._parameters.values(), *m._buffers.values()] if t is not None]
        self.shared = {id(o): o for o in tensors + _opt_params(_optimizers(learn))}
        # a module a callback holds (the trials and the range test feed an EMA model; a NaN sweep would poison it), not the learner's
        own = {id(m) for m in mods}
        held = [s for m in _held_modules([v for c in self.cbs for v in vars(c).values()], own) for s in m.modules() if id(s) not in own]
        held = list({id(m): m for m in held}.values())
        held_ts = {id(t): t for m in held for t in [*m._parameters.values(), *m._buffers.values()] if t is not None}
        # meta and inference tensors hold nothing a search can change (an inference tensor refuses in-place writes outside its mode)
        ts = [t for i,t in held_ts.items() if i not in self.shared and not (t.is_meta or t.is_inference())]
        # in host memory: a frozen teacher on the GPU costs no device memory. Written back whole at every restore: an EMA updated
        # through `.data` (timm's, many hand-written ones) leaves torch's version counter as it was
        self.held = [(t, t.detach().to('cpu', copy=True)) for t in ts]
        self.shared.update(held_ts)  # put back in place, so kept by identity: a callback's list of an EMA model's params stays live
        memo = dict(self.shared)  # one memo: references shared between callbacks stay shared
        self.saved = [(c, {k: _plain_copy(v, memo) for k,v in vars(c).items()}) for c in self.cbs]
        self.held_modes = [(m, m.training) for m in held]
        # a callback's own random generator (noise, augmentation, mixing drawn from it): its state, put back in place (`_plain_copy`
        # shares it), so every trial draws the same numbers and the learner comes back with the stream where it was
        gens = {id(g): g for c in self.cbs for g in vars(c).values() if isinstance(g, _RNGS) and not isinstance(g, random.SystemRandom)}
        self.rngs = [(g, _rng_state(g)) for g in gens.values()]
    def restore_held(self):
        ("The modules and tensors the callbacks hold, as they were: an attribute a search set to another module (an EMA model made in "
         "`before_fit`) back to what it held, and their weights, buffers and modes; an attribute holding tensors (an EMA kept as a "
         "list of them) as a fresh copy of what it held; and the callbacks' own random generators")
        memo = dict(self.shared)
        for c,d in self.saved:
            for k,v in list(vars(c).items()):
                if isinstance(v, nn.Module) and not (k in d and d[k] is v):
                    if k in d: setattr(c, k, d[k])
                    else: delattr(c, k)
            for k,v in d.items():
                if _holds_tensor(v, self.shared): setattr(c, k, _plain_copy(v, memo))
        self._restore_held_modules()
    def _restore_held_modules(self):
        with torch.no_grad():
            for t,c in self.held: t.copy_(c)
        for m,training in self.held_modes: m.training = training
        for g,st in self.rngs: _set_rng_state(g, st)
    def restore(self):
        memo = dict(self.shared)
        for c,d in self.saved:
            d = {k: _plain_copy(v, memo) for k,v in d.items()}
            vars(c).clear(); vars(c).update(d)
        self._restore_held_modules()
    def __enter__(self): return self
    def __exit__(self, *exc): self.restore()

# ---------------------------------------------------------------- what a search leaves aside or puts back besides the snapshot
def _is_csv(cb) -> bool: return isinstance(cb, CSVLogger) or (isinstance(cb, type) and issubclass(cb, CSVLogger))

class _csv_loggers_aside:
    ("Take the learner's `CSVLogger`s off its callbacks for the block, then give back its callback list as it was: the same objects "
     "in the same order. fastai's `CSVLogger` does not stand aside for `lr_finder`: without this a range test would overwrite the last "
     "fit's log, or append its sweep to it. And fastai's `no_bar` puts back a new `ProgressCallback` at the end of the list: a "
     "`CSVLogger` of the same `order` then comes before it, and the bar's logger, which does not chain, leaves every later log empty")
    def __init__(self, learn:Learner): self.learn = learn
    def __enter__(self):
        self.cbs = list(self.learn.cbs)
        for c in self.cbs:
            if _is_csv(c): self.learn.remove_cb(c)
    def __exit__(self, *exc):
        kept = {id(c) for c in self.cbs}
        for c in list(self.learn.cbs):
            if id(c) not in kept: self.learn.remove_cb(c)  # what the block added: `no_bar`'s new `ProgressCallback`
        self.learn.cbs = L(self.cbs)
        for c in self.cbs: c.learn = self.learn; setattr(self.learn, c.name, c)  # as `add_cb` sets them: `learn.progress` is ours again

class _RecorderKept:
    ("The `Recorder`'s history of the last fit (`values`, `losses`, `lrs`, `iters`, `hps`, `metric_names`, `log`, its loss "
     "averages) and the learner's `final_record` and `smooth_loss`, put back after the block: what `plot_loss`, `plot_sched` "
     "and `plot_metrics` read. Each fit gives the Recorder new lists, so keeping the old ones is enough")
    attrs = ('lrs', 'iters', 'losses', 'values', 'hps', 'metric_names', 'log')
    def __init__(self, learn:Learner): self.learn = learn
    def __enter__(self):
        rec = getattr(self.learn, 'recorder', None)
        self.rec = {k: getattr(rec, k) for k in self.attrs if hasattr(rec, k)} if rec is not None else None
        if rec is not None: self.avgs = {k: copy.copy(vars(getattr(rec, k))) for k in ('loss', 'smooth_loss') if hasattr(rec, k)}
        self.learner = {k: getattr(self.learn, k) for k in ('final_record', 'smooth_loss') if hasattr(self.learn, k)}
    def __exit__(self, *exc):
        rec = getattr(self.learn, 'recorder', None)
        if self.rec is not None and rec is not None:
            for k in self.attrs:
                if k in self.rec: setattr(rec, k, self.rec[k])
                elif hasattr(rec, k): delattr(rec, k)
            for k,d in self.avgs.items(): vars(getattr(rec, k)).clear(); vars(getattr(rec, k)).update(d)
        for k in ('final_record', 'smooth_loss'):
            if k in self.learner: setattr(self.learn, k, self.learner[k])
            elif hasattr(self.learn, k): delattr(self.learn, k)
