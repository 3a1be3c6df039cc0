"""The paper's loss in torch: mean squared RGBA error against the target, per
sample. Training, QAT, the quantisation evaluation and the int8-vs-float bench
all score with this one function (cellsim.target_images.rgba_loss is its numpy
twin for the simulator, which must not import torch)."""
import torch


def per_sample_loss(rgba: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, *S) RGBA samples against a (*S) target -> (B,) mean squared errors,
    in whichever layout the caller keeps (channels first or last)."""
    return (rgba - target).square().flatten(1).mean(dim=1)
