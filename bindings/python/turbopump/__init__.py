"""turbopump: batches from the turbopump daemon as NumPy arrays or PyTorch tensors.

    from turbopump import Loader
    loader = Loader("photos.tp", batch_size=256, transform="rrc224", seed=1)
    for epoch in range(10):
        loader.set_epoch(epoch)
        for batch in loader:
            images, labels = batch["jpg"], batch["cls"]   # torch.Tensor, zero-copy
            ...

See Loader for the options. Arrays are read-only views of the daemon's shared-memory
ring and keep their ring slot until they are gone, so they never change under you;
keeping many batches alive stalls the stream (an error says so), copy=True gives owned
arrays instead.
"""
from ._turbopump import Error, version as __version__
from .loader import Loader

__all__ = ["Loader", "Error", "__version__"]
