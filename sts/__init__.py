"""STS: train and apply semantic-textual-similarity models (bi- and cross-encoders)."""
from sts.config import register_resolvers

__version__ = "0.1.0"

register_resolvers()
