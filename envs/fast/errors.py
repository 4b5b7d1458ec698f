"""The fast engine's refusal: :class:`EngineUnsupported`, raised for an env, layout or instruction it does not cover."""

from __future__ import annotations


class EngineUnsupported(NotImplementedError):
    """The batched engine does not cover this env, layout or instruction; the message gives the reason.

    Raised while stepping (:func:`~modrl.envs.fast.layout.draw`, :func:`~modrl.envs.fast.layout.encode_layout`,
    :func:`~modrl.envs.fast.instructions.task_instructions`, :class:`~modrl.envs.fast.engine.BatchedMiniGrid`'s
    subtask limit) for what the up-front check (:func:`~modrl.envs.fast.layout.unsupported_reason`) cannot see. It
    subclasses :class:`NotImplementedError` (which it replaces), so code that catches that still catches it.
    """
