"""A :class:`~securefl.Trainer` over any PyTorch module (the ``torch`` extra: ``pip install securefl[torch]``).

:class:`TorchTrainer` is one party's training loop for a ``torch.nn.Module``
with the user's own loss and optimiser.  Nothing in it names a scheme: the
same trainer runs under ``plain``, ``paillier``, ``ckks`` or ``fe``.

This module is the only one in securefl that imports torch, and nothing
imports it for you: ``import securefl`` stays free of torch.  Import it as
``from securefl.ml.torch_trainer import TorchTrainer`` (the module is not named
``torch`` so that ``from securefl.ml import torch`` can never shadow PyTorch).

The flat vector.  The model travels as one float64 vector: every parameter in
``module.parameters()`` order (``torch.nn.utils.parameters_to_vector``), then
every floating-point buffer in ``module.named_buffers()`` order (BatchNorm's
running mean and variance), so the released model is the same model at every
party.  Integer buffers (BatchNorm's ``num_batches_tracked``) stay local.  The
module computes in its own dtype (float32 by default): float32 -> float64 ->
float32 is exact, so :meth:`TorchTrainer.initial_parameters` followed by
loading it back restores the module bit for bit; a fused vector is rounded to
the module's dtype when loaded.

The optimiser.  By default the optimiser is **rebuilt every round** from
``optimizer(module.parameters())``: a party is then stateless between rounds
as in FedAvg, :meth:`TorchTrainer.fit` depends only on the global parameters
and the round, and a party that sat a round out (dropped, slow) resumes with no
stale state.  ``keep_optimizer_state=True`` keeps one optimiser for the whole
run instead (momentum and Adam's moments carry over, measured against the
previous global model; an optimiser's state never leaves the party).

Randomness.  Batches are shuffled with a ``torch.Generator`` seeded from
``seed`` and the round, so a round's batches do not depend on the rounds the
party sat out.  This is experiment design, not a secret.  Layers that draw
random numbers themselves (dropout) use torch's global generator.

Evaluation returns ``accuracy`` (for outputs of shape ``(n, classes)`` and
integer labels: the arg-max), the mean ``loss`` (the loss function is assumed
to average over a batch, torch's default reduction) and ``num_examples``, on
the party's own held-out rows.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TypeAlias

import numpy as np
import torch
from torch import nn

from securefl.errors import DataError, UsageError
from securefl.ml.trainer import NUM_EXAMPLES

ArrayLike: TypeAlias = "np.ndarray | torch.Tensor"
"""Rows given to a :class:`TorchTrainer`: numpy arrays or tensors."""
LossFn: TypeAlias = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``loss(outputs, targets)``: a scalar tensor, e.g. ``torch.nn.CrossEntropyLoss()``."""
OptimizerFactory: TypeAlias = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
"""``optimizer(parameters)``: e.g. ``lambda p: torch.optim.Adam(p, lr=1e-3)``."""

_EVAL_BATCH = 1024  # rows per forward pass when evaluating (no gradients kept)
_SEED_STRIDE = 1_000_003  # a prime: (seed, round) pairs map to distinct generator seeds for any realistic run


class TorchTrainer:
    """One party's :class:`~securefl.Trainer` over ``module`` (see the module docstring).

    ``X_train``/``y_train`` are the rows the party trains on (its fusion weight
    is their count); ``X_test``/``y_test`` the held-out rows it evaluates the
    released model on.  Inputs are converted to the module's dtype and device;
    integer labels to ``int64``, floating targets to the module's dtype.
    ``local_epochs`` passes over the training rows per round, in batches of
    ``batch_size`` (the last may be smaller).
    """

    def __init__(self, module: nn.Module, loss: LossFn, optimizer: OptimizerFactory, *,
                 X_train: ArrayLike, y_train: ArrayLike, X_test: ArrayLike, y_test: ArrayLike,
                 local_epochs: int = 1, batch_size: int = 32, seed: int = 0,
                 keep_optimizer_state: bool = False) -> None:
        if not isinstance(module, nn.Module):
            raise UsageError(f"module must be a torch.nn.Module, got {type(module).__name__}")
        if not callable(loss) or not callable(optimizer):
            raise UsageError("loss must be a callable loss(outputs, targets) (e.g. torch.nn.CrossEntropyLoss()) and "
                             "optimizer a factory of parameters (e.g. lambda p: torch.optim.Adam(p, lr=1e-3))")
        for name, value, low in (("local_epochs", local_epochs, 1), ("batch_size", batch_size, 1),
                                 ("seed", seed, 0)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise UsageError(f"{name} must be an integer, got {value!r}")
            if value < low:
                raise ValueError(f"{name} must be at least {low}, got {value}")
        first = next(iter(module.parameters()), None)
        if first is None:
            raise UsageError(f"the {type(module).__name__} has no parameters to train")
        self.module, self.loss, self.optimizer_factory = module, loss, optimizer
        self.local_epochs, self.batch_size, self.seed = local_epochs, batch_size, seed
        self.keep_optimizer_state = keep_optimizer_state
        self.dtype, self.device = first.dtype, first.device
        self.X_train, self.y_train = self._rows(X_train, y_train, "training")
        self.X_test, self.y_test = self._rows(X_test, y_test, "held-out")
        self._buffers = [b for _, b in module.named_buffers() if torch.is_floating_point(b)]
        self._optimizer: torch.optim.Optimizer | None = None
        # the transport asks a party one thing at a time; the lock keeps load-and-use atomic if a caller does not
        self._lock = threading.Lock()

    # --- the Trainer protocol -----------------------------------------------------------
    def initial_parameters(self) -> np.ndarray:
        """The model's starting parameters as one flat vector."""
        with self._lock:
            return self._vector()

    def fit(self, parameters: np.ndarray, round: int) -> tuple[np.ndarray, float]:
        """Train locally from ``parameters`` for round ``round``; the new flat vector and this party's weight."""
        with self._lock:
            self._load(parameters)
            optimizer = self._optimizer_for_round()
            generator = torch.Generator().manual_seed(self.seed * _SEED_STRIDE + round)
            n = self.X_train.shape[0]
            self.module.train()
            for _ in range(self.local_epochs):
                order = torch.randperm(n, generator=generator).to(self.device)
                for start in range(0, n, self.batch_size):
                    batch = order[start:start + self.batch_size]
                    optimizer.zero_grad(set_to_none=True)
                    loss = self.loss(self.module(self.X_train[batch]), self.y_train[batch])
                    torch.autograd.backward(loss)  # Tensor.backward carries no annotations
                    optimizer.step()
            return self._vector(), float(n)

    def evaluate(self, parameters: np.ndarray) -> Mapping[str, float]:
        """The metrics of ``parameters`` on this party's held-out rows."""
        with self._lock:
            self._load(parameters)
            n = self.X_test.shape[0]
            loss_sum, correct, classified = 0.0, 0, True
            self.module.eval()
            with torch.no_grad():
                for start in range(0, n, _EVAL_BATCH):
                    X, y = self.X_test[start:start + _EVAL_BATCH], self.y_test[start:start + _EVAL_BATCH]
                    out = self.module(X)
                    loss_sum += float(self.loss(out, y)) * X.shape[0]
                    if classified and out.ndim == 2 and out.shape[1] > 1 and not torch.is_floating_point(y):
                        correct += int((out.argmax(dim=1) == y).sum())
                    else:
                        classified = False
            metrics = {"accuracy": correct / n} if classified else {}
            return {**metrics, "loss": loss_sum / n, NUM_EXAMPLES: float(n)}

    # --- the flat vector ----------------------------------------------------------------
    @property
    def num_parameters(self) -> int:
        """Length of the flat vector: parameters and floating-point buffers."""
        return int(sum(p.numel() for p in self.module.parameters()) + sum(b.numel() for b in self._buffers))

    def _vector(self) -> np.ndarray:
        with torch.no_grad():
            parts = [nn.utils.parameters_to_vector(self.module.parameters())]
            parts += [b.reshape(-1) for b in self._buffers]
            flat = torch.cat([p.detach().to("cpu", torch.float64) for p in parts])
        vector: np.ndarray = flat.numpy().copy()
        return vector

    def _load(self, parameters: np.ndarray) -> None:
        vector = np.asarray(parameters, dtype=np.float64)
        if vector.ndim != 1 or vector.size != self.num_parameters:
            raise ValueError(f"expected a flat vector of {self.num_parameters} values for this "
                             f"{type(self.module).__name__}, got shape {vector.shape}")
        flat = torch.from_numpy(vector)
        n_params = sum(p.numel() for p in self.module.parameters())
        with torch.no_grad():
            nn.utils.vector_to_parameters(flat[:n_params].to(self.device, self.dtype), self.module.parameters())
            offset = n_params
            for b in self._buffers:
                b.copy_(flat[offset:offset + b.numel()].view_as(b))
                offset += b.numel()

    def _optimizer_for_round(self) -> torch.optim.Optimizer:
        # vector_to_parameters rebinds each parameter's data, never the Parameter objects: a kept
        # optimiser still points at the module's parameters
        if self._optimizer is None or not self.keep_optimizer_state:
            self._optimizer = self.optimizer_factory(self.module.parameters())
        return self._optimizer

    # --- the party's rows ---------------------------------------------------------------
    def _rows(self, X: ArrayLike, y: ArrayLike, what: str) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise UsageError(f"the {what} rows must be numpy arrays or tensors ({exc})") from None
        if Xt.ndim == 0 or yt.ndim == 0 or Xt.shape[0] != yt.shape[0]:
            raise DataError(f"the {what} rows: X has shape {tuple(Xt.shape)} and y {tuple(yt.shape)}; give one "
                            "target per row (the first dimension counts the rows)")
        if Xt.shape[0] == 0:
            raise DataError(f"the party has no {what} rows; give it at least one")
        Xt = Xt.to(self.device, self.dtype)
        if torch.is_floating_point(yt):
            yt = yt.to(self.device, self.dtype)
        elif yt.dtype == torch.bool or yt.is_complex():
            raise DataError(f"the {what} targets have dtype {yt.dtype}; use integer class labels or floats")
        else:
            yt = yt.to(self.device, torch.int64)
        return Xt, yt


__all__ = ["TorchTrainer"]
