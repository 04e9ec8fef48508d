"""tunekae: honest, parameter-matched comparisons of autoencoder families."""
__version__ = "0.1.0"
