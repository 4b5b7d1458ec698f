"""modrl: modular reinforcement learning and planning on MiniGrid.

The core package (this one) depends on torch, numpy and gymnasium spaces only. Stable-Baselines3 integration lives
in :mod:`modrl.agents` and the MiniGrid task suites in :mod:`modrl.envs`.
"""

__version__ = "0.1.0"
