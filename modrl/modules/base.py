"""The module interface: one unit of computation in the modular forward pass.

A module maps observation features ``(B, in_dim)`` to a latent ``(B, out_dim)``. It never knows who routes to it.
Every module can describe itself as a JSON-able :meth:`RoutedModule.spec` from which :meth:`RoutedModule.from_spec`
rebuilds it (given the library's shared layers), which is what makes single-module files loadable without pickle.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from torch import Tensor, nn

from modrl.registry import Registry

#: Activation names -> module classes (modules and routers share this table).
ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}


def make_activation(name: str) -> nn.Module:
    """A fresh activation module for ``name`` (one of :data:`ACTIVATIONS`); unknown names raise ``ValueError``."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(sorted(ACTIVATIONS))}") from None


class RoutedModule(nn.Module, ABC):
    """Base class of modules: ``(B, in_dim) -> (B, out_dim)``.

    Subclasses set :attr:`kind` (their name in :data:`MODULE_KINDS`), ``in_dim`` and ``out_dim``, and implement
    :meth:`forward` and :meth:`spec`. A module that computes with a layer owned by the library (not registered as its
    own submodule) reports it through :meth:`shared_dependencies` and overrides :meth:`from_spec` to look it up.

    Attributes:
        in_dim: Size of the input features.
        out_dim: Size of the output latent.
    """

    kind: ClassVar[str]
    in_dim: int
    out_dim: int

    @abstractmethod
    def forward(self, x: Tensor) -> Tensor:
        """Map features ``x`` ``(B, in_dim)`` float to a latent ``(B, out_dim)``."""

    @abstractmethod
    def spec(self) -> dict[str, Any]:
        """JSON-able ``{"kind": ..., **constructor kwargs}``; with the library's shared layers, enough to rebuild."""

    def shared_dependencies(self) -> dict[str, nn.Module]:
        """Library-owned layers this module computes with, by their name in ``ModuleLibrary.shared`` (default none)."""
        return {}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], *, shared: Mapping[str, nn.Module]) -> RoutedModule:
        """Rebuild a freshly initialised module from :meth:`spec` output.

        Args:
            spec: The output of :meth:`spec` (``"kind"`` must equal :attr:`kind`).
            shared: The library's shared layers by name (unused by modules without shared dependencies).

        Raises:
            ValueError: The spec is for another kind or its arguments do not fit the constructor.
        """
        kwargs = dict(spec)
        kind = kwargs.pop("kind", None)
        if kind != cls.kind:
            raise ValueError(f"spec kind {kind!r} does not match {cls.__name__} ({cls.kind!r})")
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ValueError(f"spec does not fit {cls.__name__}: {exc}") from None


#: Module kinds -> classes ("mlp" -> MLPModule, "lowrank" -> LowRankModule); filled by the modules defining them.
MODULE_KINDS: Registry[type[RoutedModule]] = Registry("module")
