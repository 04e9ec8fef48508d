"""`linear`: the plain MLP layer (nn.Linear), parameters in*out + out."""
import torch.nn as nn

from . import register


@register("linear")
class Linear(nn.Linear):
    pass
