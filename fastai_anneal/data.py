"Embedded datasets and their reference models: MNIST-1D (generated offline), scikit-learn digits, image folders."
from __future__ import annotations
import random, re
from functools import lru_cache
from pathlib import Path
import numpy as np, torch
from torch import nn
from fastai.data.core import DataLoaders, Datasets
from fastai.data.transforms import ItemTransform, ItemGetter
from fastcore.foundation import is_indexer
from fastai.torch_core import default_device
from ._checks import check_int, check_float, check_torch_device

__all__ = ['mnist1d_arrays', 'mnist1d_dls', 'mnist1d_cnn', 'digits_dls', 'digits_cnn', 'check_image_folder', 'image_folder_dls',
           'image_folder_resnet', 'DATASETS', 'check_data', 'get_data']

# ---------------------------------------------------------------- MNIST-1D
SEED_MAX = 2**32 - 1  # numpy's legacy seeding, which the generator uses
def mnist1d_arrays(seed:int=42,  # Seed of the generator (42 is the published dataset)
) -> tuple:
    ("MNIST-1D (Greydanus 2020) generated locally with the `mnist1d` package: `(x, y, x_test, y_test)`, 4000/1000 samples of length "
     "40; each call gets its own copies of the arrays (generated once per seed)")
    return tuple(a.copy() for a in _mnist1d_arrays(check_int('seed', seed, 0, SEED_MAX)))

@lru_cache(maxsize=2)
def _mnist1d_arrays(seed:int) -> tuple:
    from mnist1d.data import make_dataset, get_dataset_args  # never `get_dataset`: it downloads
    args = get_dataset_args()
    args.seed = seed
    state = random.getstate(),np.random.get_state()
    try: d = make_dataset(args)
    finally: random.setstate(state[0]); np.random.set_state(state[1])  # it reseeds the global RNGs; a cache hit would not
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)
    return f32(d['x']),d['y'].astype(np.int64),f32(d['x_test']),d['y_test'].astype(np.int64)

class _Items(Datasets):
    ("A `Datasets` of `(x, y)` tensors that a loader reads as they are stored: its transforms (`_Input`, `ItemGetter(1)`) give an item "
     "back unchanged, and running them per item made an epoch 4-5x slower. fastai's `test_dl`, `predict` and `export` still get "
     "a `Datasets`, whose transforms take an input alone")
    def __getitem__(self, it): return self.tls[0].items[it] if is_indexer(it) else super().__getitem__(it)

class _Input(ItemTransform):
    "The input of a dataset's `(x, y)`, or an `x` alone: `learn.predict(x)` and `test_dl([x, ...])` take the input"
    _retain = False
    def encodes(self, o): return o[0] if isinstance(o, (tuple, list)) else o  # `ItemTransform` hands a tuple over as a list

def _array_dls(x, y, x_valid, y_valid, bs, seed, device):
    ("fastai `DataLoaders` over in-memory tensors, built from a `Datasets` so that fastai's `export`/`load_learner`, `predict` and "
     "`test_dl` work; `seed` fixes the shuffling order")
    device = check_torch_device(device)
    if device is None: device = default_device()  # a plain `DataLoader` leaves `None` on the CPU; `from_dblock` picks the GPU
    items = list(zip(torch.from_numpy(np.concatenate([x, x_valid])), torch.from_numpy(np.concatenate([y, y_valid]))))
    splits = [list(range(len(x))), list(range(len(x), len(items)))]
    dsets = _Items(items, tfms=[[_Input()], [ItemGetter(1)]], splits=splits)
    dls = dsets.dataloaders(bs=bs, shuffle=True, drop_last=False, device=device, num_workers=0)  # in memory: no worker processes
    if seed is not None: dls.train.rng.seed(check_int('seed', seed, 0))
    return dls

def mnist1d_dls(bs:int=100,  # Batch size (the paper uses 100)
    seed:int|None=0,         # Seed of the training shuffle (None: unseeded)
    device:str|torch.device|None=None, # Device of the batches; fastai's `default_device()` (a GPU when present) if None
    data_seed:int=42,        # Seed of the dataset generator (42 is the published dataset)
) -> DataLoaders:
    "MNIST-1D `DataLoaders`: x of shape (bs, 1, 40) float32, y int64 labels in [0, 10)"
    bs,device = check_int('bs', bs),check_torch_device(device)
    x,y,xt,yt = mnist1d_arrays(check_int('data_seed', data_seed, 0, SEED_MAX))
    return _array_dls(x[:, None], y, xt[:, None], yt, bs, seed, device)

class _Conv1dNet(nn.Module):
    "Three strided 1-d convolutions and a linear head: the CNN of the MNIST-1D paper"
    def __init__(self, n_out=10, channels=25, linear_in=125):
        super().__init__()
        self.body = nn.Sequential(nn.Conv1d(1, channels, 5, stride=2, padding=1), nn.ReLU(),
                                  nn.Conv1d(channels, channels, 3, stride=2, padding=1), nn.ReLU(),
                                  nn.Conv1d(channels, channels, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten())
        self.head = nn.Linear(linear_in, n_out)
    def forward(self, x): return self.head(self.body(x.view(x.shape[0], 1, -1)))

def mnist1d_cnn(n_out:int=10,  # Number of classes
) -> nn.Module:
    "The MNIST-1D paper's CNN (25 channels, 3 conv layers, ~5k parameters; 94% test accuracy in the paper)"
    return _Conv1dNet(check_int('n_out', n_out))

# ---------------------------------------------------------------- scikit-learn digits
def digits_dls(bs:int=64,  # Batch size
    seed:int|None=0,       # Seed of the training shuffle (None: unseeded)
    device:str|torch.device|None=None, # Device of the batches; fastai's `default_device()` (a GPU when present) if None
    valid_pct:float=0.2,   # Fraction held out for validation (a fixed split, whatever `seed`)
) -> DataLoaders:
    "scikit-learn's bundled 8x8 `load_digits` (1797 images, 10 classes) as (bs, 1, 8, 8) float32 in [0, 1]"
    from sklearn.datasets import load_digits
    bs,valid_pct,device = check_int('bs', bs),check_float('valid_pct', valid_pct, 0., 1.),check_torch_device(device)
    d = load_digits()
    x,y = (d.images / 16.).astype(np.float32)[:, None],d.target.astype(np.int64)
    idx = np.random.RandomState(0).permutation(len(x))  # fixed split: results comparable across runs
    n_valid = int(round(len(x) * valid_pct))
    if not 0 < n_valid < len(x):
        raise ValueError(f"valid_pct must leave images on both sides of the split ({len(x)} images), got {valid_pct!r}: "
                         f"{n_valid} for validation")
    v,t = idx[:n_valid],idx[n_valid:]
    return _array_dls(x[t], y[t], x[v], y[v], bs, seed, device)

def digits_cnn(n_out:int=10,  # Number of classes
) -> nn.Module:
    "A small CNN for 8x8 digits (two conv-BN-ReLU blocks, ~20k parameters)"
    def conv(ni, nf): return nn.Sequential(nn.Conv2d(ni, nf, 3, padding=1), nn.BatchNorm2d(nf), nn.ReLU())
    return nn.Sequential(conv(1, 32), nn.MaxPool2d(2), conv(32, 64), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64*2*2, check_int('n_out',
                                                                                                                                n_out)))

# ---------------------------------------------------------------- image folders
_NAME_LABEL = r'^(.+)_\d+\.[^.]+$'  # Oxford-IIIT Pets file names: `great_pyrenees_173.jpg` -> `great_pyrenees`

def image_roots(path:Path) -> list:
    "The folders `check_image_folder` reads images from: `train/` and `valid/` when `path` holds both, else `path` itself"
    return [path/'train', path/'valid'] if (path/'train').is_dir() and (path/'valid').is_dir() else [path]

def check_image_folder(path:str|Path,  # Folder to check (`~` is expanded)
) -> tuple:
    "Layout of image folder `path`: `(path, layout, classes)`, layout 'train/valid', 'subfolders' or 'names'; raises if unusable"
    from fastai.data.transforms import get_image_files
    if not isinstance(path, (str, Path)): raise TypeError(f"path must be an image folder path, got {type(path).__name__}")
    path = Path(path).expanduser()
    if not path.is_dir(): raise ValueError(f"data folder {str(path)!r} does not exist or is not a folder")
    if len(image_roots(path)) == 2:
        layout,files = 'train/valid',get_image_files(path, folders=['train', 'valid'])
        for split in 'train','valid':
            if not get_image_files(path/split): raise ValueError(f"data folder {str(path/split)!r} holds no image files")
    else: layout,files = 'subfolders',get_image_files(path)
    if not files: raise ValueError(f"data folder {str(path)!r} holds no image files")
    if layout == 'subfolders' and all(f.parent == path for f in files):  # a flat folder: labels from file names
        names = [re.match(_NAME_LABEL, f.name) for f in files]
        if not all(names):
            raise ValueError(f"data folder {str(path)!r} holds images directly: they need class subfolders, or names like "
                             "'<class>_<number>.jpg'")
        layout,classes = 'names',sorted({m.group(1) for m in names})
    else:
        roots = image_roots(path)
        stray = [str(f.relative_to(path)) for f in files if f.parent in roots]  # fastai would label them with the folder's name
        if stray:
            more = f' and {len(stray) - 3} more' if len(stray) > 3 else ''
            raise ValueError(f"data folder {str(path)!r} holds images beside its class subfolders, which would make a class of the "
                             f"folder's name: {', '.join(stray[:3])}{more}; move them into a class subfolder or out of the folder")
        classes = sorted({f.parent.name for f in files})
        if layout == 'train/valid':  # fastai's classes are the training split's: one only in 'valid' fails as it is validated
            only = sorted(set(classes) - {f.parent.name for f in files if f.is_relative_to(path/'train')})
            if only: raise ValueError(f"data folder {str(path/'valid')!r} holds classes that {str(path/'train')!r} lacks: {only}")
    if len(classes) < 2:
        raise ValueError(f"data folder {str(path)!r} must hold at least 2 classes of images, found {len(classes)}: {classes}")
    return path,layout,classes

def _check_split(path:Path, layout:str, valid_pct:float) -> int:
    "The training images of folder `path` (`check_image_folder`'s `layout`) split at `valid_pct`; raises when a side would be empty"
    from fastai.data.transforms import get_image_files
    if layout == 'train/valid': return len(get_image_files(path/'train'))  # both sides hold images (`check_image_folder`)
    n = len(get_image_files(path))
    n_valid = int(valid_pct*n)  # `RandomSplitter`'s cut
    if n_valid == 0 or n_valid == n:
        raise ValueError(f"data folder {str(path)!r} gives {n - n_valid} training and {n_valid} validation images at valid_pct="
                         f"{valid_pct:g}; both must be > 0 (add images, or a 'train' and a 'valid' subfolder)")
    return n - n_valid

def image_folder_dls(path:str|Path,  # Folder: `train`/`valid` subfolders, class subfolders, or flat `<class>_<n>.jpg` files
    bs:int=32,               # Batch size (at most the number of training images)
    size:int=64,             # Images are resized to `size` x `size`
    seed:int|None=0,         # Seed of the random split
    valid_pct:float=0.2,     # Fraction held out when there is no `valid` subfolder
    device:str|torch.device|None=None, # Device of the batches; fastai's `default_device()` (a GPU when present) if None
) -> DataLoaders:
    "fastai `ImageDataLoaders` over `path`, normalized with ImageNet statistics; one class per subfolder (or per file-name prefix)"
    from fastai.vision.data import ImageDataLoaders, imagenet_stats
    from fastai.vision.augment import Resize
    from fastai.data.transforms import get_image_files, Normalize
    bs,size,valid_pct = check_int('bs', bs),check_int('size', size),check_float('valid_pct', valid_pct, 0., 1.)
    device = check_torch_device(device)
    path,layout,_ = check_image_folder(path)
    n_train = _check_split(path, layout, valid_pct)
    bs = min(bs, max(n_train, 1))  # fastai drops the last partial training batch: a folder smaller than `bs` would train on nothing
    kw = dict(item_tfms=Resize(size), batch_tfms=Normalize.from_stats(*imagenet_stats), bs=bs, device=device)
    if layout == 'train/valid': dls = ImageDataLoaders.from_folder(path, train='train', valid='valid', **kw)
    elif layout == 'subfolders': dls = ImageDataLoaders.from_folder(path, valid_pct=valid_pct, seed=seed, **kw)
    else: dls = ImageDataLoaders.from_name_re(path, get_image_files(path), _NAME_LABEL, valid_pct=valid_pct, seed=seed, **kw)
    if len(dls.train_ds) == 0 or len(dls.valid_ds) == 0:
        raise ValueError(f"data folder {str(path)!r} gives {len(dls.train_ds)} training and {len(dls.valid_ds)} validation images; both "
                         "must be > 0")
    return dls

def image_folder_resnet(n_out:int,  # Number of classes (`dls.c`)
) -> nn.Module:
    "torchvision's resnet18 with random weights (`weights=None`: nothing is downloaded) and `n_out` outputs"
    from torchvision.models import resnet18
    return resnet18(weights=None, num_classes=check_int('n_out', n_out))

# ---------------------------------------------------------------- one entry point for the command line
DATASETS = {'mnist1d': (mnist1d_dls, mnist1d_cnn), 'digits': (digits_dls, digits_cnn)}

def check_data(data:str|Path,  # A name in `DATASETS` or an image folder
    valid_pct:float=0.2,     # An image folder's validation share (as `image_folder_dls`): both sides of its split must hold images
) -> str|Path:
    "`data` as a name in `DATASETS` or an image folder `Path` checked by `check_image_folder` and split; raises if neither"
    if not isinstance(data, (str, Path)):
        raise TypeError(f"data must be one of {list(DATASETS)} or an image folder path, got {type(data).__name__}")
    if isinstance(data, str) and data in DATASETS: return data
    if isinstance(data, str) and not data.strip():  # `Path('')` is the current folder: its images would train as a dataset
        raise ValueError(f"data must be one of {', '.join(map(repr, DATASETS))} or an image folder, got an empty string ('.' is the "
                         "current folder)")
    path = Path(data).expanduser()
    if not path.exists() and isinstance(data, str) and not re.search(r'[/\\~.]', data):  # a bare word: a mistyped name, most likely
        raise ValueError(f"data must be one of {', '.join(map(repr, DATASETS))} or an image folder, got {data!r} (no such name or folder)")
    path,layout,_ = check_image_folder(path)
    _check_split(path, layout, check_float('valid_pct', valid_pct, 0., 1.))
    return path

def get_data(data:str|Path='mnist1d',  # 'mnist1d', 'digits' or an image folder
    seed:int|None=0,         # Seed of the shuffle (and of the split of an image folder)
    device:str|torch.device|None=None, # Device of the batches; fastai's `default_device()` (a GPU when present) if None
) -> tuple:
    "`(dls, model)` for `data`: a dataset of `DATASETS` with its model, or an image folder with `image_folder_resnet`"
    data = check_data(data)
    if isinstance(data, Path):
        dls = image_folder_dls(data, seed=seed, device=device)
        return dls,image_folder_resnet(dls.c)
    make_dls,make_model = DATASETS[data]
    return make_dls(seed=seed, device=device),make_model()
