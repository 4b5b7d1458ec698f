"""The hierarchical planner run with a library of learned options: option libraries as the planner loads and finds
them (``library``), the planner-episode harness every caller runs its episodes in (``episode``), the learned-skill
executor (``skills``), planner evaluation over a suite split (``evaluation``), planner DAgger (``dagger``), recording
of scripted skill episodes (``recording``), skill rollouts (``rollouts``) and the demonstration sets they produce
(``demo_set``). Imports no stable_baselines3 (``tests/test_planner_imports.py``)."""
