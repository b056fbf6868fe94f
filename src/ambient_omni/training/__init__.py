"""One training loop for every model kind, checkpoints (safetensors + JSON), exact resume, DDP, EMA, logging."""

from ambient_omni.training.checkpoint import build_model, load_model, register_model_kind, save_model
from ambient_omni.training.loop import NonFiniteError, Trainer, TrainConfig, TrainTask

__all__ = ["NonFiniteError", "TrainConfig", "TrainTask", "Trainer", "build_model", "load_model",
           "register_model_kind", "save_model"]
