"""The settings, one module per params.yaml section; mlops/core/settings.py composes them into `Settings`.

A stage imports the sections it reads from here (and `Settings` only for its annotations), so the code that
defines another section's parameters is not among the stage's DVC deps: a change to a serving setting's
definition re-runs no training stage.
"""
