"""turbopump: batches from the turbopump daemon as NumPy arrays or PyTorch tensors.

    from turbopump import Loader
    loader = Loader("photos.tp", batch_size=256, transform="rrc224", seed=1)
    for epoch in range(10):
        loader.set_epoch(epoch)
        for batch in loader:
            images, labels = batch["jpg"], batch["cls"]   # torch.Tensor, zero-copy
            ...

Pipelines are written with torchvision's names (turbopump.transforms) or as description
text, and run in the daemon:

    from turbopump import transforms as T
    loader = Loader("photos.tp", batch_size=256, seed=1,
                    transform=[T.RandomResizedCrop(160, scale=(0.35, 1)),
                               T.RandomHorizontalFlip(), T.ToDtype("float16")])
    loader.set_transforms([T.RandomResizedCrop(192), T.RandomHorizontalFlip()])  # next epoch

See Loader for the options. Arrays are read-only views of the daemon's shared-memory
ring and keep their ring slot until they are gone, so they never change under you;
keeping many batches alive stalls the stream (an error says so), copy=True gives owned
arrays instead.

turbopump.Writer writes datasets from Python samples (dicts of bytes, numbers, NumPy
arrays, PIL images), published atomically like `turbopump pack`'s; turbopump.pack_tokens
writes token datasets from tokenized documents (any tokenizer's ids):

    turbopump.pack_tokens((tok.encode(t).ids for t in texts), "corpus", vocab_size=50257)
"""
from ._turbopump import Error, version as __version__
from .loader import Loader
from .writer import Writer
from .tokens import pack_tokens
from . import transforms

__all__ = ["Loader", "Writer", "pack_tokens", "Error", "transforms", "__version__"]
