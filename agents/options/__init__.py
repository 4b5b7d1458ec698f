"""Training options and routing over them: from subtask events (``train``), demonstrations (``demos``), planner
skill demonstrations (``skill_cloning``), sketches (``sketch``), option-critic (``critic``), and the PPO router that
calls frozen options (``router``). ``hier_ppo`` is the PPO update the sketch and option-critic loops share,
``hier_results`` what they report; ``skill_cloning_config`` configures ``skill_cloning``."""
