"""Performance test: demokit.geometry.pairwise_sq_dists on 1024 points in 64 dimensions (torch)."""

import torch

from demokit.geometry import pairwise_sq_dists


def setup():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    generator = torch.Generator().manual_seed(0)
    return torch.randn(1024, 64, generator=generator).to(device)


def experiment(data):
    return pairwise_sq_dists(data)


def store_result(result, path):
    torch.save(result.detach().cpu(), path)


def load_result(path):
    return torch.load(path)


def check_equivalence(reference, current):
    current = current.detach().cpu()
    assert reference.shape == current.shape, f"shape {tuple(current.shape)} != {tuple(reference.shape)}"
    assert torch.allclose(reference, current, rtol=1e-4, atol=1e-2), (
        f"max abs difference {(reference - current).abs().max().item():.3g}"
    )
