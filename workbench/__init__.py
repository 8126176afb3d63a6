"""Fraud Workbench: a real-time fraud-detection analyst workbench.

Layers, lowest first (a module imports only from layers at or below its own):
kernel (errors, durations, settings, schema) <- sources <- features <- rules <- scoring
<- storage <- alerts <- pipeline <- dashboard <- cli.
"""

__version__ = "0.1.0"
