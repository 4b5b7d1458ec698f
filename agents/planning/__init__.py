"""The hierarchical planner run with a library of learned options: the learned-skill executor (``skills``), planner
evaluation over a suite split (``evaluation``), planner DAgger (``dagger``), recording of scripted skill episodes
(``recording``) and skill rollouts (``rollouts``)."""
