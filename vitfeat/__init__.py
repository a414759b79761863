"""vitfeat: staging vitiligo from paired clinical and Wood's-lamp photographs."""

__version__ = "0.1.0"
