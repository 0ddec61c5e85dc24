"Matplotlib figures: schedule previews from the pure builders, and comparisons of recorded runs."
from __future__ import annotations
from pathlib import Path
import numpy as np
import matplotlib.pyplot as plt
from matplotlib.backend_bases import FigureCanvasBase
from ._checks import check_int, check_pct, check_bool, check_named as _check_named, _short

__all__ = ['schedule_values', 'plot_schedule', 'plot_lrs', 'plot_history', 'plot_comparison', 'save_figure']

MAX_POINTS = 10**7  # a preview draws a value per batch in Python: beyond this it is minutes and gigabytes, not a picture

def check_size(n_epoch, n_batch, names=('n_epoch', 'n_batch')) -> tuple:
    "`(n_epoch, n_batch)` checked, their product (the values a preview draws) at most `MAX_POINTS`, or raise naming them"
    n_epoch,n_batch = check_int(names[0], n_epoch),check_int(names[1], n_batch)
    if n_epoch*n_batch > MAX_POINTS:
        raise ValueError(f"{names[0]}*{names[1]} must be <= {MAX_POINTS:,} (one value per batch is drawn), got {n_epoch}*{n_batch}")
    return n_epoch,n_batch

def schedule_values(scheds:dict,  # `{'lr': f, 'mom': g}` from a builder of `schedules.py`, f: pos in [0, 1] -> value
    n_epoch:int,             # Epochs of the run
    n_batch:int,             # Training batches per epoch
) -> dict:
    "Values of `scheds` at every training batch, at the positions fastai's `ParamScheduler` uses (`train_iter/total`)"
    n_epoch,n_batch = check_size(n_epoch, n_batch)
    if not isinstance(scheds, dict) or not scheds or not all(callable(f) for f in scheds.values()):
        raise TypeError(f"scheds must be a non-empty dict of functions pos -> value (a builder's result), got {scheds!r}")
    total = n_epoch*n_batch
    return {k: np.array([f(i/total) for i in range(total)], dtype=np.float64) for k,f in scheds.items()}

def plot_schedule(scheds:dict,  # `{'lr': f, ...}` from a builder of `schedules.py`
    n_epoch:int,             # Epochs of the run
    n_batch:int=100,         # Training batches per epoch
    title:str=None,          # Figure title
    figsize:tuple=None,      # Figure size; 5 x 3.5 inches per hyper-parameter if None
):
    "One panel per hyper-parameter of `scheds` against epochs, as `Recorder.plot_sched` draws a recorded run"
    vals = schedule_values(scheds, n_epoch, n_batch)
    fig,axs = plt.subplots(1, len(vals), figsize=figsize or (5*len(vals), 3.5), squeeze=False)
    for (k,v),ax in zip(vals.items(), axs[0]):
        ax.plot(np.arange(len(v))/n_batch, v)
        ax.set_xlabel('epoch'); ax.set_ylabel(k)
    if title: fig.suptitle(title)
    fig.tight_layout()
    return fig

def _axes(ax):
    "`ax`, or a new one"
    return plt.subplots(figsize=(6, 4))[1] if ax is None else ax

def _values(name:str, d:dict, hist:bool) -> dict:
    ("Each value of `d` as a non-empty float64 array, or raise naming it: lrs, one per batch (a column per param group, as "
     "`schedule_values` gives them for per-group lrs); or a history, seeds x epochs")
    res = {}
    what = ('a non-empty array (seeds, epochs), every seed as long' if hist else
            'a non-empty list of lrs, one per batch (or an array (batches, param groups))')
    for k,v in d.items():
        try: a = np.asarray(v, dtype=np.float64)
        except (TypeError, ValueError): raise ValueError(f"{name}[{k!r}] must be {what}, got {_short(v)}") from None
        if hist: a = np.atleast_2d(a)
        if a.ndim not in ((2,) if hist else (1, 2)) or a.size == 0: raise ValueError(f"{name}[{k!r}] must be {what}, got shape {a.shape}")
        res[k] = a
    return res

def _check_style(dashed, legend) -> tuple:
    "`dashed` (None or names) and `legend` checked"
    if dashed is not None and (isinstance(dashed, str) or not all(isinstance(n, str) for n in dashed)):
        raise TypeError(f"dashed must be None or a list of schedule names, got {dashed!r}")
    return dashed,check_bool('legend', legend)

def _style(name, dashed):
    "Dashed lines go on top, thinner, so a curve identical to a solid one stays visible"
    return dict(ls='--', lw=1.4, zorder=3) if name in (dashed or ()) else dict(ls='-', lw=2.2, zorder=2)

def plot_lrs(lrs:dict,  # `{schedule: lr at every training batch}`, all of the same run length
    n_epoch:int=None,        # Epochs of the runs: the x axis is in epochs; fraction of training if None
    ax:plt.Axes|None=None,   # Axes to draw on; a new figure if None
    log:bool=False,          # Logarithmic y axis
    dashed:list=None,        # Names drawn dashed on top (e.g. the baselines)
    legend:bool=True,        # Draw a legend on `ax`
):
    "Overlay the learning rate schedules in `lrs` on one axis"
    _check_named('lrs', lrs)
    vals,(dashed,legend),log = _values('lrs', lrs, False),_check_style(dashed, legend),check_bool('log', log)
    if n_epoch is not None: n_epoch = check_int('n_epoch', n_epoch)
    ax = _axes(ax)
    for name,v in vals.items():
        x = np.arange(len(v))/len(v)
        ax.plot(x*n_epoch if n_epoch else x, v, label=name, **_style(name, dashed))
    ax.set_xlabel('epoch' if n_epoch else 'fraction of training'); ax.set_ylabel('learning rate')
    if log: ax.set_yscale('log')
    if legend: ax.legend(fontsize='small')
    return ax

def plot_history(hist:dict,  # `{schedule: array (seeds, epochs)}` of a per-epoch metric
    ax:plt.Axes|None=None,   # Axes to draw on; a new figure if None
    ylabel:str='valid accuracy',  # Name of the metric
    dashed:list=None,        # Names drawn dashed on top (e.g. the baselines)
    legend:bool=True,        # Draw a legend on `ax`
):
    "Mean over seeds of a per-epoch metric for each schedule, with the min-max band of the seeds shaded"
    _check_named('hist', hist)
    vals,(dashed,legend) = _values('hist', hist, True),_check_style(dashed, legend)
    ax = _axes(ax)
    for name,v in vals.items():
        x = np.arange(1, v.shape[1]+1)
        one = dict(marker='o') if v.shape[1] == 1 else {}  # a line through one point draws nothing
        line, = ax.plot(x, v.mean(0), label=name, **_style(name, dashed), **one)
        if len(v) > 1: ax.fill_between(x, v.min(0), v.max(0), color=line.get_color(), alpha=0.12, lw=0)
    ax.set_xlabel('epoch'); ax.set_ylabel(ylabel)
    if legend: ax.legend(fontsize='small')
    return ax

def plot_comparison(lrs:dict,  # `{schedule: lr at every training batch}`
    hist:dict,               # `{schedule: array (seeds, epochs)}` of valid accuracy
    title:str=None,          # Figure title
    zoom:float=None,         # Accuracy panel starts at this fraction of training (the end of training is where schedules differ)
    dashed:list=None,        # Names drawn dashed on top (e.g. the baselines)
):
    "Two panels: the learning rate schedules overlaid, and valid accuracy per epoch (mean and seed band); one legend below"
    _check_named('lrs', lrs); _check_named('hist', hist)
    if list(lrs) != list(hist):  # each schedule is one colour in both panels, one legend entry
        raise ValueError(f"lrs and hist must name the same schedules in the same order, got {list(lrs)} and {list(hist)}")
    vals = _values('hist', hist, True); _values('lrs', lrs, False); _check_style(dashed, True)
    if zoom is not None: zoom = check_pct('zoom', zoom)
    n_epoch = next(iter(vals.values())).shape[1]
    fig,(a1,a2) = plt.subplots(1, 2, figsize=(11, 4.3))
    plot_lrs(lrs, n_epoch=n_epoch, ax=a1, dashed=dashed, legend=False)
    plot_history(hist, ax=a2, dashed=dashed, legend=False)
    if zoom:
        lo = int(n_epoch*zoom)
        tail = np.concatenate([v[:, lo:].ravel() for v in vals.values()])
        tail = tail[np.isfinite(tail)]  # a diverged run's NaN or inf: drawn (or not) by `plot_history`, not a limit
        if lo > 0 and tail.size: a2.set_xlim(lo+0.5, n_epoch+0.5); a2.set_ylim(tail.min() - 0.01, tail.max() + 0.01)
    a1.set_title('learning rate'); a2.set_title('validation accuracy')
    if title: fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.legend(*a1.get_legend_handles_labels(), loc='lower center', ncol=min(len(lrs), 7), fontsize='small', frameon=False)
    return fig

MAX_DPI = 2400  # `save_figure`'s finest resolution: a 10-inch figure at 10**6 dpi asks for terabytes and dies in the renderer

def save_figure(fig:plt.Figure,  # Figure to save
    path:str|Path,           # File to write (PNG when it ends in .png)
    dpi:int=100,             # Resolution
) -> Path:
    "Save `fig` to `path`, close it (no window, no leak in long loops) and return the path"
    if not hasattr(fig, 'savefig'): raise TypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    try:  # closed even when the save fails
        path,dpi = Path(path),check_int('dpi', dpi, 1, MAX_DPI)
        if path.suffix.lstrip('.').lower() not in FigureCanvasBase.get_supported_filetypes() or path.is_dir():  # any backend's
            raise ValueError(f"path must be a file name ending in an image format (.png, .pdf, .svg...), got {str(path)!r}: "
                             "matplotlib would write another file")  # `<path>.png`, while `path` is returned
        fig.savefig(path, dpi=dpi)
    finally: plt.close(fig)
    return path
