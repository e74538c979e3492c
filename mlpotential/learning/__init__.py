"""Active learning (``mlpotential learn``): explore with the current
committee, select the frames it is unsure of, label them with a reference
engine, retrain, and repeat until an exploration finds nothing to learn.

Host-side orchestration: the committee and the reference run in workers.
"""
