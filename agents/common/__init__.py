"""The modular agent and its parameter-matched monolithic baseline through Stable-Baselines3: config, features
extractor, policies, model builders, callbacks, run guards, exact-resume env state, training and evaluation."""
