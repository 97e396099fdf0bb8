"""Torch-free numerics shared by the probes and the report (fits, intervals, map metrics).

Nothing here may import torch: the report imports these modules.
"""
