"The public API, fastai convention: `from fastai_anneal.all import *` (importing it applies the `Learner` patches)."
from .schedules import *
from .registry import *
from .fit import *
from .snapshot import *
from .lr_finder import *
from .tune import *
from .metrics import *
from .plateau import *
from .optimizer import *
from .data import *
from .plots import *
